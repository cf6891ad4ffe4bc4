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
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepsync.bench import harness
from deepsync.durable import read_json, write_text
from deepsync.errors import DeepSyncError

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
# models whose search compares every held-out and test window with every training window:
# that part grows with the square of the set, whatever the small sizes' exponent shows
PAIRWISE = ("feng_knn", "feng_knn_more", "knn")
KERNEL_PROFILE = "gpu"  # what a Kaggle GPU kernel trains (kernels/: the `gpu` profile)
SECONDS, RATE = 600, 400  # a real segment: 600 s at 400 Hz, 16 electrodes
KAGGLE_WORKING_GB, KAGGLE_HOURS = 20, 12  # /kaggle/working, a GPU session's limit


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
    """In the stage's own process: run the CLI with ``args``; its time and memory to
    ``record`` (a JSON file) when it succeeds: ``peak_rss``, the resident peak of the
    largest process (the stage's own or a worker's, a pool's workers included),
    pages of memory-mapped caches included; ``peak_anon``, the largest sum over the
    stage's processes of their anonymous memory (what they allocate; what the machine
    cannot take back), sampled."""
    from deepsync.cli import main as cli

    with harness.MemorySampler(os.getpid()) as memory:
        started = time.perf_counter()
        code = cli(args)
        seconds = time.perf_counter() - started
    if code == 0:
        peak = max(harness.own_peak_rss(), harness.waited_peak_rss(), memory.peak_rss)
        figures = {"seconds": seconds, "peak_rss": peak, "peak_anon": memory.peak_anon}
        write_text(record, json.dumps(figures))
    return code


