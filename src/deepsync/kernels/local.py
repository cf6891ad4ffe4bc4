"""`make kernel-local`: each rendered kernel script run here, as Kaggle would run it.

The inputs are laid out as a kernel sees them: ``kernels/local-input/datasets/<owner>/
<slug>/`` is the folder `make kaggle-dataset` would upload (staged with links, nothing
copied). Each script runs in its own process with its own outputs in
``kernels/local/<slug>/`` (the kernel's /kaggle/working), on the package inside the
script, not the installed one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from deepsync.config import Config
from deepsync.kernels import dataset
from deepsync.kernels.bundle import Bundle, input_dataset


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
        done = subprocess.run(
            [sys.executable, str(script), "--input", str(input_root), "--working", str(working)]
        )
        runs.append(LocalRun(bundle, done.returncode, time.perf_counter() - started, working))
    return runs
