"""Rendered kernel scripts run end to end here, and come home through the real kaggle client."""

import contextlib
import dataclasses
import getpass
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from deepsync.config import load_config
from deepsync.errors import DeepSyncError
from deepsync.kernels import bundle, dataset, remote
from deepsync.kernels.local import local_input, run_locally
from deepsync.submit import ledger, submission
from tests.conftest import FAST_CNN, interrupt_when, start_as_in_a_terminal, tiny_config

pytestmark = pytest.mark.filterwarnings("ignore::deepsync.train.model.PretrainedWeightsWarning")
USER = "deepsync-tester"


def kernel_config(tiny_cache, tiny_set, tmp_path, *extra):
    base, _ = tiny_cache  # the tiny set, indexed and cached: what `make data features` left
    config = tiny_config(
        tiny_set,
        base,
        *FAST_CNN,
        "cnn.epochs=1",
        "train.run=kernels",
        f"kernels.folder={tmp_path}/kernels",
        f"submit.folder={tmp_path}/submissions",
        *extra,
    )
    return config


def outputs_of(working: Path) -> dict[str, bytes]:
    """What Kaggle would list as the kernel's output files (relative names)."""
    return {
        p.relative_to(working).as_posix(): p.read_bytes()
        for p in sorted(working.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_a_whole_kernel_runs_on_the_segments_and_writes_a_valid_submission(
    tiny_cache, tiny_set, tmp_path
):
    config = kernel_config(tiny_cache, tiny_set, tmp_path, "kernels.upload=data")
    (made,) = bundle.render(config, USER)
    root = local_input(config, USER)
    assert (root / "datasets" / USER / "deepsync-kernels-input" / "segments" / "train_1").is_dir()
    (run,) = run_locally([made], root, config.kernels.folder)
    assert run.returncode == 0
    written = run.working / "submissions" / "kernels.csv"
    sample = submission.read_sample(tiny_set / submission.SAMPLE_FILE)
    assert submission.problems(written, sample) == []
    for model in ("baseline", "cnn"):
        assert (run.working / "runs" / "kernels" / model / "oof.csv").exists()
    described = json.loads((run.working / "deepsync-kernel.json").read_text())
    assert described["patients"] is None and described["input"] == "segments"


def test_per_patient_kernels_on_the_cache_are_pushed_watched_and_merged(
    tiny_cache, tiny_set, tmp_path, kaggle_server, monkeypatch
):
    config = kernel_config(tiny_cache, tiny_set, tmp_path, "kernels.patients=1,2")
    bundles = bundle.render(config, USER)
    scratch = tmp_path / "tmp"  # the kernels' temporary folder
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    runs = run_locally(bundles, local_input(config, USER), config.kernels.folder)
    assert [r.returncode for r in runs] == [0, 0]
    left = [p.name for p in scratch.iterdir() if p.name != f"torchinductor_{getpass.getuser()}"]
    assert left == []  # the unpacked package and the cache's link are gone (torch's cache stays)
    assert not (runs[0].working / "submissions").exists()  # one patient: no submission

    pushed = remote.push(bundles)
    assert [p.version for p in pushed] == [1, 1]
    saved = kaggle_server.kernels[bundles[0].kernel]
    assert saved["text"] == (bundles[0].folder / f"{bundles[0].slug}.py").read_text()
    assert saved["enableInternet"] is False and saved["machineShape"] == "NvidiaTeslaT4"
    assert saved["datasetDataSources"] == [f"{USER}/deepsync-kernels-input"]
    for made, run in zip(bundles, runs, strict=True):  # what the kernels left on Kaggle
        kaggle_server.kernel_outputs[made.kernel] = outputs_of(run.working)
    assert [s.status for s in remote.status(bundles)] == ["COMPLETE", "COMPLETE"]

    report = remote.bring_home(config, bundles)
    assert report.path == Path(config.submit.folder) / "kernels-kaggle.csv"
    sample = submission.read_sample(tiny_set / submission.SAMPLE_FILE)
    assert submission.problems(report.path, sample) == []
    merged = pd.read_csv(Path(config.train.runs_root) / "kernels-kaggle" / "cnn" / "oof.csv")
    assert set(merged["patient"]) == {1, 2}
    home = Path(config.kernels.folder) / "output" / bundles[0].slug
    assert not list(home.rglob("*.pt"))  # checkpoints stay on Kaggle
    assert (home / f"{bundles[0].slug}.log").exists()
    (event,) = ledger.read(config.submit.folder).itertuples()
    assert event.file == "kernels-kaggle.csv" and event.run == "kernels-kaggle"


@pytest.mark.parametrize("to", ["group", "main"])
def test_ctrl_c_on_kernel_local_stops_the_kernel_cleanly(tiny_cache, tiny_set, tmp_path, to):
    """A terminal's Ctrl-C (the group) or `kill -INT` of `deepsync kernel-local` alone.

    Either way the kernel script hears it once, stops its training and its loader worker,
    removes its unpacked package and says so in one line; nothing is left running.
    """
    base, _ = tiny_cache
    settings = [
        "data.source=dir",
        f"data.data_dir={tiny_set}",
        f"data.root={base}/data",
        f"features.cache_root={base}/cache",
        "train.folds=2",
        "train.models=cnn",
        "train.run=endless",
        f"kernels.folder={tmp_path}/kernels",
        f"kernels.user={USER}",
        *FAST_CNN,  # the later settings win
        "cnn.epochs=1000",
        "cnn.patience=1000",
        "cnn.loader_workers=1",
    ]
    (made,) = bundle.render(load_config(overrides=settings), USER)
    scratch = tmp_path / "tmp"  # the kernel's temporary folder, and a mark on its processes
    scratch.mkdir()
    args = [sys.executable, "-m", "deepsync", "--no-progress"]
    args += [part for setting in settings for part in ("--set", setting)] + ["kernel-local"]
    process = start_as_in_a_terminal(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    working = tmp_path / "kernels" / "local" / made.slug
    try:
        # Ctrl-C once an epoch is done
        stderr = interrupt_when(process, lambda: list(working.glob("runs/*/cnn/*/*/last.pt")), to)
        assert process.returncode == 130, stderr
        assert "Traceback" not in stderr, stderr
        assert f"{made.kernel}: interrupted; outputs so far in {working}" in stderr
        assert "kernel-local: interrupted; a rerun starts the kernels afresh" in stderr
        left = [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")]
        assert left == []  # the script ended its own way: its package is gone
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _running_with(scratch):
            time.sleep(0.1)
        assert _running_with(scratch) == []  # no loader worker left behind
    finally:
        for pid in _running_with(scratch):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _running_with(scratch: Path) -> list[int]:
    """The processes whose environment names ``scratch`` as TMPDIR (ours and their children)."""
    mark = f"TMPDIR={scratch}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if mark in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
    return found


def test_unfinished_or_failed_kernels_are_not_brought_home(
    tiny_cache, tiny_set, tmp_path, kaggle_server
):
    config = kernel_config(tiny_cache, tiny_set, tmp_path)
    bundles = bundle.render(config, USER)
    remote.push(bundles)
    kaggle_server.kernel_status = "ERROR"
    table = remote.render_states(remote.status(bundles))
    assert "ERROR" in table and "more memory" in table
    with pytest.raises(DeepSyncError, match="not every kernel has finished.*ERROR"):
        remote.bring_home(config, bundles)


def test_refused_pushes_are_one_line_errors(tiny_cache, tiny_set, tmp_path, kaggle_server):
    config = kernel_config(tiny_cache, tiny_set, tmp_path)
    bundles = bundle.render(config, USER)
    kaggle_server.known_datasets = set()
    with pytest.raises(DeepSyncError, match="unknown datasets.*make kaggle-dataset"):
        remote.push(bundles)
    kaggle_server.known_datasets = None
    kaggle_server.push_error = "Notebook not found"
    with pytest.raises(DeepSyncError, match="Kaggle refused .*Notebook not found"):
        remote.push(bundles)


def test_the_cache_goes_up_as_a_private_dataset_then_as_versions(
    tiny_cache, tiny_set, tmp_path, kaggle_server
):
    config = kernel_config(tiny_cache, tiny_set, tmp_path)
    ref, done = dataset.upload(config, USER)
    assert (ref, done) == (f"{USER}/deepsync-kernels-input", "created")
    held = kaggle_server.datasets[ref]
    assert held["private"] is True
    assert {"stacks.npy", "table.npy", "params.json", "segments.csv"} <= set(held["files"])
    assert {"sample_submission.csv", "test_labels.csv"} <= set(held["files"])
    paths = pd.read_csv(pd.io.common.BytesIO(held["files"]["segments.csv"]))["path"]
    assert not paths.str.contains("/").any()  # no local paths leave this machine
    assert dataset.upload(config, USER) == (ref, "new version")
    assert kaggle_server.datasets[ref]["versions"] == 2


def test_a_kernel_without_inputs_says_what_to_attach(tiny_cache, tiny_set, tmp_path, monkeypatch):
    config = kernel_config(tiny_cache, tiny_set, tmp_path)
    (made,) = bundle.render(config, USER)
    for folder in ("empty", "tmp"):
        (tmp_path / folder).mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # the kernel's temporary folder
    done = subprocess.run(
        [
            sys.executable,
            str(made.folder / f"{made.slug}.py"),
            "--input",
            str(tmp_path / "empty"),
            "--working",
            str(tmp_path / "working"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "no segments and no feature cache" in line and "deepsync-kernels-input" in line
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing left behind after an error


def test_an_attached_cache_made_with_other_settings_is_refused(tiny_cache, tiny_set, tmp_path):
    from deepsync.kernels.entry import find_inputs
    from deepsync.kernels.entry import kernel_config as settings_for_kernel

    config = kernel_config(tiny_cache, tiny_set, tmp_path)
    root = local_input(config, USER)
    other = dataclasses.replace(config, features=dataclasses.replace(config.features, bands=64))
    found = find_inputs(root)
    assert found.cache is not None and found.data is None
    with pytest.raises(DeepSyncError, match="other \\[features\\] settings"):
        settings_for_kernel(bundle.bundle_settings(other), None, found, tmp_path / "w", tmp_path)
    with_weights = dataclasses.replace(
        config, cnn=dataclasses.replace(config.cnn, pretrained_file=Path("/x/w.safetensors"))
    )
    with pytest.raises(DeepSyncError, match="w.safetensors .*kernels.weights_dataset"):
        settings_for_kernel(
            bundle.bundle_settings(with_weights), None, found, tmp_path / "w", tmp_path
        )
    assert re.search("datasets/", str(found.cache))
