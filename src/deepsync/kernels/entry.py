"""Inside a Kaggle kernel: find the inputs, run the stages, leave everything in the output.

The rendered script unpacks the package and calls `run_kernel`. Inputs are looked for
under the input root (``/kaggle/input``, where recent kernels mount datasets at
``datasets/<owner>/<slug>`` and competitions at ``competitions/<slug>``, older ones at
``<slug>``): a feature cache uploaded by `make kaggle-dataset` (``params.json`` beside
``stacks.npy``), else the segments in either layout. Nothing found is an error that says
what to attach, before any work. Outputs, under the working folder: ``runs/<run>/``
(folds, OOF and test predictions, metrics, per-fold logs and checkpoints),
``submissions/`` (when the kernel trains every patient), ``reference/`` (the sample
submission and test labels it used, for `make kernel-output`), ``deepsync-kernel.json``.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from deepsync import pipeline
from deepsync.config import Config, from_dict
from deepsync.durable import copy_file, read_json, write_text
from deepsync.errors import DeepSyncError
from deepsync.features.cache import params_hash
from deepsync.submit import references, scoring, submission

SEARCH_DEPTH = 5  # folders below the input root: datasets/<owner>/<slug>/<folder>/train_1
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
CACHE_FILES = {"params.json", "stacks.npy", "segments.csv"}
TEST_LABELS = "test_labels.csv"  # beside a cache uploaded by `make kaggle-dataset`


@dataclass
class Inputs:
    """What the input root holds."""

    cache: Path | None = None  # a feature cache (flat, as a dataset holds it)
    data: Path | None = None  # the top folder of the segments
    weights: dict[str, Path] = field(default_factory=dict)  # file name -> path
    looked: int = 0  # folders looked at


def find_inputs(root: Path) -> Inputs:
    """A feature cache, the segments and weight files under ``root`` (read-only)."""
    found = Inputs()
    root = Path(root)
    if not root.is_dir():
        return found
    base = len(root.parts)
    for top, dirs, files in os.walk(root, followlinks=True):
        here = Path(top)
        found.looked += 1
        dirs.sort()
        if len(here.parts) - base >= SEARCH_DEPTH:
            dirs[:] = []
        for name in sorted(files):
            if name.endswith(WEIGHT_SUFFIXES):
                found.weights.setdefault(name, here / name)
        if found.cache is None and set(files) >= CACHE_FILES:
            found.cache = here
        if found.data is None and _holds_segments(dirs, files):
            found.data = here
            dirs[:] = []  # the segments' own folders: nothing else to find in there
    return found


def _holds_segments(dirs: list[str], files: list[str]) -> bool:
    kaggle = any(re.fullmatch(r"(train|test)_\d+(_new)?", d) for d in dirs)
    ecosystem = any(re.match(r"Pat\d+(Train|Test)_\d+_[01]\.(mat|csv)$", f, re.I) for f in files)
    return kaggle or ecosystem


def kernel_config(
    settings: dict, patients: list[int] | None, found: Inputs, working: Path, scratch: Path
) -> Config:
    """The rendered settings, with this kernel's inputs and output folders.

    ``scratch``: a folder for this run only (outside the outputs), for the attached
    cache's link.
    """
    values = copy.deepcopy(settings)
    working = Path(working)
    if found.data is not None and found.cache is None:
        values["data"] = {"source": "dir", "data_dir": str(found.data)}
    values.setdefault("data", {})["root"] = str(working / "data")
    values["features"]["cache_root"] = str(working / "cache")
    values["train"]["runs_root"] = str(working / "runs")
    values["train"]["patients"] = ",".join(map(str, patients)) if patients else ""
    values["submit"]["folder"] = str(working / "submissions")
    weights = values["cnn"].get("pretrained_file")
    if weights:
        if weights not in found.weights:
            raise DeepSyncError(
                f"the weights file {weights} (cnn.pretrained_file) is not under the inputs: "
                "attach the dataset holding it (kernels.weights_dataset) and push again"
            )
        values["cnn"]["pretrained_file"] = str(found.weights[weights])
    config = from_dict(values)
    if found.cache is not None:
        config = _use_attached_cache(config, values, found.cache, scratch)
    return config


def _use_attached_cache(config: Config, values: dict, cache: Path, scratch: Path) -> Config:
    """Point the features at an attached (read-only) cache made with the same settings."""
    made = read_json(cache / "params.json").get("hash")
    wanted = params_hash(config.features)
    if made != wanted:
        raise DeepSyncError(
            f"the attached feature cache was made with other [features] settings ({made}, "
            f"this kernel's are {wanted}): upload it again with `make kaggle-dataset`, or "
            "render the kernel with the settings it was made with"
        )
    (scratch / f"features-{wanted}").symlink_to(cache.resolve(), target_is_directory=True)
    values["features"]["cache_root"] = str(scratch)  # the link gives the cache its folder name
    return from_dict(values)


def run_kernel(
    kernel: str,
    settings: dict,
    patients: list[int] | None,
    datasets: list[str],
    input_root: str | Path,
    working: str | Path,
) -> int:
    """The kernel's whole run; 0 when it went through, 2 (one line on stderr) when not."""
    started = time.perf_counter()
    working = Path(working)
    try:
        found = find_inputs(Path(input_root))
        if found.cache is None and found.data is None:
            raise DeepSyncError(
                f"no segments and no feature cache under {input_root} ({found.looked} folders "
                f"looked at): attach {', '.join(datasets) or 'a dataset'} in "
                "kernel-metadata.json (dataset_sources), holding the competition files "
                "(train_1/..., test_1_new/...) or the cache from `make kaggle-dataset`"
            )
        working.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="deepsync-cache-") as scratch:
            config = kernel_config(settings, patients, found, working, Path(scratch))
            _say(f"{kernel}: patients {patients or 'all'}; input {found.cache or found.data}")
            _stages(config, found, patients, working)
    except DeepSyncError as error:
        print(f"deepsync kernel: error: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    _describe(working, kernel, patients, found, seconds)
    _say(f"done in {seconds:.0f} s; outputs in {working}")
    return 0


def _stages(config: Config, found: Inputs, patients: list[int] | None, working: Path) -> None:
    # with a feature cache attached, no segments: data and features are done
    stages = ["train"] if found.cache is not None else ["data", "features", "train"]
    options = pipeline.Options(progress=False)
    pipeline.run(config, stages, options, say=_say)
    sample, labels = _references(config, found, working)
    if patients is None:  # every patient here: the submission too
        options = pipeline.Options(progress=False, sample_path=sample, labels_path=labels)
        pipeline.run(config, ["submit"], options, say=_say)
    else:
        _say("per-patient kernel: `make kernel-output` merges the patients into one submission")


def _references(config: Config, found: Inputs, working: Path) -> tuple[Path, Path | None]:
    """The sample submission and test labels for this data, copied into the outputs."""
    folder = working / "reference"
    folder.mkdir(exist_ok=True)
    if found.cache is not None:
        own = found.cache / submission.SAMPLE_FILE
        sample = own if own.exists() else submission.reference_sample()
        labels = found.cache / TEST_LABELS
        labels = labels if labels.exists() else scoring.reference_labels()
    else:
        sample, labels = references.pick_sample(config), references.pick_labels(config)
    copy_file(sample, folder / submission.SAMPLE_FILE)
    copy_file(labels, folder / TEST_LABELS)
    return folder / submission.SAMPLE_FILE, folder / TEST_LABELS


def _describe(working: Path, kernel: str, patients, found: Inputs, seconds: float) -> None:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    described = {
        "kernel": kernel,
        "patients": patients,
        "input": "feature cache" if found.cache is not None else "segments",
        "seconds": round(seconds, 1),
        "gpus": gpus,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    write_text(working / "deepsync-kernel.json", json.dumps(described, indent=1))


def _say(text: str) -> None:
    print(text, flush=True)
