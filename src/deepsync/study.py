"""`make study`: a grid of named variants trained on the same folds, one table of results.

A grid is a TOML file (``src/deepsync/grids/default.toml`` unless given)::

    seeds = [1, 2]                     # each variant is trained once per seed
    [variants.baseline]
    "train.models" = "baseline"
    [variants.electrodenet]
    "cnn.model" = "electrodenet"
    seeds = [1]                        # a costly variant: its own seeds


A variant is a set of ``section.key = value`` overrides on top of the profile and the
command line's ``--set``s, so any setting can be studied. Every (variant, seed) is an
ordinary training run, ``runs/study/<run>/<variant>-seed<seed>/`` (``<run>``: the
profile's ``train.run``, one folder per data set) (resumable, refused if its
settings change), and every run reads one ``folds.csv``: all variants and seeds are scored
on the same hour-grouped folds; the seed changes initialisation, shuffling and
augmentation only. Variants that change the features get their own feature cache.

Outputs, in ``reports/study/<run>/`` (``<run>-<grid>/`` for a grid other than the default):
``table.csv`` (one row per variant and model: per-patient and pooled OOF AUC, calibrated
as `make submit` calibrates, mean and spread over seeds, wall time, training images/s; the
blend's "pooled" is the equal-weight rank average of the models' raw scores, its
"calibrated" the blend `make submit` would send), ``table.md`` (the same for README),
``study.png`` (pooled OOF AUC per variant, one dot per seed) and ``index.html`` (both in
one page).

A grid that names ``scenarios = ["band", "synchrony", ...]`` (the scenario grid,
``grids/scenarios.toml``, `make study`'s default) runs every variant on one synthetic set
per scenario and seed: ``synthetic.scenario`` and ``synthetic.seed`` (the profile's plus the
seed) set, the set in ``data/<run>/<scenario>-<seed>``, its features in
``cache/<run>/<scenario>-<seed>``, its runs in ``runs/study/<run>-<scenario>-<seed>/``;
each set is generated, its features cached and its variants trained as needed (all
resumable, the variants of a set on its one ``folds.csv``). Its table has a row per variant
and model, and per variant the model `make submit` would send ("submission"): the OOF AUC
(calibrated as `make submit` calibrates) per scenario as the mean over seeds, the mean over
scenarios, the worst scenario, and the least margin over the winners' recipe (`baseline`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from deepsync import pipeline
from deepsync.config import SCENARIOS, Config, load_config, numbers, read_toml, words
from deepsync.durable import FolderLock, copy_file, read_csv, read_json, write_csv, write_text
from deepsync.errors import DeepSyncError

GRIDS = Path(__file__).parent / "grids"
SHARED = ("data", "synthetic")  # one data set for the whole study
RECORD = "study.json"  # per run, once trained: the CNN's training speed


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple[str, ...]
    seeds: tuple[int, ...] | None = None  # its own seeds (a costly variant); None: the grid's


@dataclass(frozen=True)
class Grid:
    variants: tuple[Variant, ...]
    seeds: tuple[int, ...]
    name: str = "default"  # the file's stem: a grid other than the default reports apart
    scenarios: tuple[str, ...] = ()  # one synthetic set per scenario and seed (none: one set)


def load_grid(path: Path | None = None) -> Grid:
    """The grid in ``path`` (a file, or a name in ``deepsync/grids``), checked."""
    values, chosen = read_toml(path or "default", "grid", GRIDS)
    seeds = _seeds(values.get("seeds", [1]), chosen)
    scenarios = values.get("scenarios", [])
    if not isinstance(scenarios, list) or any(s not in SCENARIOS for s in scenarios):
        raise DeepSyncError(
            f"study grid {chosen}: scenarios must be a list of names from {', '.join(SCENARIOS)}"
        )
    table = values.get("variants")
    if not isinstance(table, dict) or not table:
        raise DeepSyncError(f"study grid {chosen}: no [variants.NAME] tables")
    variants = []
    for name, settings in table.items():
        if not _plain(name) or not isinstance(settings, dict):
            raise DeepSyncError(
                f"study grid {chosen}: variant {name!r} must be a plain name with a table "
                'of "section.key" = value settings'
            )
        overrides, own = [], None
        for key, value in settings.items():
            if key == "seeds":
                own = _seeds(value, chosen)
                continue
            if key.partition(".")[0] in SHARED:
                raise DeepSyncError(
                    f"study grid {chosen}: variant {name} sets {key}; the variants of a "
                    "study share one data set (set data and synthetic in the profile)"
                )
            text = str(value).lower() if isinstance(value, bool) else str(value)
            overrides.append(f"{key}={text}")
        variants.append(Variant(name, tuple(overrides), own))
    return Grid(tuple(variants), seeds, chosen.stem, tuple(dict.fromkeys(scenarios)))


def _seeds(value, chosen: Path) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    ):
        raise DeepSyncError(f"study grid {chosen}: seeds must be a list of integers")
    return tuple(dict.fromkeys(value))


def _plain(name: str) -> bool:
    return name.replace("_", "").replace("-", "").isalnum()


def pick(grid: Grid, only: str = "", seeds: str = "", scenarios: str = "") -> Grid:
    """The grid cut to the ``only`` variants and given ``seeds`` (commas); on a scenario
    grid, ``scenarios`` (any of SCENARIOS, in the grid or not) instead of its own."""
    if scenarios:
        wanted = words(scenarios)
        unknown = [s for s in wanted if s not in SCENARIOS]
        if unknown or not grid.scenarios:
            raise DeepSyncError(
                f"--scenarios {scenarios}: "
                + (
                    f"no scenario {', '.join(unknown)} (there are {', '.join(SCENARIOS)})"
                    if unknown
                    else f"grid {grid.name} has no scenarios (try --grid scenarios)"
                )
            )
        grid = Grid(grid.variants, grid.seeds, grid.name, tuple(dict.fromkeys(wanted)))
    variants = grid.variants
    if only:
        wanted = words(only)
        known = {v.name: v for v in variants}
        missing = [w for w in wanted if w not in known]
        if missing:
            raise DeepSyncError(
                f"no variant {', '.join(missing)} in the grid; it has {', '.join(known)}"
            )
        variants = tuple(known[w] for w in wanted)
    if not seeds:
        return Grid(variants, grid.seeds, grid.name, grid.scenarios)
    chosen = numbers(seeds, "--seeds", int, "1,2,3")
    variants = tuple(Variant(v.name, v.overrides) for v in variants)
    return Grid(variants, chosen, grid.name, grid.scenarios)


def report_folder(grid: Grid, config: Config) -> Path:
    """``reports/study/<run>``, or ``<run>-<grid>`` for a grid other than the default."""
    name = config.train.runs_root.name
    return Path("reports/study") / (name if grid.name == "default" else f"{name}-{grid.name}")


def run_configs(
    grid: Grid, profile: Path | None, overrides: list[str]
) -> list[tuple[Variant, int, Config]]:
    """The configuration of every (variant, seed), all checked before anything trains."""
    base = load_config(profile, overrides)
    root = Path(base.train.runs_root) / "study" / base.train.run  # one per data set
    runs = []
    for variant in grid.variants:
        for seed in variant.seeds or grid.seeds:
            extra = [
                *variant.overrides,
                f"train.seed={seed}",
                f"train.runs_root={root}",
                f"train.run={variant.name}-seed{seed}",
            ]
            try:
                config = load_config(profile, [*overrides, *extra])
            except DeepSyncError as error:
                raise DeepSyncError(f"study variant {variant.name}: {error}") from None
            runs.append((variant, seed, config))
    return runs


@dataclass
class StudyReport:
    table: pd.DataFrame
    runs: pd.DataFrame  # one row per (variant, seed, model)
    folder: Path
    seconds: float


def run_study(
    grid: Grid,
    profile: Path | None,
    overrides: list[str],
    out: Path | None = None,
    *,
    workers: int = 1,
    progress: bool = True,
) -> StudyReport:
    """Train every (variant, seed) not yet trained, on the same folds; write the table."""
    started = time.perf_counter()
    if grid.scenarios:
        return _run_scenarios(grid, profile, overrides, out, workers, progress, started)
    runs = run_configs(grid, profile, overrides)
    out = report_folder(grid, runs[0][2]) if out is None else out
    frame = pd.DataFrame(_train_set(runs, workers, progress, prepare_data=True))
    table = summarise(frame, [v.name for v in grid.variants])
    out.mkdir(parents=True, exist_ok=True)
    _write_outputs(table, frame, out)
    return StudyReport(table, frame, out, time.perf_counter() - started)


def _train_set(
    runs: list[tuple[Variant, int, Config]],
    workers: int,
    progress: bool,
    *,
    prepare_data: bool = False,
    label: str = "",
) -> list[dict]:
    """Train the runs of one data set that are not trained yet; their rows for the table.

    With ``prepare_data`` the set itself is made first (its data and features), where any
    run is missing; otherwise they must be there.
    """
    from tqdm import tqdm

    from deepsync.features.cache import cache_folder
    from deepsync.runs import run_folder

    options = pipeline.Options(workers=workers, progress=progress)
    first = runs[0][2]
    missing = [r for r in runs if _needs_training(run_folder(r[2]), r[2])]
    built = set()
    if missing and prepare_data:
        pipeline.run(first, ["data", "features"], options)
        built.add(cache_folder(first.features))
    folds = _shared_folds(first)
    built.add(cache_folder(first.features))
    rows = []
    for index, (variant, seed, config) in enumerate(runs, 1):
        folder = run_folder(config)
        record = folder / RECORD
        tqdm.write(f"study {label}{index}/{len(runs)}: {variant.name} seed {seed} ({folder})")
        if _needs_training(folder, config):
            if cache_folder(config.features) not in built:  # resumable: cached files skip
                pipeline.run(config, ["features"], options)
                built.add(cache_folder(config.features))
            with FolderLock(folder, "deepsync study"):
                if not (folder / "folds.csv").exists():
                    copy_file(folds, folder / "folds.csv")
                siblings = [run_folder(c) for _, _, c in runs if c is not config]
                # a run that gains models keeps its CNN folds; a model trained with the
                # same settings by another variant of the set is linked, not trained again
                pipeline.run(config, ["train"], replace(options, reuse=siblings))
                write_text(record, json.dumps({"images_per_s": _speed(folder)}))
        rows += _run_rows(variant.name, seed, folder, config)
    return rows


def _needs_training(folder: Path, config: Config) -> bool:
    return not (folder / RECORD).exists() or bool(_missing_models(folder, config))


def scenario_sets(grid: Grid, base: Config) -> list[tuple[str, int, list[str]]]:
    """(scenario, seed, the settings that make its set) for every set of a scenario grid."""
    sets = []
    data, cache = Path(base.data.root) / base.train.run, Path(base.features.cache_root)
    for scenario in grid.scenarios:
        for seed in grid.seeds:
            name = f"{scenario}-{seed}"
            sets.append(
                (
                    scenario,
                    seed,
                    [
                        "data.source=synthetic",
                        f"synthetic.scenario={scenario}",
                        f"synthetic.seed={base.synthetic.seed + seed}",
                        f"data.root={data / name}",
                        f"features.cache_root={cache / base.train.run / name}",
                        f"train.run={base.train.run}-{name}",
                    ],
                )
            )
    return sets


def _run_scenarios(
    grid: Grid,
    profile: Path | None,
    overrides: list[str],
    out: Path | None,
    workers: int,
    progress: bool,
    started: float,
) -> StudyReport:
    """Every variant on one set per scenario and seed; one table over the scenarios."""
    base = load_config(profile, overrides)
    sets = scenario_sets(grid, base)
    planned = []
    for scenario, seed, where in sets:  # every configuration checked before anything runs
        variants = tuple(
            Variant(v.name, v.overrides, (seed,))
            for v in grid.variants
            if v.seeds is None or seed in v.seeds
        )
        planned.append(
            (scenario, seed, run_configs(Grid(variants, (seed,)), profile, [*overrides, *where]))
        )
    rows = []
    for number, (scenario, seed, runs) in enumerate(planned, 1):
        label = f"set {number}/{len(planned)} {scenario} seed {seed}, run "
        for row in _train_set(runs, workers, progress, prepare_data=True, label=label):
            rows.append({"scenario": scenario, "set": seed, **row})
    frame = pd.DataFrame(rows)
    table = scenario_table(frame, [v.name for v in grid.variants], list(grid.scenarios))
    name = base.train.run if grid.name == base.train.run else f"{base.train.run}-{grid.name}"
    out = Path("reports/study") / name if out is None else out
    out.mkdir(parents=True, exist_ok=True)
    _write_outputs(table, frame, out)
    return StudyReport(table, frame, out, time.perf_counter() - started)


def submissions(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run (variant, scenario, set): the model `make submit` sends by default, the best
    calibrated pooled OOF AUC (the first of equals, as `make submit` chooses)."""
    keys = ["variant", "scenario", "set"]
    best = runs.loc[runs.groupby(keys, sort=False)["calibrated"].idxmax()]
    return best.assign(sent=best["model"], model="submission")


