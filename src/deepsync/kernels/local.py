"""`make kernel-local`: each rendered kernel script run here, as Kaggle would run it.

The inputs are laid out as a kernel sees them: ``kernels/local-input/datasets/<owner>/
<slug>/`` is the folder `make kaggle-dataset` would upload (staged with links, nothing
copied). Each script runs in its own process with its own outputs in
``kernels/local/<slug>/`` (the kernel's /kaggle/working), on the package inside the
script, not the installed one. Each starts afresh, as on Kaggle: a rerun removes what
an earlier run of the same bundle left.

Ctrl-C reaches the running script once, whether it came from the terminal or only to this
process: the script runs in its own session, away from the terminal's signals, and this
process passes the interrupt on, then waits while the script removes its unpacked package.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from deepsync.config import Config
from deepsync.kernels import dataset
from deepsync.kernels.bundle import Bundle, input_dataset

STOP_SECONDS = 60  # an interrupted script's time to stop its workers and clean up


@dataclass(frozen=True)
class LocalRun:
    bundle: Bundle
    returncode: int
    seconds: float
    working: Path


def local_input(config: Config, user: str) -> Path:
    """``kernels/local-input``: the staged dataset where Kaggle would mount it."""
    staged = dataset.stage(config, user)
    owner, slug = input_dataset(config, user).split("/")
    root = Path(config.kernels.folder) / "local-input"
    mount = root / "datasets" / owner / slug
    if mount.is_symlink() or mount.exists():
        mount.unlink()
    mount.parent.mkdir(parents=True, exist_ok=True)
    mount.symlink_to(staged.resolve(), target_is_directory=True)
    return root


def run_locally(bundles: list[Bundle], input_root: Path, folder: Path) -> list[LocalRun]:
    """Every bundle's script against ``input_root``, one after the other; output streamed."""
    runs = []
    for bundle in bundles:
        working = Path(folder) / "local" / bundle.slug
        if working.exists():
            shutil.rmtree(working)
        script = bundle.folder / f"{bundle.slug}.py"
        started = time.perf_counter()
        returncode = _run_script(
            [sys.executable, str(script), "--input", str(input_root), "--working", str(working)]
        )
        runs.append(LocalRun(bundle, returncode, time.perf_counter() - started, working))
    return runs


def _run_script(args: list[str]) -> int:
    """The script's exit code; Ctrl-C interrupts the script too and is raised once it stopped."""
    script = subprocess.Popen(args, start_new_session=True)
    try:
        return script.wait()
    except KeyboardInterrupt:
        _interrupt(script)
        raise


def _interrupt(script: subprocess.Popen) -> None:
    """SIGINT to the script, then its time to stop; killed (with its workers) after that.

    A second Ctrl-C kills it at once. The script leads its own process group, so the kill
    reaches the workers it started too.
    """
    try:
        script.send_signal(signal.SIGINT)
        script.wait(timeout=STOP_SECONDS)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):  # it ended in between
            os.killpg(script.pid, signal.SIGKILL)
        script.wait()
