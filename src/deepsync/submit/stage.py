"""`make submit`: a run's test predictions to ``submissions/<name>.csv``, scored, ledgered.

From ``runs/<run>/``, for every model trained there: the fold models' test scores
averaged per segment, every cross-patient calibration measured on the OOF predictions
(pooled AUC, as the leaderboard scores), the best one applied (or the configured one),
and, with several models, their blend as one more candidate (``submit.blend`` names
its models, every model by default; ``submit.blend_weights`` its weights, else they are
chosen on the OOF folds: `deepsync.submit.blend`). The candidate with the
best pooled OOF AUC is written (or the configured ``submit.model``), in the sample
submission's order; all-zero test segments get the median score (neutral: the
leaderboard ignores them). Beside it, ``<name>.json`` describes it (run, settings, OOF
AUCs, local scores), and ``ledger.csv`` gains a ``written`` event, then ``submitted``
or ``refused`` when it is sent to Kaggle.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from deepsync.config import Config, from_dict
from deepsync.durable import FolderLock, read_csv, read_json, write_csv, write_text
from deepsync.errors import DeepSyncError, os_error_line
from deepsync.features.cache import FeatureCache, cache_folder
from deepsync.runs import git_revision, run_folder, trained_models
from deepsync.submit import calibration, kaggle_api, ledger, references, scoring, submission
from deepsync.submit.blend import fitted_blend, rank_average
from deepsync.train.metrics import auc

MISSING_SHOWN = 3


@dataclass
class Candidate:
    """One model (or the blend) ready to submit: calibrated OOF and test scores."""

    model: str
    calibration: str
    oof_auc: float
    oof: pd.Series  # calibrated OOF score by segment
    test: pd.Series  # calibrated, fold-averaged test score by segment (file name)
    measured: dict[str, float] = field(default_factory=dict)  # pooled OOF AUC per method
    all_zero: frozenset[str] = frozenset()  # test segments that are all zero
    raw: pd.Series | None = None  # uncalibrated OOF score by segment


@dataclass
class SubmissionReport:
    path: Path
    chosen: Candidate
    candidates: list[Candidate]
    scores: dict | None  # scoring.score's result; None where no labels match the test set
    neutral_files: int  # all-zero test segments given the neutral score
    filled_files: int  # test files without a prediction, given the neutral score
    config_hash: str
    warned: list[str] = field(default_factory=list)
    kaggle_ref: str = ""


def make_submission(
    config: Config, *, sample_path: Path | None = None, labels_path: Path | None = None
) -> SubmissionReport:
    """Write, validate, score and ledger the run's submission (nothing sent to Kaggle).

    The sample submission and test labels are the data set's own (`make data`), else the
    real competition's; or those given (a kernel's, brought home with its run).
    """
    run = run_folder(config)
    if not (run / "config.json").exists():
        raise DeepSyncError(f"no trained run in {run}: run `make train` first")
    with (  # the run's too: with submit.tta, the CNN's rescored folds are written there
        FolderLock(run, "deepsync submit"),
        FolderLock(config.submit.folder, "deepsync submit"),
    ):
        return _make_submission(config, run, sample_path, labels_path)


def _make_submission(
    config: Config, run: Path, sample_path: Path | None, labels_path: Path | None
) -> SubmissionReport:
    settings = read_json(run / "config.json")
    found = candidates(run, config)
    chosen = _choose(found, config.submit.model)
    sample = submission.read_sample(sample_path or references.pick_sample(config))
    scores, neutral, filled, warned = _final_scores(chosen, sample, config)
    name = config.submit.name or config.train.run
    folder = Path(config.submit.folder)
    path = folder / f"{name}.csv"
    digest = _config_hash(settings["settings"], config, [c.model for c in found])
    _refuse_overwriting_a_sent_file(folder, path, digest)
    submission.write(path, scores, sample)
    labels = scoring.load_labels(labels_path or references.pick_labels(config))
    local = scoring.score(scores, labels) if scoring.matches(labels, sample) else None
    report = SubmissionReport(path, chosen, found, local, neutral, filled, digest, warned)
    _describe(report, config, settings)
    ledger.append(
        folder,
        "written",
        file=path.name,
        run=config.train.run,
        model=chosen.model,
        calibration=chosen.calibration,
        config_hash=digest,
        oof_auc=chosen.oof_auc,
        local_public=_split_auc(local, "Public"),
        local_private=_split_auc(local, "Private"),
    )
    return report


def send(report: SubmissionReport, config: Config, message: str) -> str:
    """Submit the report's file to Kaggle; ledger ``submitted`` (or ``refused``, then raise)."""
    folder = Path(config.submit.folder)
    entry = {
        "file": report.path.name,
        "run": config.train.run,
        "model": report.chosen.model,
        "calibration": report.chosen.calibration,
        "config_hash": report.config_hash,
        "oof_auc": report.chosen.oof_auc,
        "message": message,
    }
    try:
        ref = kaggle_api.submit(report.path, message, config.data.competition)
    except BaseException as error:  # whatever stopped it, the ledger says it was not sent
        ledger.append(folder, "refused", **(entry | {"message": _why(error)}))
        raise
    report.kaggle_ref = ref
    try:
        ledger.append(folder, "submitted", kaggle_ref=ref, kaggle_status="PENDING", **entry)
    except OSError as error:  # sent all the same: say so, or it would be sent twice
        raise DeepSyncError(
            f"Kaggle took {report.path.name} (submission {ref}), but the ledger could not "
            f"record it: {os_error_line(error)}; do not send it again"
        ) from error
    return ref