def scenario_table(runs: pd.DataFrame, order: list[str], scenarios: list[str]) -> pd.DataFrame:
    """A row per variant and model (and each variant's submission): the calibrated pooled
    OOF AUC per scenario (mean over seeds), their mean, the worst scenario, and the least
    margin over the winners' recipe (``baseline``, the first variant that trained it)."""
    runs = pd.concat([runs, submissions(runs)], ignore_index=True)
    keys = ["variant", "model"]
    means = runs.groupby([*keys, "scenario"], sort=False)["calibrated"].mean().unstack()
    means = means.reindex(columns=[s for s in scenarios if s in means.columns])
    table = means.copy()
    table["mean"] = means.mean(axis=1, skipna=False)
    table["worst"] = means.min(axis=1, skipna=False)
    table["worst scenario"] = means.idxmin(axis=1)
    baseline = means[means.index.get_level_values("model") == "baseline"]
    if len(baseline):
        table["vs baseline, least"] = means.sub(baseline.iloc[0], axis=1).min(axis=1)
    sent = runs[runs["model"] == "submission"].groupby("variant")["sent"]
    counts = sent.agg(lambda s: ", ".join(f"{m} {n}" for m, n in s.value_counts().items()))
    table["sent"] = [counts.get(v, "") if m == "submission" else "" for v, m in table.index]
    table.insert(0, "seeds", runs.groupby(keys, sort=False)["set"].nunique())
    table = table.reset_index()
    rank = {name: k for k, name in enumerate(order)}
    models = list(dict.fromkeys(runs["model"]))  # as the runs listed them
    last = {"blend": len(models), "submission": len(models) + 1}
    model_rank = {m: last.get(m, k) for k, m in enumerate(models)}
    table = table.sort_values(
        ["variant", "model"],
        key=lambda c: c.map(rank) if c.name == "variant" else c.map(model_rank),
    )
    return table.reset_index(drop=True)