def run_size(
    root: Path,
    denominator: int,
    models: list[str],
    scenario: str,
    workers: int,
    extra: list[str],
    only: tuple[str, ...] = (),
    again: tuple[str, ...] = (),
) -> dict:
    """Every stage of one size not measured yet (of ``only``, when given), and the stages
    of ``again`` measured anew; the size's records (stage -> figures)."""
    folder = root / f"1-{denominator}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RECORD
    records = read_json(path) if path.exists() else {}
    chosen = {"scenario": scenario, "workers": workers, "settings": extra}
    made = folder / SETTINGS
    if made.exists() and read_json(made) != chosen:
        raise DeepSyncError(
            f"{folder} was measured with other settings ({read_json(made)}); "
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
        if only and not _chosen(stage.name, only):
            continue
        if stage.name in records and not _chosen(stage.name, again):
            continue
        print(f"bench-scale 1/{denominator}: {stage.name}", flush=True)
        options = [o for pair in (("--set", s) for s in stage.overrides) for o in pair]
        command = [*common, *options, *stage.command]
        if stage.name == "report":
            command += ["--out", str(folder / "reports")]
        figures = folder / ".stage.json"
        figures.unlink(missing_ok=True)
        itself = [sys.executable, "-m", "deepsync.bench.scale", "--measure", str(figures)]
        code = subprocess.call([*itself, "--", *command])
        if code != 0:
            raise DeepSyncError(
                f"{stage.name} at 1/{denominator} failed (exit {code}); "
                "fix it and rerun: measured stages are kept"
            )
        records[stage.name] = {**read_json(figures), "segments": _segments(folder)}
        figures.unlink()
        write_text(path, json.dumps(records, indent=1))
    return records


def _chosen(name: str, names: tuple[str, ...]) -> bool:
    """Whether stage ``name`` is among ``names`` ("train ag_rlp_xgb" or "ag_rlp_xgb")."""
    return name in names or name.removeprefix("train ") in names


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


def top_exponent(segments: list[int], seconds: list[float]) -> float:
    """The exponent between the two largest sizes: the growth where fixed costs (imports,
    process starts, per-tree overheads) weigh least (NaN with one size)."""
    if len(set(segments)) < 2:
        return math.nan
    order = np.argsort(segments)[-2:]
    return exponent([segments[i] for i in order], [seconds[i] for i in order])


def project(segments: list[int], values: list[float], full: int = FULL_SEGMENTS) -> float:
    """The largest size's figure grown to ``full`` segments with the larger of the two
    exponents, over every size and between the two largest: a stage whose fixed costs
    hide its growth at small sizes is not projected on them."""
    if len(set(segments)) < 2:
        return math.nan
    largest = int(np.argmax(segments))
    growth = max(exponent(segments, values), top_exponent(segments, values))
    return float(values[largest] * (full / segments[largest]) ** growth)


def project_pairwise(segments: list[int], seconds: list[float], full: int = FULL_SEGMENTS) -> float:
    """A pairwise model's time at ``full`` segments: the larger of `project` and the least-
    squares fit of seconds = a + c * segments^2 (a, c >= 0) through the sizes, grown."""
    if len(set(segments)) < 2:
        return math.nan
    n2 = np.asarray(segments, dtype=np.float64) ** 2
    t = np.asarray(seconds, dtype=np.float64)
    (a, c), *_ = np.linalg.lstsq(np.stack([np.ones_like(n2), n2], axis=1), t, rcond=None)
    if c < 0:
        a, c = float(t.mean()), 0.0
    elif a < 0:
        a, c = 0.0, float(n2 @ t / (n2 @ n2))
    return max(project(segments, seconds, full), float(a + c * full**2))


def _pairwise(stage: str) -> bool:
    """A stage that trains one of the `PAIRWISE` models (``train knn:share``, ...)."""
    return stage.startswith("train ") and stage[6:].split(":")[0] in PAIRWISE


def project_memory(segments: list[int], rss: list[float], full: int = FULL_SEGMENTS) -> float:
    """Peak memory at ``full`` segments on the straight line through the sizes (never
    below the largest measured)."""
    if len(set(segments)) < 2:
        return math.nan
    slope, intercept = np.polyfit(segments, rss, 1)
    return float(max(max(rss), intercept + slope * full))


def table(results: dict[int, dict]) -> list[dict]:
    """One row per stage: per size seconds, peak RSS and peak anonymous memory, the
    exponents, the projections (memory in MiB)."""
    sizes = sorted(results, reverse=True)  # the smallest first
    names = list(dict.fromkeys(n for d in sizes for n in results[d]))
    rows = []
    for name in names:
        have = [d for d in sizes if name in results[d]]
        segments = [results[d][name]["segments"] for d in have]
        seconds = [results[d][name]["seconds"] for d in have]
        rss = [results[d][name]["peak_rss"] for d in have]
        row = {
            "stage": name,
            **{f"1/{d} s": results[d][name]["seconds"] for d in have},
            **{f"1/{d} MiB": results[d][name]["peak_rss"] / 2**20 for d in have},
            "exponent": exponent(segments, seconds),
            "top exponent": top_exponent(segments, seconds),
            "full s": (project_pairwise if _pairwise(name) else project)(segments, seconds),
            "full MiB": project_memory(segments, rss) / 2**20,
        }
        anon = [d for d in have if results[d][name].get("peak_anon")]  # older records: none
        row.update({f"1/{d} anon": results[d][name]["peak_anon"] / 2**20 for d in anon})
        if anon:
            counts = [results[d][name]["segments"] for d in anon]
            peaks = [results[d][name]["peak_anon"] for d in anon]
            row["full anon"] = project_memory(counts, peaks) / 2**20
        rows.append(row)
    return rows


def render(results: dict[int, dict]) -> str:
    """Two Markdown tables (time, memory) with the sizes' segment counts and the totals."""
    rows = table(results)
    sizes = sorted(results, reverse=True)
    counts = ", ".join(
        f"1/{d}: {next(iter(results[d].values()))['segments']}" for d in sizes if results[d]
    )
    time_columns = [*(f"1/{d} s" for d in sizes), "exponent", "top exponent", "full s"]
    memory_columns = [
        *(f"1/{d} MiB" for d in sizes),
        "full MiB",
        *(f"1/{d} anon" for d in sizes),
        "full anon",
    ]
    lines = [f"segments per size: {counts}; full: {FULL_SEGMENTS}", ""]
    for columns, flagged in ((time_columns, True), (memory_columns, False)):
        lines += ["| stage | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        for row in rows:
            cells = [_cell(row.get(c), c) for c in columns]
            growth = max(row["exponent"], row["top exponent"])
            flag = " (!)" if flagged and growth > EXPONENT_LIMIT else ""
            flag += " (n²)" if flagged and _pairwise(row["stage"]) else ""
            lines.append(f"| {row['stage']}{flag} | " + " | ".join(cells) + " |")
        lines.append("")
    for label, keep in (
        ("features, default families", lambda n: n in ("features",)),
        ("features, the winners profile's", lambda n: n == "features (winners)"),
        ("classical models", lambda n: n.startswith("train ") and n != "train cnn"),
        ("the CNN (CPU)", lambda n: n == "train cnn"),
    ):
        total = sum(r["full s"] for r in rows if keep(r["stage"]) and r["full s"] == r["full s"])
        lines.append(f"projected at full size, {label}: {total / 60:.1f} min")
    lines.append(
        f"(!): an exponent above {EXPONENT_LIMIT}: the stage grows faster than its data. "
        "full s: the largest size grown with the larger exponent (over every size, or "
        "between the two largest); (n²): a model that compares every pair of windows, "
        "projected with the larger of that and a + c * segments^2 fitted to the sizes. "
        "MiB: peak RSS of the stage's largest process, pages of "
        "memory-mapped caches included; anon: peak anonymous memory of all its processes "
        "together (what they allocate); full: straight line through the sizes"
    )
    return "\n".join(lines)


def cache_bytes(features, segments: int, seconds: int = SECONDS, rate: int = RATE) -> int:
    """Bytes of the arrays of a feature cache made with ``features`` (a FeaturesConfig) of
    ``segments`` segments of ``seconds`` at ``rate`` Hz and 16 electrodes, as `make
    features` lays them out (their .npy headers aside)."""
    from types import SimpleNamespace

    from deepsync.features.stage import shapes_of

    segment = SimpleNamespace(data=SimpleNamespace(shape=(seconds * rate, 16)), sampling_rate=rate)
    shapes = shapes_of(features, segment, segments)
    return sum(
        int(np.prod(shape)) * dtype.itemsize for shape, dtype in map(shapes.of, shapes.arrays)
    )


def training_files() -> dict[int, int]:
    """Per real patient, the files a model learns from: safe interictal, preictal and the
    labelled old test (`deepsync.train.folds.training_segments`, all-zero ones aside)."""
    from deepsync.data.synthetic import real_counts

    return {
        p: c["interictal"] - c["unsafe"] + c["preictal"] + c["old_test"]
        for p, c in real_counts().items()
    }


def cnn_rates(run: Path) -> tuple[float, float] | None:
    """From a run's CNN fold logs (``cnn/patient<P>/fold<K>/log.csv``) and folds.csv:
    (training images per second, the median epoch's; whole epochs' seconds over their
    training seconds: what validation, batch-norm recalibration and checkpoints add).
    None without logs."""
    from deepsync.durable import read_csv
    from deepsync.runs import cnn_fold_folder

    if not (run / "folds.csv").exists():
        return None
    folds = read_csv(run / "folds.csv")
    rates, epoch_seconds, train_seconds = [], 0.0, 0.0
    for (patient, fold), _ in folds.groupby(["patient", "fold"], sort=True):
        path = cnn_fold_folder(run, int(patient), int(fold)) / "log.csv"
        if not path.exists():
            continue
        images = int(((folds["patient"] == patient) & (folds["fold"] != fold)).sum())
        log = read_csv(path)
        rates += log["images_per_s"].tolist()
        epoch_seconds += float(log["seconds"].sum())
        train_seconds += float((images / log["images_per_s"]).sum())
    if not rates:
        return None
    return float(np.median(rates)), epoch_seconds / train_seconds


def kernel_lines(folder: Path, rate: float = 0.0) -> list[str]:
    """The Kaggle kernel at full size: the `gpu` profile's cache against the working disk,
    and per patient the CNN's time (its folds and epochs) from the images per second
    measured at ``folder``'s size on this CPU, and from ``rate`` (a GPU's, e.g. from
    `make bench-train`) when given."""
    from deepsync.config import load_config

    gpu, measured = load_config(KERNEL_PROFILE), load_config(PROFILE)
    size = cache_bytes(gpu.features, FULL_SEGMENTS) / 1e9
    lines = [
        f"Kaggle kernel, the `{KERNEL_PROFILE}` profile: its feature cache of the full set is "
        f"{size:.1f} GB ({gpu.features.bands} bands x {gpu.features.frames} "
        "frames of float16 per electrode). kernels.upload=features: the dataset to upload, "
        "read in place in the kernel (a link), /kaggle/working holds runs and submissions "
        "(MBs); kernels.upload=data: the kernel builds it in /kaggle/working, "
        f"{size:.1f} of its {KAGGLE_WORKING_GB} GB"
    ]
    rates = cnn_rates(folder / "runs" / measured.train.run)
    if rates is None:
        return lines
    here, overhead = rates
    pixels = measured.features.bands * measured.features.frames
    at_size = here * pixels / (gpu.features.bands * gpu.features.frames)  # time ~ pixels
    lines.append(
        f"CNN `{measured.cnn.model}` measured at {folder.name.replace('-', '/')}: {here:.0f} "
        f"training images/s at {measured.features.bands} x {measured.features.frames} on this "
        f"CPU, whole epochs {overhead:.2f}x their training time; at the profile's stacks about "
        f"{at_size:.0f} images/s here" + (f"; {rate:.0f} images/s given for a GPU" if rate else "")
    )
    epochs, k = gpu.cnn.epochs, gpu.train.folds
    for patient, files in training_files().items():
        images = epochs * (k - 1) * files  # each of k folds trains on (k-1)/k of the files
        hours = [images * overhead / r / 3600 for r in (at_size, rate) if r]
        lines.append(
            f"  patient {patient}: {files} files, {k} folds x {epochs} epochs: "
            + " / ".join(f"{h:.1f} h" for h in hours)
            + f" ({'this CPU / the given GPU rate' if rate else 'this CPU'}; "
            f"a GPU session allows {KAGGLE_HOURS} h)"
        )
    return lines


def _cell(value, column: str) -> str:
    if value is None or value != value:
        return ""
    if column.endswith("exponent"):
        return f"{value:.2f}"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--measure"]:  # a stage's own process
        return measure(Path(argv[1]), argv[3:])
    args = _parser().parse_args(argv)
    after = "rerun to resume (measured stages are kept)"
    return harness.exit_code("bench-scale", lambda: _run(args), after=after)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepsync.bench.scale", description=__doc__.splitlines()[0]
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
    parser.add_argument(
        "--stages",
        default="",
        metavar="data,features,...",
        help="run only these stages (a model by its name); the table shows every record",
    )
    parser.add_argument(
        "--again",
        default="",
        metavar="andriy_svm,...",
        help="measure these stages anew at every size (after changing them)",
    )
    parser.add_argument(
        "--kernel-rate",
        type=float,
        default=0.0,
        metavar="IMAGES_PER_S",
        help="a GPU's training images/s at the gpu profile's stacks (make bench-train): "
        "the Kaggle kernel's CNN time projected from it too",
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
    return parser


def _run(args: argparse.Namespace) -> int:
    from deepsync.config import load_config, numbers, words

    sizes = list(numbers(args.sizes, "--sizes", int, "32,16"))
    if not sizes or min(sizes) < 1:
        raise DeepSyncError(f"--sizes {args.sizes}: each a denominator of at least 1")
    models = list(words(args.models or load_config(PROFILE).train.models))
    results = {}
    for denominator in sizes:
        results[denominator] = run_size(
            args.root,
            denominator,
            models,
            args.scenario,
            args.workers,
            args.extra,
            only=words(args.stages),
            again=words(args.again),
        )
    text = render(results)
    largest = args.root / f"1-{min(results)}"
    text += "\n\n" + "\n".join(kernel_lines(largest, args.kernel_rate))
    write_text(args.root / "table.md", text + "\n")
    print(f"\nbench-scale on {os.cpu_count()} cores ({args.root / 'table.md'}):\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
