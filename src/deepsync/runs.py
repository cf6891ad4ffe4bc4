"""The run folder, ``train.runs_root/train.run``: its layout, the models it holds, the
settings it was made with, and where it came from (git revision, library versions). Used
by every stage that reads or writes a run: train, submit, study, report, kernels.

Layout of ``runs/<run>/``:
- ``config.json``: the resolved configuration, git revision and library versions, and the
  models trained in the folder so far (``models``, in the order they were first trained);
- ``folds.csv``: segment, patient, label, hour, row, fold (written once, read by all);
- ``<model>/oof.csv``: segment, patient, label, fold, score, calibrated (``<model>``: the
  model's name with ':' as '-', as ``gbm-power+corr``);
- ``<model>/test.csv``: segment, patient, all_zero, fold, score (each fold's model on the
  test set; all-zero segments are predicted too, and flagged);
- ``<model>/metrics.json``: AUC per fold and patient, pooled raw and calibrated, and the
  seconds its fitting took;
- ``cnn/patient<P>/fold<K>/``: best.pt, log.csv, result.json (last.pt while training);
  ``cnn/all/fold<K>/`` instead with ``cnn.scope=all`` (one model of every patient per fold).
A rerun skips CNN folds whose result is saved and resumes a fold that was interrupted
(window models refit: seconds); a run folder made with other settings is refused rather
than mixed, and so is a second run writing the same folder at once (``.deepsync.lock``).
Models may be added to a run later (``train.models`` is not such a setting).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from deepsync.config import Config, ModelSpec, model_folder
from deepsync.durable import link_folder, read_json, write_text
from deepsync.errors import DeepSyncError

SETTINGS = ("features", "train", "baseline", "cnn")  # what a run's results depend on
# A run may gain models (each one's results stand alone), and a cache may gain families.
NOT_SETTINGS = ("train.models", "features.families")


def run_folder(config: Config) -> Path:
    """``train.runs_root/train.run``."""
    return Path(config.train.runs_root) / config.train.run


def run_settings(config: Config) -> dict:
    """What a run's results depend on: the `SETTINGS` sections less `NOT_SETTINGS`."""
    settings = {k: dict(v) for k, v in config.to_dict().items() if k in SETTINGS}
    for key in NOT_SETTINGS:
        section, name = key.split(".")
        settings[section].pop(name)
    return settings


def claim(folder: Path, config: Config) -> None:
    """Write config.json, or check that the run folder was made with these settings."""
    settings = run_settings(config)
    path = folder / "config.json"
    if path.exists():
        saved = read_json(path).get("settings") or {}
        defaults = run_settings(Config())
        for section, values in saved.items():  # a setting added since: its default
            for name, value in defaults.get(section, {}).items():
                values.setdefault(name, value)
        if saved != settings:
            changed = [
                f"{s}.{k}"
                for s in SETTINGS
                for k in [*settings[s], *(k for k in saved.get(s, {}) if k not in settings[s])]
                if saved.get(s, {}).get(k) != settings[s].get(k)
            ]
            raise DeepSyncError(
                f"{folder} was trained with other settings ({', '.join(changed[:4])}); "
                "use --set train.run=NEW_NAME, or delete the folder to start again"
            )
        return
    described = {"settings": settings, "config": config.to_dict(), "models": []}
    write_text(path, json.dumps({**described, **provenance()}, indent=1))


def model_settings(settings: dict, model: ModelSpec) -> dict:
    """What one model's results depend on: a run's `run_settings` less the run's name and
    the section of the other kind of model (a window model's ``cnn``, the CNN's
    ``baseline``)."""
    kept = {
        k: v
        for k, v in settings.items()
        if k != ("baseline" if model.estimator == "cnn" else "cnn")
    }
    kept["train"] = {k: v for k, v in kept["train"].items() if k != "run"}
    return kept


def same_model(folder: Path, config: Config, model: ModelSpec, runs: Sequence[Path]) -> Path | None:
    """The folder of ``model`` in one of ``runs`` trained on this run's folds with the same
    settings, if this run does not hold it yet; else None."""
    if not runs or model.name in trained_models(folder):
        return None
    wanted = model_settings(run_settings(config), model)
    folds = (folder / "folds.csv").read_bytes()
    for run in map(Path, runs):
        if run.resolve() == folder.resolve():
            continue
        try:  # a sibling that is damaged is skipped
            held = trained_models(run)
            if model.name not in held:
                continue
            saved = read_json(run / "config.json").get("settings") or {}
            same = "train" in saved and model_settings(saved, model) == wanted
            if same and (run / "folds.csv").read_bytes() == folds:
                return held[model.name]
        except (DeepSyncError, OSError):
            continue
    return None


def adopt(source: Path, folder: Path, model: ModelSpec) -> dict:
    """``source`` (a model's folder of another run) as this run's ``model``; its metrics."""
    out = folder / model.folder
    stale = out.with_name(out.name + ".stale")
    shutil.rmtree(stale, ignore_errors=True)
    if out.exists():  # an interrupted training of the model here: set aside in one step
        os.rename(out, stale)
    link_folder(source, out)
    shutil.rmtree(stale, ignore_errors=True)
    record_model(folder, model)
    return read_json(out / "metrics.json")


def record_model(folder: Path, model: ModelSpec) -> None:
    """Add ``model`` to config.json's ``models`` (kept in the order first trained)."""
    path = folder / "config.json"
    described = read_json(path)
    known = _models(described, path)
    if model.name not in known:
        known.append(model.name)
        write_text(path, json.dumps(described, indent=1))


def trained_models(run: Path) -> dict[str, Path]:
    """The models a run holds (name -> folder), as trained: oof.csv and test.csv there."""
    run = Path(run)
    path = run / "config.json"
    try:
        names = _models(read_json(path), path)
    except FileNotFoundError:  # a run not started
        return {}
    folders = {name: run / model_folder(name) for name in names}
    return {
        name: path
        for name, path in folders.items()
        if (path / "oof.csv").exists() and (path / "test.csv").exists()
    }


def _models(described, path: Path) -> list[str]:
    """config.json's ``models``; a one-line error where it has none."""
    models = described.get("models") if isinstance(described, dict) else None
    if not isinstance(models, list):
        raise DeepSyncError(
            f"{path} lists no trained models (damaged, or made by an older kit): delete "
            "the run folder, or train under another train.run"
        )
    return models


def git_revision() -> str:
    """The kit's git revision (short), or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def provenance() -> dict:
    """Where a run came from: the git revision and the versions of the libraries."""
    import sklearn
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__}
    versions["scikit-learn"] = sklearn.__version__
    try:
        import timm

        versions["timm"] = timm.__version__
    except ImportError:
        pass
    return {"git_revision": git_revision(), "versions": versions}


def cnn_fold_folder(run: Path, patient, fold: int) -> Path:
    """``cnn/patient<P>/fold<K>`` of a run, or ``cnn/all/fold<K>`` (cnn.scope=all)."""
    part = "all" if patient == "all" else f"patient{patient}"
    return run / "cnn" / part / f"fold{fold}"
