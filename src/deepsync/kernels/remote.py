"""`make kernel-push`, `kernel-status`, `kernel-output`: the bundles on Kaggle, and back.

Every call goes through the real kaggle client. Push sends each bundle (Kaggle queues
them, so the patients' kernels run side by side); a push that Kaggle refuses is an error
even where the client's own CLI would exit 0. Output downloads each kernel's small files
(CSV, JSON, logs; not checkpoints) into ``kernels/output/<slug>/``, merges the patients'
runs into ``runs/<run>-kaggle/`` and makes its submission as `make submit` does: written
in ``submissions/``, validated, scored, in the ledger.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from deepsync.config import Config
from deepsync.durable import FolderLock, read_csv, read_json, write_csv, write_text
from deepsync.errors import DeepSyncError
from deepsync.kaggle_client import authenticated_api, kaggle_errors
from deepsync.kernels.bundle import Bundle
from deepsync.kernels.entry import TEST_LABELS
from deepsync.runs import trained_models
from deepsync.submit import submission
from deepsync.train.metrics import oof_metrics

OUTPUT_PATTERN = r"\.(csv|json|log|txt)$"  # what comes home: not the checkpoints
DONE = "COMPLETE"
PER_KERNEL = (("train", "patients"), ("train", "runs_root"), ("features", "cache_root"))


@dataclass(frozen=True)
class Pushed:
    kernel: str
    version: int | None
    url: str


@dataclass(frozen=True)
class State:
    kernel: str
    patients: list[int] | None
    status: str
    message: str


def push(bundles: list[Bundle]) -> list[Pushed]:
    """Send every bundle; Kaggle starts each as a new version."""
    api = authenticated_api("the bundles stay in kernels/ to push later")
    pushed = []
    for bundle in bundles:
        with kaggle_errors(f"pushing {bundle.kernel}"), _quiet():
            response = api.kernels_push(str(bundle.folder))
        problems = [
            f"{kind}: {', '.join(values)}"
            for kind, values in (
                ("unknown datasets", response.invalid_dataset_sources),
                ("unknown competitions", response.invalid_competition_sources),
            )
            if values
        ]
        if response.error or problems:
            advice = " (upload it with `make kaggle-dataset`)" if problems else ""
            raise DeepSyncError(
                f"Kaggle refused {bundle.kernel}: {response.error or '; '.join(problems)}{advice}"
            )
        pushed.append(Pushed(bundle.kernel, response.version_number, response.url or ""))
    return pushed


def status(bundles: list[Bundle]) -> list[State]:
    """Each kernel's state as Kaggle reports it (QUEUED, RUNNING, COMPLETE, ERROR, ...)."""
    api = authenticated_api()
    states = []
    for bundle in bundles:
        with kaggle_errors(f"asking for {bundle.kernel}"), _quiet():
            try:
                response = api.kernels_status(bundle.kernel)
            except ValueError as error:  # the client's own words for 401/403
                raise DeepSyncError(f"{bundle.kernel}: {error}; push it first") from None
        state = getattr(response.status, "name", str(response.status or "UNKNOWN"))
        states.append(State(bundle.kernel, bundle.patients, state, response.failure_message or ""))
    return states


def render_states(states: list[State]) -> str:
    lines = [f"{'kernel':<44} {'patients':<9} {'status':<20} message"]
    for s in states:
        who = ",".join(map(str, s.patients)) if s.patients else "all"
        lines.append(f"{s.kernel:<44} {who:<9} {s.status:<20} {s.message}")
    return "\n".join(lines)


def fetch_outputs(bundles: list[Bundle], folder: Path) -> list[Path]:
    """Download each finished kernel's small outputs; the folders they are in."""
    api = authenticated_api()
    unfinished = [s for s in status(bundles) if s.status != DONE]
    if unfinished:
        listed = ", ".join(f"{s.kernel} ({s.status})" for s in unfinished)
        raise DeepSyncError(
            f"not every kernel has finished: {listed}; `make kernel-status` says when"
        )
    homes = []
    for bundle in bundles:
        home = Path(folder) / "output" / bundle.slug
        with kaggle_errors(f"downloading the output of {bundle.kernel}"), _quiet():
            try:
                api.kernels_output(
                    bundle.kernel, str(home), file_pattern=OUTPUT_PATTERN, force=True, quiet=True
                )
            except ValueError as error:  # a name outside the folder, or no access
                raise DeepSyncError(f"{bundle.kernel}: {error}") from None
        homes.append(home)
    return homes


def merge_runs(parts: list[Path], target: Path) -> Path:
    """Per-patient run folders into one, as `make train` on every patient writes it.

    ``parts``: ``runs/<run>/`` folders, each from one kernel, made with the same settings.
    """
    configs = [read_json(p / "config.json") for p in parts]
    settings = []
    for described in configs:  # where each kernel kept things, and whom it trained, differ
        for section, key in PER_KERNEL:
            described["settings"][section][key] = ""
        settings.append(described["settings"])
    if any(s != settings[0] for s in settings[1:]):
        raise DeepSyncError(
            "the kernels' runs were made with different settings: render and push them together"
        )
    folds = pd.concat([read_csv(p / "folds.csv") for p in parts], ignore_index=True)
    if folds["segment"].duplicated().any():
        raise DeepSyncError("two kernels trained the same patient: keep one of them")
    held = [trained_models(p) for p in parts]
    models = [m for m in held[0] if all(m in h for h in held[1:])]  # trained by every kernel
    merged = configs[0] | {"merged_from": [str(p) for p in parts], "models": models}
    with FolderLock(target, "deepsync kernel-output"):
        write_csv(target / "folds.csv", folds)
        for model in models:
            out = target / held[0][model].name
            out.mkdir(exist_ok=True)
            oof = pd.concat([read_csv(h[model] / "oof.csv") for h in held], ignore_index=True)
            test = pd.concat([read_csv(h[model] / "test.csv") for h in held], ignore_index=True)
            write_csv(out / "oof.csv", oof)
            write_csv(out / "test.csv", test)
            write_text(out / "metrics.json", json.dumps(oof_metrics(oof), indent=1))
        write_text(target / "config.json", json.dumps(merged, indent=1))  # last: it lists them
    return target


def bring_home(config: Config, bundles: list[Bundle]):
    """Outputs downloaded, runs merged into ``runs/<run>-kaggle``, its submission made."""
    from deepsync import pipeline

    homes = fetch_outputs(bundles, Path(config.kernels.folder))
    runs = [home / "runs" / config.train.run for home in homes]
    missing = [str(r) for r in runs if not (r / "config.json").exists()]
    if missing:
        raise DeepSyncError(
            f"no run in the output of {', '.join(missing)}: the kernel failed early; read "
            "its log beside it"
        )
    name = f"{config.train.run}-kaggle"
    merge_runs(runs, Path(config.train.runs_root) / name)
    reference = homes[0] / "reference"
    merged = dataclasses.replace(
        config,
        train=dataclasses.replace(config.train, run=name, patients=""),
        submit=dataclasses.replace(config.submit, name=config.submit.name or name),
    )
    options = pipeline.Options(
        sample_path=_present(reference / submission.SAMPLE_FILE),
        labels_path=_present(reference / TEST_LABELS),
    )
    return pipeline.run(merged, ["submit"], options)["submit"]


def _present(path: Path) -> Path | None:
    return path if path.exists() else None


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())