def _why(error: BaseException) -> str:
    """What stopped a submission, for the ledger's ``refused`` event."""
    if isinstance(error, DeepSyncError):
        return str(error)
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C) before Kaggle answered: `make leaderboard KAGGLE=1` tells"
    return f"failed before Kaggle answered ({type(error).__name__}: {error})"


# -- candidates ---------------------------------------------------------------------------


def candidates(run: Path, config: Config) -> list[Candidate]:
    """Each trained model, calibrated; plus their rank average when there are several."""
    found = []
    for model, folder in trained_models(run).items():
        oof, test = read_csv(folder / "oof.csv"), read_csv(folder / "test.csv")
        if model == "cnn" and config.submit.tta:
            oof, test = _cnn_with_tta(run, oof, test, config.submit.tta)
        test = test.groupby(["segment", "patient", "all_zero"], as_index=False)["score"].mean()
        measured = calibration.measured(oof)
        method = config.submit.calibration
        method = calibration.best(measured) if method == "auto" else method
        oof_scores = pd.Series(calibration.calibrate_oof(oof, method), index=oof["segment"])
        found.append(
            Candidate(
                model,
                method,
                measured[method],
                oof_scores,
                pd.Series(calibration.calibrate_scores(oof, test, method), index=test["segment"]),
                measured,
                frozenset(test.loc[test["all_zero"], "segment"]),
                pd.Series(oof["score"].to_numpy(), index=oof["segment"]),
            )
        )
    if not found:
        raise DeepSyncError(f"{run} holds no trained model (oof.csv, test.csv): run `make train`")
    blended = _blended(found, config)
    if len(blended) > 1:
        found.append(_blend(run, blended, config))
    return found


def _blended(found: list[Candidate], config: Config) -> list[Candidate]:
    """The candidates ``submit.blend`` names (every one when empty), in its order."""
    if not config.submit.blend:
        return found
    by_name = {c.model: c for c in found}
    wanted = [m.name for m in config.submit.blend_specs]
    missing = [w for w in wanted if w not in by_name]
    if missing:
        raise DeepSyncError(
            f"submit.blend names {', '.join(missing)}, not trained in this run (it has "
            f"{', '.join(by_name)}): train it with train.models, or leave it out"
        )
    return [by_name[w] for w in wanted]


