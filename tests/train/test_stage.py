"""`deepsync train` end to end on the tiny cache, and the leak check on the default set."""

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from deepsync.config import load_config
from deepsync.errors import DeepSyncError
from deepsync.train.stage import leak_check, summary, train
from tests.conftest import FAST_CNN, interrupt_when, start_as_in_a_terminal, tiny_config

pytestmark = pytest.mark.filterwarnings("ignore::deepsync.train.model.PretrainedWeightsWarning")


@pytest.fixture(scope="module")
def trained(tiny_cache):
    base, cache = tiny_cache
    config = tiny_config(tiny_set_of(cache), base, *FAST_CNN)
    return config, cache, train(config, progress=False)


def tiny_set_of(cache):
    return cache.segments["path"].iloc[0].rsplit("/", 2)[0]


def test_the_run_folder_holds_folds_predictions_and_metrics(trained):
    config, cache, report = trained
    folder = report.folder
    models = [m.replace(":", "-") for m in load_config().train.models.split(",")]  # defaults
    assert {p.name for p in folder.iterdir()} == {"config.json", "folds.csv", *models}
    folds = pd.read_csv(folder / "folds.csv")
    for model in models:
        oof = pd.read_csv(folder / model / "oof.csv")
        assert sorted(oof["segment"]) == sorted(folds["segment"])  # each training segment once
        merged = oof.merge(folds, on="segment", suffixes=("", "_folds"))
        assert (merged["fold"] == merged["fold_folds"]).all()
        assert oof["score"].between(0, 1).all() and oof["calibrated"].notna().all()
        test = pd.read_csv(folder / model / "test.csv")
        tests = cache.segments[cache.segments["split"] == "test"]
        assert len(test) == len(tests) * config.train.folds  # every fold's model predicts
        metrics = json.loads((folder / model / "metrics.json").read_text())
        assert set(metrics["patients"]) == {"1", "2"}
        assert 0 <= metrics["pooled_auc"] <= 1
    saved = json.loads((folder / "config.json").read_text())
    assert saved["settings"]["cnn"]["model"] == "test_resnet" and saved["versions"]["torch"]
    assert (folder / "cnn" / "patient1" / "fold0" / "best.pt").exists()
    text = summary(report)
    assert all(m in text for m in ("baseline", "cnn", "logistic:share", "pooled", "vs baseline"))


def test_a_rerun_reuses_finished_folds(trained, monkeypatch):
    config, _, report = trained
    from deepsync.train import cnn

    def never(*args, **kwargs):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(cnn, "fit_fold", never)
    again = train(config, progress=False)
    assert again.metrics["cnn"]["pooled_auc"] == report.metrics["cnn"]["pooled_auc"]


def test_one_model_of_all_patients_per_fold_each_normalised_by_its_own(trained, tmp_path):
    import torch

    from deepsync.submit.stage import make_submission
    from deepsync.train.dataset import GroupNormaliser

    config, cache, _ = trained
    base = cache.folder.parent.parent
    overrides = ("cnn.model=spectrumnet", "cnn.scope=all", "cnn.normalise=channel_band")
    overrides += ("train.run=everyone",)
    everyone = tiny_config(
        tiny_set_of(cache), base, *FAST_CNN, *overrides, f"submit.folder={tmp_path}", "submit.tta=1"
    )
    report = train(everyone, progress=False)
    folder = report.folder / "cnn"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["all"]
    assert sorted(p.name for p in (folder / "all").iterdir()) == ["fold0", "fold1"]
    oof = pd.read_csv(folder / "oof.csv")
    folds = pd.read_csv(report.folder / "folds.csv")
    assert sorted(oof["segment"]) == sorted(folds["segment"])  # both patients, each once
    merged = oof.merge(folds, on="segment", suffixes=("", "_folds"))
    assert (merged["fold"] == merged["fold_folds"]).all()
    assert set(report.metrics["cnn"]["patients"]) == {"1", "2"}
    saved = torch.load(folder / "all" / "fold0" / "best.pt", weights_only=False)
    groups = GroupNormaliser.from_dict(saved["groups"])
    training = folds[folds["fold"] == 1]
    rows = training.loc[training["patient"] == 2, "row"].to_numpy()
    patient = groups.groups[rows[0]]
    assert (groups.groups[rows] == patient).all()
    stacks = np.asarray(cache.stacks[rows], np.float64)
    assert np.allclose(groups.mean[patient][:, :, 0], stacks.mean(axis=(0, 3)), atol=1e-3)
    normalised = groups(np.asarray(cache.stacks[rows]), rows).astype(np.float64)
    assert abs(normalised.mean()) < 0.01 and normalised.std() == pytest.approx(1, abs=0.05)
    submitted = make_submission(everyone)  # TTA rescoring finds the folds of all patients
    assert submitted.path.exists()


