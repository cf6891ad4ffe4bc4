"""The pipeline runner: stages in pipeline order, summaries said, a failed stage stops it."""

import pytest

from deepsync import pipeline
from deepsync.config import Config
from deepsync.errors import DeepSyncError


@pytest.fixture
def ran(monkeypatch):
    """The real runners replaced by ones that record what they were given."""
    calls = []

    def runner(name, failure=""):
        def run(config, options):
            calls.append((name, options))
            return f"{name} report", f"{name}: done", failure

        return run

    fake = {name: runner(name) for name in pipeline.STAGES}
    monkeypatch.setattr(pipeline, "_RUNNERS", fake)
    return calls, fake, runner


def test_stages_run_in_pipeline_order_and_each_summary_is_said(ran):
    calls, _, _ = ran
    said = []
    reports = pipeline.run(Config(), ["submit", "data", "train"], say=said.append)
    assert [name for name, _ in calls] == ["data", "train", "submit"]
    assert said == ["data: done", "train: done", "submit: done"]
    assert reports == {n: f"{n} report" for n in ("data", "train", "submit")}
    assert all(options.workers >= 1 for _, options in calls)  # 0: one per core


def test_a_stage_that_leaves_work_undone_stops_the_pipeline_when_asked(ran):
    calls, fake, runner = ran
    fake["features"] = runner("features", "3 segments could not be read")
    said = []
    strict = pipeline.Options(stop_on_failure=True)  # the CLI's `deepsync features`
    with pytest.raises(pipeline.StageFailed, match="3 segments") as failed:
        pipeline.run(Config(), pipeline.STAGES, strict, say=said.append)
    assert isinstance(failed.value, DeepSyncError)
    assert [name for name, _ in calls] == ["data", "features"]  # train never ran
    assert said[-1] == "features: done"  # its summary first, then the error
    calls.clear()
    # the study, a kernel: the summary says it, and training goes on without those rows
    reports = pipeline.run(Config(), pipeline.STAGES)
    assert [name for name, _ in calls] == list(pipeline.STAGES) and len(reports) == 4


def test_an_unknown_stage_is_refused_before_any_runs(ran):
    calls, _, _ = ran
    with pytest.raises(DeepSyncError, match="unknown stage 'trian'.*data, features"):
        pipeline.run(Config(), ["data", "trian"])
    assert calls == []


def test_options_reach_the_stages(ran):
    calls, _, _ = ran
    options = pipeline.Options(workers=3, progress=False, reuse=("runs/a",))
    pipeline.run(Config(), ["train"], options)
    assert calls == [("train", options)]