def _blend(run: Path, found: list[Candidate], config: Config) -> Candidate:
    """The models' rank blend: ``submit.blend_weights``, else cross-fitted on the OOF folds.

    ``measured`` holds beside it the equal-weight rank average's pooled OOF AUC, of the
    calibrated scores and of the raw ones (the like of each model's uncalibrated figure).
    """
    oof = read_csv(trained_models(run)[found[0].model] / "oof.csv").set_index("segment")
    inputs = [c.oof.reindex(oof.index) for c in found]
    if config.submit.blend_weights:
        weights = config.submit.weights
        if len(weights) != len(found):
            raise DeepSyncError(
                f"submit.blend_weights={config.submit.blend_weights} gives {len(weights)} "
                f"weights for {len(found)} models ({', '.join(c.model for c in found)})"
            )
        blended, how = rank_average(inputs, list(weights)), "given weights"
    else:
        fitted = fitted_blend(inputs, oof["label"], oof["fold"])
        blended, weights, how = fitted.oof, fitted.weights, "cross-fitted weights"
    named = " ".join(f"{c.model} {w:g}" for c, w in zip(found, weights, strict=True))
    return Candidate(
        "blend",
        "+".join(c.calibration for c in found) + f", weights {named}",
        auc(oof["label"], blended),
        blended,
        rank_average([c.test for c in found], list(weights)),
        {
            how: auc(oof["label"], blended),
            "equal weights": auc(oof["label"], rank_average(inputs)),
            "equal weights, raw scores": auc(
                oof["label"], rank_average([c.raw.reindex(oof.index) for c in found])
            ),
        },
        all_zero=found[0].all_zero,
    )


