"""`make bench-scale`: every stage at growing fractions of the real competition's size.

Per size (by default 1/32, 1/16, 1/8 and 1/4 of each patient's real training, labelled
old-test and test files: `synthetic.scale`; 600 s segments with the `band` scenario's
nuisances and the real files' fragmented dropout) it runs each stage in its own process,
as `make` does, and records its wall time and peak RSS (of the largest process: the stage's
own or one of its workers): data, features (the default families, then the `winners`
profile's, every family and the winners' four, in a cache of their own), every model of the
`winners` profile one at a time (the default ``train.models`` are among them), submit and
report. Then one table: seconds and peak RSS per stage and size, each stage's growth
exponent over the sizes (seconds ~ segments^b, a least-squares fit of the logs) and its
projection to the full size (8,233 files) on this machine. Sets stay in ``data/scale/`` for
the next run (``make clean-scale`` removes them); a stage measured before is not run again,
so Ctrl-C loses at most the stage under way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepsync.durable import read_json, write_text

SIZES = (32, 16, 8, 4)  # denominators of the real size
FULL_SEGMENTS = 8233  # the real training, labelled old-test and test files
PROFILE = "winners"  # every model: the kit's defaults and the 2016 winners' seven
RECORD = "bench.json"
SETTINGS = "settings.json"  # the scenario, workers and --set values a size was measured with
# make submit as the kit's default (not the winners profile's fixed blend): the best of
# every model and their blend, with weights searched on the folds
KIT_SUBMIT = (
    "submit.model=auto",
    "submit.blend=",
    "submit.blend_weights=",
    "submit.calibration=auto",
)
EXPONENT_LIMIT = 1.15  # above it a stage grows faster than its data


@dataclass(frozen=True)
class Stage:
    name: str  # as in the table: data, features, features +winners, train <model>, ...
    command: tuple[str, ...]  # the CLI's stage and its options
    overrides: tuple[str, ...] = ()


def stages(models: list[str]) -> list[Stage]:
    """What one size runs, in order."""
    from deepsync.config import load_config

    default = load_config().features.families
    out = [
        Stage("data", ("data",)),
        Stage("features", ("features",), (f"features.families={default}",)),
        Stage("features (winners)", ("features",)),  # the profile's: a cache of its own
    ]
    out += [Stage(f"train {m}", ("train",), (f"train.models={m}",)) for m in models]
    out += [Stage("submit", ("submit",)), Stage("report", ("report",))]
    return out


def settings(folder: Path, denominator: int, scenario: str) -> list[str]:
    """The `--set` values that put a size's set and every stage's files under ``folder``."""
    return [
        "data.source=synthetic",
        f"synthetic.scale={1 / denominator}",
        "synthetic.seconds=600",
        f"synthetic.scenario={scenario}",
        f"data.root={folder / 'data'}",
        f"features.cache_root={folder / 'cache'}",
        f"train.runs_root={folder / 'runs'}",
        f"submit.folder={folder / 'submissions'}",
        *KIT_SUBMIT,
    ]


def measure(record: Path, args: list[str]) -> int:
    """In the stage's own process: run the CLI with ``args``; its time and peak RSS to
    ``record`` (a JSON file) when it succeeds."""
    from deepsync.cli import main as cli

    started = time.perf_counter()
    code = cli(args)
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    if code == 0:
        write_text(record, json.dumps({"seconds": seconds, "peak_rss": max(own, workers)}))
    return code


def run_size(
    root: Path, denominator: int, models: list[str], scenario: str, workers: int, extra: list[str]
) -> dict:
    """Every stage of one size not measured yet; the size's records (stage -> figures)."""
    folder = root / f"1-{denominator}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RECORD
    records = read_json(path) if path.exists() else {}
    chosen = {"scenario": scenario, "workers": workers, "settings": extra}
    made = folder / SETTINGS
    if made.exists() and read_json(made) != chosen:
        raise SystemExit(
            f"bench-scale: {folder} was measured with other settings ({read_json(made)}); "
            "give another --root, or `make clean-scale` to start again"
        )
    write_text(made, json.dumps(chosen))
    common = ["--profile", PROFILE, "--workers", str(workers)]
    for option in [
        *settings(folder, denominator, scenario),
        f"train.models={','.join(models)}",
        *extra,
    ]:
        common += ["--set", option]
    for stage in stages(models):
        if stage.name in records:
            continue
        print(f"bench-scale 1/{denominator}: {stage.name}", flush=True)
        options = [o for pair in (("--set", s) for s in stage.overrides) for o in pair]
        command = [*common, *options, *stage.command]
        if stage.name == "report":
            command += ["--out", str(folder / "reports")]
        figures = folder / ".stage.json"
        figures.unlink(missing_ok=True)
        code = subprocess.call(
            [sys.executable, "-m", "deepsync.scale", "--measure", str(figures), "--", *command]
        )
        if code != 0:
            raise SystemExit(
                f"bench-scale: {stage.name} at 1/{denominator} failed (exit {code}); "
                "fix it and rerun: measured stages are kept"
            )
        records[stage.name] = {**read_json(figures), "segments": _segments(folder)}
        figures.unlink()
        write_text(path, json.dumps(records, indent=1))
    return records


def _segments(folder: Path) -> int:
    """Files of the size's set (training, labelled old-test and test)."""
    from deepsync.durable import read_csv

    index = folder / "data" / "segments.csv"
    return len(read_csv(index)) if index.exists() else 0