def test_folds_in_their_own_processes_give_what_one_process_gives(trained, tmp_path):
    """One process per GPU on a T4 x2 kernel: here two CPU processes, the same folds."""
    config, cache, report = trained
    parallel = dataclasses.replace(
        config,
        train=dataclasses.replace(config.train, runs_root=tmp_path / "runs", models="cnn"),
        cnn=dataclasses.replace(config.cnn, fold_processes=2),
    )
    again = train(parallel, progress=False)
    folder = again.folder / "cnn"
    workers = {
        json.loads(p.read_text())["worker"] for p in folder.glob("patient*/fold*/result.json")
    }
    assert workers == {0, 1}  # both processes trained folds
    ours = pd.read_csv(folder / "oof.csv")
    theirs = pd.read_csv(report.folder / "cnn" / "oof.csv")
    assert list(ours["segment"]) == list(theirs["segment"])  # the same order as in-process
    assert np.allclose(ours["score"], theirs["score"], atol=1e-3)


def test_window_model_folds_in_worker_processes_give_the_same_bytes(trained, tmp_path, monkeypatch):
    """Folds big enough (here: any) are fitted two at a time, one thread each: the same
    predictions, to the byte, as one after the other with every thread."""
    from deepsync.train import tabular

    config, _, report = trained
    monkeypatch.setattr(tabular, "PARALLEL_WINDOWS", 0)
    from deepsync import parallel

    started = []

    spy = parallel.parallel_map

    def counting(func, jobs, workers, initializer=None):
        started.append(workers)
        return spy(func, jobs, workers, initializer)

    monkeypatch.setattr(parallel, "parallel_map", counting)
    models = "baseline,logistic:share"
    parallel_config = dataclasses.replace(
        config, train=dataclasses.replace(config.train, runs_root=tmp_path / "runs", models=models)
    )
    again = train(parallel_config, progress=False, workers=2)
    assert started == [2, 2]  # each model's folds went to two processes
    for model in ("baseline", "logistic-share"):
        for name in ("oof.csv", "test.csv"):
            ours = (again.folder / model / name).read_bytes()
            assert ours == (report.folder / model / name).read_bytes(), (model, name)


