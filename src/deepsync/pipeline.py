"""The pipeline runner: data -> features -> train -> submit for one configuration.

The one place the stages are wired together. The CLI's stage commands, the study, the
Kaggle kernels' entry and the benchmarks call `run` with the stages they want. Data,
features and the CNN's folds skip what is already done (resumable); window models are
refit (seconds) and each submit writes a new file and ledger line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from deepsync.config import Config
from deepsync.errors import DeepSyncError

STAGES = ("data", "features", "train", "submit")


class StageFailed(DeepSyncError):
    """A stage ran to its end but left work undone (unreadable segments)."""


@dataclass(frozen=True)
class Options:
    """How the stages run; the stage-specific ones are ignored by the others."""

    workers: int = 0  # processes for parallel work (0: one per core)
    progress: bool = True  # progress bars
    reuse: Sequence[Path] = ()  # train: sibling run folders whose models may be linked
    sample_path: Path | None = None  # submit: the sample submission (default: the data's)
    labels_path: Path | None = None  # submit: the test labels (default: the data's)
    # a stage that leaves work undone (features: unreadable segments, left out of the
    # cache) stops the run (`StageFailed`); else what follows runs without that work
    stop_on_failure: bool = False


def run(
    config: Config,
    stages: Iterable[str],
    options: Options = Options(),
    *,
    say: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Run ``stages`` (names of `STAGES`, in pipeline order) for ``config``.

    ``say`` receives each stage's summary as it ends (the CLI prints it, a kernel flushes
    it to its log, the study keeps quiet). With ``options.stop_on_failure``, a stage that
    leaves work undone raises `StageFailed` after its summary and nothing after it runs.
    Returns each stage's report by name.
    """
    wanted = list(stages)
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise DeepSyncError(f"unknown stage {unknown[0]!r}: choose from {', '.join(STAGES)}")
    if options.workers <= 0:
        options = replace(options, workers=os.cpu_count() or 1)
    reports = {}
    for stage in sorted(wanted, key=STAGES.index):
        report, text, failure = _RUNNERS[stage](config, options)
        reports[stage] = report
        if say is not None:
            say(text)
        if failure and options.stop_on_failure:
            raise StageFailed(failure)
    return reports


def _data(config: Config, options: Options):
    from deepsync.data.stage import prepare, summary

    report = prepare(config, workers=options.workers, progress=options.progress)
    return report, summary(report), ""


def _features(config: Config, options: Options):
    from deepsync.features.stage import build_features, summary

    report = build_features(config, workers=options.workers, progress=options.progress)
    failure = ""
    if not report.ok:
        failure = (
            f"{len(report.failed)} segments could not be read; fix or remove them "
            "(see above), then rerun"
        )
    return report, summary(report), failure


def _train(config: Config, options: Options):
    from deepsync.train.stage import summary, train

    report = train(config, progress=options.progress, reuse=options.reuse, workers=options.workers)
    return report, summary(report), ""


def _submit(config: Config, options: Options):
    from deepsync.submit.stage import make_submission, summary

    report = make_submission(
        config, sample_path=options.sample_path, labels_path=options.labels_path
    )
    return report, summary(report), ""


_RUNNERS = {"data": _data, "features": _features, "train": _train, "submit": _submit}