def exponent(segments: list[int], seconds: list[float]) -> float:
    """b of seconds ~ a * segments^b, least squares on the logs (NaN with one size)."""
    if len(set(segments)) < 2:
        return math.nan
    return float(np.polyfit(np.log(segments), np.log(seconds), 1)[0])


def project(segments: list[int], values: list[float], full: int = FULL_SEGMENTS) -> float:
    """The largest size's figure grown to ``full`` segments with the fitted exponent (the
    largest size weighs fixed costs least)."""
    if len(set(segments)) < 2:
        return math.nan
    largest = int(np.argmax(segments))
    return float(values[largest] * (full / segments[largest]) ** exponent(segments, values))


def project_memory(segments: list[int], rss: list[float], full: int = FULL_SEGMENTS) -> float:
    """Peak RSS at ``full`` segments on the straight line through the sizes (never below
    the largest measured)."""
    if len(set(segments)) < 2:
        return math.nan
    slope, intercept = np.polyfit(segments, rss, 1)
    return float(max(max(rss), intercept + slope * full))


def table(results: dict[int, dict]) -> list[dict]:
    """One row per stage: per size seconds and peak RSS, the exponent, the projections."""
    sizes = sorted(results, reverse=True)  # the smallest first
    names = list(dict.fromkeys(n for d in sizes for n in results[d]))
    rows = []
    for name in names:
        have = [d for d in sizes if name in results[d]]
        segments = [results[d][name]["segments"] for d in have]
        seconds = [results[d][name]["seconds"] for d in have]
        rss = [results[d][name]["peak_rss"] for d in have]
        rows.append(
            {
                "stage": name,
                **{f"1/{d} s": results[d][name]["seconds"] for d in have},
                **{f"1/{d} MiB": results[d][name]["peak_rss"] / 2**20 for d in have},
                "exponent": exponent(segments, seconds),
                "full s": project(segments, seconds),
                "full MiB": project_memory(segments, rss) / 2**20,
            }
        )
    return rows


def render(results: dict[int, dict]) -> str:
    """The table as Markdown, with the sizes' segment counts and the totals."""
    rows = table(results)
    sizes = sorted(results, reverse=True)
    counts = ", ".join(
        f"1/{d}: {next(iter(results[d].values()))['segments']}" for d in sizes if results[d]
    )
    columns = [
        *(f"1/{d} s" for d in sizes),
        *(f"1/{d} MiB" for d in sizes),
        "exponent",
        "full s",
        "full MiB",
    ]
    lines = [
        f"segments per size: {counts}; full: {FULL_SEGMENTS}",
        "",
        "| stage | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = [_cell(row.get(c), c) for c in columns]
        flag = " (!)" if row["exponent"] > EXPONENT_LIMIT else ""
        lines.append(f"| {row['stage']}{flag} | " + " | ".join(cells) + " |")
    lines.append("")
    for label, keep in (
        ("features, default families", lambda n: n in ("features",)),
        ("features, the winners profile's", lambda n: n == "features (winners)"),
        ("classical models", lambda n: n.startswith("train ") and n != "train cnn"),
    ):
        total = sum(r["full s"] for r in rows if keep(r["stage"]) and r["full s"] == r["full s"])
        lines.append(f"projected at full size, {label}: {total / 60:.1f} min")
    lines.append(
        f"(!): exponent above {EXPONENT_LIMIT}: the stage grows faster than its data; "
        "MiB: peak RSS of the stage's largest process (a stage with N workers needs about N times "
        "a worker's), straight line through the sizes"
    )
    return "\n".join(lines)


def _cell(value, column: str) -> str:
    if value is None or value != value:
        return ""
    if column == "exponent":
        return f"{value:.2f}"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--measure"]:  # a stage's own process
        return measure(Path(argv[1]), argv[3:])
    parser = argparse.ArgumentParser(
        prog="python -m deepsync.scale", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, SIZES)),
        metavar="32,16,8,4",
        help="denominators of the real size (default 32,16,8,4)",
    )
    parser.add_argument(
        "--models", default="", help="train only these (default: the winners profile's)"
    )
    parser.add_argument("--scenario", default="band", help="the sets' scenario (default band)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--root", type=Path, default=Path("data/scale"), help="where sets live")
    parser.add_argument(
        "--set",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one more setting for every stage (e.g. cnn.epochs=5)",
    )
    args = parser.parse_args(argv)
    from deepsync.config import load_config
    from deepsync.errors import DeepSyncError

    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        if min(sizes) < 1:
            raise ValueError(f"--sizes {args.sizes}: each a denominator of at least 1")
        models = (args.models or load_config(PROFILE).train.models).split(",")
    except (ValueError, DeepSyncError) as error:
        print(f"bench-scale: {error}", file=sys.stderr)
        return 2
    results = {}
    try:
        for denominator in sizes:
            results[denominator] = run_size(
                args.root, denominator, models, args.scenario, args.workers, args.extra
            )
    except KeyboardInterrupt:
        print("\nbench-scale: interrupted; rerun to resume (measured stages are kept)")
        return 130
    text = render(results)
    write_text(args.root / "table.md", text + "\n")
    print(f"\nbench-scale on {os.cpu_count()} cores ({args.root / 'table.md'}):\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