@pytest.mark.parametrize("to", ["group", "main"])
def test_ctrl_c_stops_folds_in_their_own_processes_at_once(trained, tmp_path, to):
    """A terminal's Ctrl-C reaches the whole process group; `kill -INT` only the main one.

    Either way the running folds stop where they are and no queued fold begins: with
    folds of a thousand epochs, a fold that carried on would never let the process end.
    """
    config, cache, _ = trained
    settings = [
        "data.source=dir",
        f"data.data_dir={tiny_set_of(cache)}",
        f"data.root={config.data.root}",
        f"features.cache_root={config.features.cache_root}",
        f"train.runs_root={tmp_path / 'runs'}",
        "train.folds=2",
        "train.models=cnn",
        *FAST_CNN,  # the later settings win
        "cnn.epochs=1000",
        "cnn.patience=1000",
        "cnn.fold_processes=2",
    ]
    args = [sys.executable, "-m", "deepsync", "--no-progress"]
    args += [part for setting in settings for part in ("--set", setting)] + ["train"]
    process = start_as_in_a_terminal(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Ctrl-C once an epoch is done (in a worker)
        stderr = interrupt_when(process, lambda: list(tmp_path.glob("runs/*/cnn/*/*/last.pt")), to)
        assert process.returncode == 130 and "interrupted; rerun to resume" in stderr
        assert "Traceback" not in stderr, stderr
        assert not list(tmp_path.glob("runs/*/cnn/*/*/result.json"))  # no fold ran on
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _group_alive(process.pid):
            time.sleep(0.1)
        assert not _group_alive(process.pid)  # no worker left behind
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_run_folder_with_other_settings_is_refused(trained):
    config, cache, _ = trained
    base = config.train.runs_root.parent
    changed = tiny_config(tiny_set_of(cache), base, *FAST_CNN, "cnn.lr=0.1")
    with pytest.raises(DeepSyncError, match="other settings .*cnn.lr"):
        train(changed, progress=False)


def test_a_model_trained_with_the_same_settings_in_another_run_is_linked(
    trained, monkeypatch, tmp_path
):
    config, cache, report = trained
    base = config.train.runs_root.parent
    from deepsync.train import cnn, tabular

    calls = []
    fit_predict, fit_fold = tabular.fit_predict, cnn.fit_fold
    monkeypatch.setattr(
        tabular, "fit_predict", lambda *a, **k: calls.append(a[1].name) or fit_predict(*a, **k)
    )
    monkeypatch.setattr(cnn, "fit_fold", lambda *a, **k: calls.append("cnn") or fit_fold(*a, **k))
    # another CNN (a window model's results do not depend on it) and one more window model
    other = tiny_config(
        tiny_set_of(cache),
        base,
        *FAST_CNN,
        "cnn.lr=0.01",
        "train.run=other",
        "train.models=baseline,cnn,logistic:stats",
    )
    (other.train.runs_root / "other" / "baseline").mkdir(parents=True)
    (other.train.runs_root / "other" / "baseline" / "oof.csv").write_text("half-written")
    (other.train.runs_root / "other" / "folds.csv").write_bytes(
        (report.folder / "folds.csv").read_bytes()
    )
    damaged = tmp_path / "damaged"  # siblings that cannot be read are passed over
    (damaged / "baseline").mkdir(parents=True)
    (damaged / "config.json").write_text("{not json")
    older = tmp_path / "older"  # config.json without the list of models
    (older / "baseline").mkdir(parents=True)
    (older / "config.json").write_text(json.dumps({"settings": {}}))
    again = train(other, progress=False, reuse=[damaged, older, report.folder])
    assert set(calls) == {"cnn", "logistic:stats"}  # baseline linked, the rest trained
    held = again.folder / "baseline"
    for name in ("oof.csv", "test.csv", "metrics.json"):
        assert os.path.samefile(held / name, report.folder / "baseline" / name)
    assert again.metrics["baseline"] == json.loads((held / "metrics.json").read_text())
    assert again.metrics["baseline"]["pooled_auc"] == report.metrics["baseline"]["pooled_auc"]
    assert json.loads((again.folder / "config.json").read_text())["models"][0] == "baseline"
    assert not list(again.folder.rglob("*.partial")) and not list(again.folder.rglob("*.stale"))
    assert again.metrics["logistic:stats"]["seconds"] > 0  # each model's fitting time

    calls.clear()  # other settings of the model, or other folds: trained, not linked
    changed = tiny_config(
        tiny_set_of(cache),
        base,
        "baseline.iterations=20",
        "train.run=changed",
        "train.models=baseline",
    )
    train(changed, progress=False, reuse=[report.folder])
    swapped = tiny_config(  # the same settings on folds numbered the other way round
        tiny_set_of(cache), base, "train.run=swapped", "train.models=baseline"
    )
    folds = pd.read_csv(report.folder / "folds.csv")
    (swapped.train.runs_root / "swapped").mkdir()
    folds.assign(fold=folds["fold"].max() - folds["fold"]).to_csv(
        swapped.train.runs_root / "swapped" / "folds.csv", index=False
    )
    train(swapped, progress=False, reuse=[report.folder])
    assert calls.count("baseline") == 2 * config.train.folds * 2  # 2 runs x folds x patients


@pytest.fixture(scope="module")
def default_set(tmp_path_factory):
    """The synthetic default, as `make demo` builds it (about a minute on 2 cores)."""
    from deepsync.config import load_config
    from deepsync.data.stage import prepare
    from deepsync.features.stage import build_features

    base = tmp_path_factory.mktemp("default")
    config = load_config(
        overrides=[
            f"data.root={base}/data",
            f"features.cache_root={base}/cache",
            f"train.runs_root={base}/runs",
        ]
    )
    prepare(config, workers=2, progress=False)
    assert build_features(config, workers=2, progress=False).ok
    return config


def test_hour_blind_folds_overstate_the_auc_on_the_synthetic_default(default_set):
    aucs = leak_check(default_set)
    assert aucs["random"] > aucs["grouped"] + 0.1
    assert aucs["grouped"] > 0.6  # the baseline does learn the preictal signature