def _shared_folds(config: Config) -> Path:
    """One folds.csv for the study (the base seed's), made by training nothing."""
    from deepsync.features.cache import FeatureCache, cache_folder
    from deepsync.train.folds import load_or_make_folds, training_segments

    path = Path(config.train.runs_root) / "folds.csv"
    cache = FeatureCache.open(cache_folder(config.features))
    segments = training_segments(cache.segments, config.train.patient_numbers)
    if segments.empty:
        raise DeepSyncError("no training segments in the feature cache; run `make features`")
    load_or_make_folds(path, segments, config.train.folds, config.train.seed)
    return path


def _missing_models(folder: Path, config: Config) -> list[str]:
    """The models of ``train.models`` that the run has not trained yet."""
    from deepsync.runs import trained_models

    held = trained_models(folder)
    return [m.name for m in config.train.model_specs if m.name not in held]


def _speed(folder: Path) -> float:
    """Mean training images/s over the CNN's epochs (NaN without a CNN)."""
    logs = sorted((folder / "cnn").glob("*/fold*/log.csv"))
    speeds = [read_csv(log)["images_per_s"] for log in logs]
    speeds = [s for s in speeds if len(s)]
    return float(pd.concat(speeds).mean()) if speeds else math.nan


def _run_rows(name: str, seed: int, folder: Path, config: Config) -> list[dict]:
    """One row per model of a trained run (and the blend when it has several)."""
    from deepsync.runs import trained_models
    from deepsync.submit.stage import candidates
    from deepsync.train.metrics import auc

    record = read_json(folder / RECORD)
    models = trained_models(folder)
    # the run's cost: its models' fitting times, a model linked from another variant's run
    # counted with its own
    seconds = sum(read_json(path / "metrics.json")["seconds"] for path in models.values())
    rows = []
    for candidate in candidates(folder, config):
        row = {"variant": name, "seed": seed, "model": candidate.model}
        if candidate.model == "blend":  # pooled: raw scores, equal weights; calibrated: submit's
            row["pooled"] = candidate.measured["equal weights, raw scores"]
            oof = read_csv(next(iter(models.values())) / "oof.csv").set_index("segment")
            for patient, part in oof.groupby("patient"):
                row[f"patient {patient}"] = auc(part["label"], candidate.oof.reindex(part.index))
        else:
            metrics = read_json(models[candidate.model] / "metrics.json")
            for patient, values in metrics["patients"].items():
                row[f"patient {patient}"] = values["auc"]
            row["pooled"] = metrics["pooled_auc"]
            row["worst fold"] = min(
                (a for p in metrics["patients"].values() for a in p["folds"] if a == a),
                default=math.nan,
            )
        row["calibrated"] = candidate.oof_auc
        row["calibration"] = candidate.calibration
        row["seconds"] = seconds
        row["images/s"] = record["images_per_s"] if candidate.model == "cnn" else math.nan
        rows.append(row)
    return rows


