"""`make train`: every model of ``train.models`` per patient on the run's folds; OOF metrics.

The run folder's layout, and what a run records: `deepsync.runs`.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from deepsync import runs
from deepsync.config import Config, ModelSpec, model_folder, parse_models
from deepsync.durable import (
    FolderLock,
    read_csv,
    read_json,
    write_csv,
    write_text,
)
from deepsync.errors import DeepSyncError
from deepsync.features.cache import FeatureCache, cache_folder
from deepsync.runs import cnn_fold_folder, run_folder
from deepsync.train import tabular
from deepsync.train.folds import (
    grouped_folds,
    load_or_make_folds,
    random_folds,
    training_segments,
)
from deepsync.train.metrics import calibrate, oof_metrics, summary_table


@dataclass
class TrainReport:
    folder: Path
    metrics: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0
    warned: list[str] = field(default_factory=list)


def train(
    config: Config, *, progress: bool = True, reuse: Sequence[Path] = (), workers: int = 0
) -> TrainReport:
    """Fit every configured model; write OOF and test predictions and metrics.

    ``workers``: processes for a window model's folds (0: one per core; 1: here), used when
    its folds are big enough (`tabular.fit_folds`); the CNN's are ``cnn.fold_processes``.

    ``reuse``: other run folders (the study's variants on the same set) whose models this
    run takes, linked rather than trained again, where one was trained on the same folds
    with the same settings (`deepsync.runs.model_settings`).
    """
    started = time.perf_counter()
    models = config.train.model_specs
    if any(m.estimator == "cnn" for m in models):
        from deepsync.train.model import check_model_name

        check_model_name(config.cnn.model)
    folder = run_folder(config)
    with FolderLock(cache_folder(config.features), "deepsync train", shared=True):
        cache = FeatureCache.open(cache_folder(config.features))
        for model in models:  # a missing family is an error before anything trains
            cache.check_families(model.families)
        with FolderLock(folder, "deepsync train"):
            workers = workers if workers > 0 else os.cpu_count() or 1
            report = _train(config, cache, models, folder, progress, reuse, workers)
    report.seconds = time.perf_counter() - started
    return report


def _train(
    config: Config,
    cache: FeatureCache,
    models: list,
    folder: Path,
    progress: bool,
    reuse: Sequence[Path] = (),
    workers: int = 1,
) -> TrainReport:
    runs.claim(folder, config)
    segments = training_segments(cache.segments, config.train.patient_numbers)
    if segments.empty:
        raise DeepSyncError("no training segments in the feature cache; run `make features`")
    folds = load_or_make_folds(
        folder / "folds.csv", segments, config.train.folds, config.train.seed
    )
    test = _test_segments(cache, folds)
    report = TrainReport(folder)
    for model in models:
        if (source := runs.same_model(folder, config, model, reuse)) is not None:
            report.metrics[model.name] = runs.adopt(source, folder, model)
            tqdm.write(f"{model.name}: the same model as {source.parent} (linked, not trained)")
            continue
        clock = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if model.estimator == "cnn":
                oof, test_scores = _run_cnn(cache, folds, test, config, folder, progress)
            else:
                oof, test_scores = _run_tabular(
                    cache, folds, test, config, model, progress, workers
                )
        report.warned += sorted({str(w.message) for w in caught})
        oof["calibrated"] = calibrate(oof)
        out = folder / model.folder
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "oof.csv", oof)
        write_csv(out / "test.csv", test_scores)
        metrics = oof_metrics(oof)
        metrics["seconds"] = (  # its fitting time; a CNN's folds may span several calls
            _cnn_seconds(folder) if model.estimator == "cnn" else time.perf_counter() - clock
        )
        write_text(out / "metrics.json", json.dumps(metrics, indent=1))
        runs.record_model(folder, model)
        report.metrics[model.name] = metrics
    return report


def _cnn_seconds(folder: Path) -> float:
    """The CNN's training time: every fold's epochs as its log.csv recorded them."""
    logs = sorted((folder / "cnn").glob("*/fold*/log.csv"))
    return float(sum(read_csv(log)["seconds"].sum() for log in logs))


def _test_segments(cache: FeatureCache, folds: pd.DataFrame) -> pd.DataFrame:
    """The test segments of the patients being trained (all-zero ones included)."""
    segments = cache.segments
    keep = (segments["split"] == "test") & segments["patient"].isin(folds["patient"].unique())
    chosen = segments.loc[keep & (segments["status"] == "ok"), ["segment", "patient", "row"]]
    return chosen.assign(all_zero=segments.loc[chosen.index, "all_zero"].astype(bool))


def _fold_parts(folds: pd.DataFrame, test: pd.DataFrame):
    """Per (patient, fold): the training part, the held-out part and the patient's test rows."""
    for patient, part in folds.groupby("patient", sort=True):
        patient_test = test[test["patient"] == patient]
        for fold in sorted(part["fold"].unique()):
            training, held = part[part["fold"] != fold], part[part["fold"] == fold]
            yield patient, int(fold), training, held, patient_test


def _predictions(held, scores, patient_test, test_scores, fold):
    """One fold's rows of oof.csv and of test.csv."""
    return (
        held[["segment", "patient", "label", "fold"]].assign(score=scores),
        patient_test[["segment", "patient", "all_zero"]].assign(fold=fold, score=test_scores),
    )


def _run_tabular(
    cache, folds, test, config, model: ModelSpec, progress: bool = False, workers: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A window model (`deepsync.train.tabular`) fitted per patient and fold (several folds
    at once in ``workers`` processes when they are big enough: `tabular.fit_folds`)."""
    parts = list(_fold_parts(folds, test))
    jobs = [
        tabular.FoldFit(
            cache.folder,
            model,
            training["row"].to_numpy(),
            training["label"].to_numpy(),
            [held["row"].to_numpy(), patient_test["row"].to_numpy()],
            config.baseline,
            config.train.seed + fold,
        )
        for _, fold, training, held, patient_test in parts
    ]
    scores = tabular.fit_folds(cache, jobs, workers, progress=progress, desc=model.name)
    oof_parts, test_parts = [], []
    for (_, fold, _, held, patient_test), fitted in zip(parts, scores, strict=True):
        oof, tested = _predictions(held, fitted[0], patient_test, fitted[1], fold)
        oof_parts.append(oof)
        test_parts.append(tested)
    return pd.concat(oof_parts, ignore_index=True), pd.concat(test_parts, ignore_index=True)


def _run_cnn(cache, folds, test, config, folder, progress) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every (patient, fold) of the CNN: finished ones read back, the rest trained.

    Folds train here one after the other, or several at once in their own processes
    (one per GPU when there are several; `deepsync.train.fold_processes`).
    """
    parts, results, jobs = _cnn_jobs(cache, folds, test, config, folder)
    results.update(_train_cnn_folds(jobs, cache, config, progress))
    oof_parts, test_parts = [], []
    for key, (held, patient_test) in parts.items():  # the folds' own order, however trained
        result = results[key]
        oof, tested = _predictions(
            held, result["valid_scores"], patient_test, result["test_scores"], key[1]
        )
        oof_parts.append(oof)
        test_parts.append(tested)
    return pd.concat(oof_parts, ignore_index=True), pd.concat(test_parts, ignore_index=True)


def _cnn_jobs(cache, folds, test, config, folder):
    """Each fold's held-out and test rows by key, the results of folds already trained,
    and a job for each of the others."""
    from deepsync.train.cnn import FoldData
    from deepsync.train.fold_processes import FoldJob

    parts, results, jobs = {}, {}, []
    everyone = config.cnn.scope == "all"
    if everyone:  # one model per fold over every patient, each normalised by its own
        groups = np.full(cache.stacks.shape[0], -1, dtype=np.int64)
        patients = sorted(folds["patient"].unique())
        for k, patient in enumerate(patients):
            groups[cache.segments.loc[cache.segments["patient"] == patient, "row"]] = k
        pieces = [
            ("all", int(fold), folds[folds["fold"] != fold], folds[folds["fold"] == fold], test)
            for fold in sorted(folds["fold"].unique())
        ]
    else:
        groups = None
        pieces = _fold_parts(folds, test)
    for patient, fold, training, held, patient_test in pieces:
        key = (patient if everyone else int(patient), fold)
        parts[key] = (held, patient_test)
        fold_folder = cnn_fold_folder(folder, patient, fold)
        if (fold_folder / "result.json").exists():
            results[key] = read_json(fold_folder / "result.json")
            _say_fold(key, results[key], "(already trained)")
            continue
        data = FoldData(
            training["row"].to_numpy(),
            training["label"].to_numpy(),
            held["row"].to_numpy(),
            held["label"].to_numpy(),
            patient_test["row"].to_numpy(),
            groups,
        )
        meta = {"patient": key[0], "fold": fold, "model": config.cnn.model}
        seed = config.train.seed + (0 if everyone else 100 * key[0]) + fold
        jobs.append(FoldJob(cache.folder, data, config.cnn, seed, fold_folder, meta))
    return parts, results, jobs


def _train_cnn_folds(jobs, cache, config, progress) -> dict[tuple, dict]:
    """Train the jobs here, one after the other, or in processes of their own."""
    from deepsync.train.cnn import fit_fold
    from deepsync.train.fold_processes import processes_for, train_folds

    results = {}
    processes = min(processes_for(config.cnn), len(jobs))
    if processes > 1:
        tqdm.write(f"cnn: {len(jobs)} folds, {processes} at a time in their own processes")
        for job, result in train_folds(jobs, processes):
            key = (job.meta["patient"], job.meta["fold"])
            results[key] = result
            _say_fold(key, result)
        return results
    for job in jobs:
        key = (job.meta["patient"], job.meta["fold"])
        results[key] = fit_fold(
            cache.stacks,
            job.data,
            job.cfg,
            job.seed,
            job.folder,
            progress=progress,
            desc=f"cnn patient {key[0]} fold {key[1]}",
            meta=job.meta,
        )
        _say_fold(key, results[key])
    return results


def _say_fold(key: tuple, result: dict, note: str = "") -> None:
    who = "all patients" if key[0] == "all" else f"patient {key[0]}"
    tqdm.write(
        f"cnn {who} fold {key[1]}: best AUC {result['best_auc']:.3f} at epoch "
        f"{result['best_epoch']} of {result['epochs_run']}" + (f" {note}" if note else "")
    )


def leak_check(config: Config) -> dict[str, float]:
    """The baseline's pooled OOF AUC on hour-grouped folds and on hour-blind random folds."""
    cache = FeatureCache.open(cache_folder(config.features))
    segments = training_segments(cache.segments, config.train.patient_numbers)
    out = {}
    for name, make in (("grouped", grouped_folds), ("random", random_folds)):
        folds = make(segments, config.train.folds, config.train.seed)
        no_test = _test_segments(cache, folds).iloc[:0]  # out-of-fold scores only
        baseline = parse_models("baseline")[0]
        oof, _ = _run_tabular(cache, folds, no_test, config, baseline)
        out[name] = oof_metrics(oof)["pooled_auc"]
    return out


def summary(report: TrainReport) -> str:
    lines = [f"train: {report.folder} in {report.seconds:.0f} s; out-of-fold ROC AUC:"]
    lines.append(summary_table(report.metrics))
    lines.append(
        "  pooled: one AUC over all patients' segments, as the leaderboard scores; "
        "platt: per-patient Platt scaling, cross-fitted (how `make submit` calibrates each "
        "model: below)"
    )
    if "baseline" in report.metrics:
        lines.append(
            "  baseline: the 2016 winners' best single model (relative log power, bagged "
            "XGBoost), the bar; vs baseline: pooled AUC less the baseline's"
        )
    for message in report.warned[:5]:
        lines.append(f"  warning: {message}")
    for name in report.metrics:
        where = report.folder / model_folder(name)
        lines.append(f"  {name}: {where / 'oof.csv'}, metrics.json, test.csv")
    return "\n".join(lines)