def _cnn_with_tta(
    run: Path, oof: pd.DataFrame, test: pd.DataFrame, copies: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The CNN folds' OOF and test scores again, with ``copies`` time-shifted copies each.

    Both are rescored, so that the OOF AUC measures what the test scores get. Computed
    once per number of copies (``runs/<run>/cnn/tta<copies>/``), then read back.
    """
    from deepsync.runs import cnn_fold_folder
    from deepsync.train.cnn import predict_saved_fold

    folder = run / "cnn" / f"tta{copies}"
    if (folder / "oof.csv").exists() and (folder / "test.csv").exists():
        return read_csv(folder / "oof.csv"), read_csv(folder / "test.csv")
    trained = from_dict(read_json(run / "config.json")["settings"])
    cache = FeatureCache.open(cache_folder(trained.features))
    row_of = cache.segments.set_index("segment")["row"]
    oof, test = oof.copy(), test.copy()
    parts = list(oof.groupby(["patient", "fold"]))
    for (patient, fold), held in tqdm(parts, desc=f"cnn tta x{copies + 1}", unit="fold"):
        tested = test[(test["patient"] == patient) & (test["fold"] == fold)]
        valid_scores, test_scores = predict_saved_fold(
            cache.stacks,
            cnn_fold_folder(run, "all" if trained.cnn.scope == "all" else patient, fold),
            [row_of[held["segment"]].to_numpy(), row_of[tested["segment"]].to_numpy()],
            trained.cnn,
            copies,
        )
        oof.loc[held.index, "score"] = valid_scores
        test.loc[tested.index, "score"] = test_scores
    folder.mkdir(exist_ok=True)
    write_csv(folder / "oof.csv", oof)
    write_csv(folder / "test.csv", test)
    return oof, test


def _choose(candidates: list[Candidate], wanted: str) -> Candidate:
    if wanted == "auto":  # the best pooled OOF AUC; ties to the first (simpler) one
        return max(candidates, key=lambda c: np.nan_to_num(c.oof_auc, nan=-1.0))
    for candidate in candidates:
        if candidate.model == wanted:
            return candidate
    have = ", ".join(c.model for c in candidates)
    raise DeepSyncError(f"submit.model={wanted} is not in this run (it has {have})")


# -- the file's scores ---------------------------------------------------------------------


def _final_scores(
    chosen: Candidate, sample: list[str], config: Config
) -> tuple[pd.Series, int, int, list[str]]:
    """Scores for every sample file; all-zero and unpredicted files get the neutral score."""
    scores = chosen.test.reindex(sample)
    zero = chosen.all_zero & set(sample)
    known = scores.drop(index=list(zero), errors="ignore").dropna()
    if known.empty:
        raise DeepSyncError("the run predicted none of the sample submission's files")
    trained = {int(f.split("_")[1]) for f in known.index}
    missing = scores.index[scores.isna() & ~scores.index.isin(list(zero))]
    untrained = sorted({int(f.split("_")[1]) for f in missing} - trained)
    if untrained:
        raise DeepSyncError(
            f"run {config.train.run} has no predictions for patient(s) "
            f"{', '.join(map(str, untrained))}: train them too (train.patients), or merge "
            "per-patient runs first"
        )
    neutral = float(known.median())
    warned = []
    if len(missing):
        warned.append(
            f"{len(missing)} test files had no prediction (not in the feature cache: "
            f"{', '.join(missing[:MISSING_SHOWN])}); they get the neutral score {neutral:.4f}"
        )
    scores[list(zero)] = neutral
    scores[missing] = neutral
    return scores, len(zero), len(missing), warned


def _split_auc(scores: dict | None, split: str) -> float | None:
    result = (scores or {}).get(split)
    return None if result is None else result["auc"]


# -- describing, guarding --------------------------------------------------------------------


def _config_hash(run_settings: dict, config: Config, models: list[str]) -> str:
    submit = config.to_dict()["submit"]
    described = {
        "run": run_settings,
        "submit": {k: submit[k] for k in ("model", "calibration", "tta", "blend", "blend_weights")},
        "models": models,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:12]


def _refuse_overwriting_a_sent_file(folder: Path, path: Path, digest: str) -> None:
    """A file Kaggle has seen is never replaced by one made with other settings."""
    events = ledger.read(folder)
    sent = events[(events["event"] == "submitted") & (events["file"] == path.name)]
    if path.exists() and (sent["config_hash"] != digest).any():
        raise DeepSyncError(
            f"{path} was submitted to Kaggle with other settings; keep it and name this one "
            "with --set submit.name=NEW_NAME"
        )


def _describe(report: SubmissionReport, config: Config, settings: dict) -> None:
    """``<name>.json`` beside the submission: where it came from and what it scored."""
    described = {
        "file": report.path.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": config.train.run,
        "model": report.chosen.model,
        "calibration": report.chosen.calibration,
        "config_hash": report.config_hash,
        "oof_auc": report.chosen.oof_auc,
        "candidates": {
            c.model: {"calibration": c.calibration, "oof_auc": c.oof_auc, "measured": c.measured}
            for c in report.candidates
        },
        "local_scores": report.scores,
        "neutral_files": report.neutral_files,
        "filled_files": report.filled_files,
        "submit": config.to_dict()["submit"],
        "run_settings": settings["settings"],
        "git_revision": git_revision(),
    }
    write_text(report.path.with_suffix(".json"), json.dumps(described, indent=1, default=float))


def candidates_summary(run: Path, config: Config) -> str:
    """Each model of the run as `make submit` would send it, and their blend: one line each."""
    found = candidates(run, config)
    lines = ["as `make submit` calibrates them (pooled OOF AUC, cross-fitted):"]
    width = max(len(c.model) for c in found)
    for c in found:
        lines.append(f"  {c.model:<{width}}  {c.oof_auc:.4f}  ({c.calibration})")
    return "\n".join(lines)


def summary(report: SubmissionReport) -> str:
    """What was written, each candidate's OOF AUC, and the local leaderboard scores."""
    lines = [
        f"submit: {report.path} ({report.chosen.model}, calibration {report.chosen.calibration}, "
        f"pooled OOF AUC {report.chosen.oof_auc:.4f})"
    ]
    for c in report.candidates:
        methods = "  ".join(f"{m} {v:.4f}" for m, v in c.measured.items())
        lines.append(
            f"  {c.model:<9} pooled OOF AUC {c.oof_auc:.4f}"
            + (
                f"   by {'weighting' if c.model == 'blend' else 'calibration'}: {methods}"
                if methods
                else ""
            )
        )
    if report.neutral_files:
        lines.append(f"  {report.neutral_files} all-zero test files: neutral (median) score")
    lines += [f"  warning: {w}" for w in report.warned]
    if report.scores is None:
        lines.append("  local scores: no test labels for these files")
    else:
        lines.append("  local leaderboard scores (pooled ROC AUC):")
        lines.append(scoring.describe(report.scores))
    if report.kaggle_ref:
        lines.append(f"  sent to Kaggle: submission {report.kaggle_ref}")
    return "\n".join(lines)