def summarise(runs: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Mean over seeds per (variant, model); spread: the seeds' standard deviation."""
    keys = ["variant", "model"]
    numeric = [c for c in runs.columns if c not in (*keys, "seed", "calibration")]
    grouped = runs.groupby(keys, sort=False)
    table = grouped[numeric].mean()
    table.insert(numeric.index("pooled") + 1, "pooled sd", grouped["pooled"].std(ddof=0))
    at = list(table.columns).index("calibrated") + 1
    table.insert(at, "calibrated sd", grouped["calibrated"].std(ddof=0))
    table.insert(0, "seeds", grouped["seed"].nunique())
    table = table.reset_index()
    rank = {name: k for k, name in enumerate(order)}
    models = list(dict.fromkeys(runs["model"]))  # as the runs listed them: blend last
    model_rank = {m: k + (len(models) if m == "blend" else 0) for k, m in enumerate(models)}
    table = table.sort_values(
        ["variant", "model"],
        key=lambda c: c.map(rank) if c.name == "variant" else c.map(model_rank),
    )
    return table.reset_index(drop=True)


def markdown(table: pd.DataFrame) -> str:
    """The table as GitHub markdown, AUCs to three places, seconds whole."""
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for _, row in table.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            if isinstance(value, float | np.floating):
                if math.isnan(value):
                    cells.append("-")
                elif column in ("seconds", "images/s"):
                    cells.append(f"{value:.0f}")
                else:
                    cells.append(f"{value:.3f}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write_outputs(table: pd.DataFrame, runs: pd.DataFrame, out: Path) -> None:
    from deepsync.report.page import Page, write_page

    write_csv(out / "table.csv", table)
    write_csv(out / "runs.csv", runs)
    write_text(out / "table.md", markdown(table) + "\n")
    page = Page(out)
    page.heading("Pooled OOF AUC per variant", "study")
    page.figure(_figure(runs), "study", "pooled OOF AUC, one dot per seed")
    page.heading("Table", "table")
    page.note(
        "Means over seeds on the same hour-grouped folds; sd: spread over seeds; calibrated: "
        "as `make submit` calibrates (the method in runs.csv); seconds: the run's models' "
        "fitting time (a model linked from another variant with its own); images/s: CNN "
        "training stacks per second."
    )
    page.table(table)
    write_page(page, "DeepSync study", "made by `make study`")


def _figure(runs: pd.DataFrame):
    from deepsync.report.figures import plt

    pairs = list(dict.fromkeys(zip(runs["variant"], runs["model"], strict=True)))
    fig, ax = plt().subplots(figsize=(8, 0.45 * len(pairs) + 1.5))
    for y, (variant, model) in enumerate(pairs):
        chosen = runs[(runs["variant"] == variant) & (runs["model"] == model)]
        ax.scatter(chosen["pooled"], [y] * len(chosen), color="C0", zorder=3)
        ax.scatter(chosen["calibrated"], [y] * len(chosen), color="C1", marker="x", zorder=3)
    labels = [f"{variant} {model}" for variant, model in pairs]
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.axvline(0.5, color="grey", lw=0.8)
    ax.set_xlabel("pooled OOF AUC (dots: raw, crosses: calibrated)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def summary(report: StudyReport) -> str:
    shown = report.table.drop(columns=["seconds"], errors="ignore")
    return (
        f"study: {report.table['variant'].nunique()} variants in {report.seconds:.0f} s; "
        "pooled OOF AUC, mean over seeds (sd: spread):\n"
        + shown.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")
        + f"\n  {report.folder / 'table.csv'}, table.md, runs.csv, index.html"
    )
