"""`make kernel`: kernel bundles under ``kernels/<slug>/``, one per patient or one for all.

A bundle is what ``kaggle kernels push -p kernels/<slug>`` sends: ``kernel-metadata.json``
and one script (``<slug>.py``). Only that script is uploaded, so it carries the deepsync
package inside (a base64 tar.gz of its source, unpacked at start) and the resolved
settings it was rendered with: the kernel needs no pip install and no internet, and runs
on what Kaggle preinstalls. ``kernels/bundles.json`` lists the bundles for push, status
and output. No credential and no local path goes into a bundle: settings that name
local files keep only what the kernel needs (a weights file's name, found again under
``/kaggle/input``).
"""

from __future__ import annotations

import base64
import copy
import gzip
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import deepsync
from deepsync.config import Config
from deepsync.durable import read_json, write_text
from deepsync.errors import DeepSyncError
from deepsync.features.cache import params_hash

MANIFEST = "bundles.json"
METADATA = "kernel-metadata.json"
PAYLOAD_LINE = 100  # characters per line of the embedded package
LEFT_OUT = ("original_files_md5.tsv",)  # the download check's table: a kernel never downloads
LEFT_OUT_FOLDERS = ("bench",)  # the benchmarks: a kernel never runs them
LOCAL_SECTIONS = ("data", "kernels")  # settings about this machine: the kernel sets its own
SCRIPT = '''#!/usr/bin/env python3
"""{title}: the DeepSync pipeline as one Kaggle kernel script, rendered by `make kernel`.

The deepsync package travels inside this file (PAYLOAD, a base64 tar.gz of its source),
so the kernel needs no pip install and no internet. It finds its input under
/kaggle/input (the competition's segments in either layout, or a feature cache from
`make kaggle-dataset`), runs the stages with SETTINGS{patients_text}, and writes runs,
submissions and logs to /kaggle/working.

Locally: python {code_file} --input FOLDER_LIKE_KAGGLE_INPUT --working OUT_FOLDER
"""

import argparse
import base64
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile

KERNEL = {kernel!r}
PATIENTS = {patients!r}  # None: every patient, and the submission
DATASETS = {datasets!r}  # attached as inputs (kernel-metadata.json)
SETTINGS = json.loads(
    {settings!r}
)
PAYLOAD = (
{payload}
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default="/kaggle/input", help="where the inputs are mounted")
    parser.add_argument("--working", default="/kaggle/working", help="where outputs go")
    args = parser.parse_args(argv)
    package = tempfile.mkdtemp(prefix="deepsync-")  # gone at the end, even after a crash
    try:
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(PAYLOAD)), mode="r:gz") as archive:
            try:
                archive.extractall(package, filter="data")
            except TypeError:  # Python before 3.11.4: no extraction filters
                archive.extractall(package)
        sys.path.insert(0, package)
        os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(package, "numba-cache"))
        from deepsync.kernels.entry import run_kernel

        return run_kernel(KERNEL, SETTINGS, PATIENTS, DATASETS, args.input, args.working)
    except KeyboardInterrupt:  # Ctrl-C in a local run: the stages have stopped cleanly
        print(f"{{KERNEL}}: interrupted; outputs so far in {{args.working}}", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(package, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
'''


@dataclass(frozen=True)
class Bundle:
    """One rendered kernel."""

    kernel: str  # "user/slug"
    folder: Path
    patients: list[int] | None  # None: all patients (and the submission)

    @property
    def slug(self) -> str:
        return self.kernel.split("/", 1)[1]


def slugify(text: str) -> str:
    """Kaggle's slug of a title: lower case, runs of other characters as one dash."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def input_dataset(config: Config, user: str) -> str:
    """The dataset the kernels read: ``kernels.dataset``, else ``<user>/deepsync-<run>-input``."""
    return config.kernels.dataset or f"{user}/{slugify(f'deepsync {config.train.run} input')}"


def render(config: Config, user: str) -> list[Bundle]:
    """Write one bundle per patient of ``kernels.patients`` (or one for all); list them."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", user or ""):
        raise DeepSyncError(
            f"kernels.user={user!r} is not a Kaggle user name: set kernels.user=NAME or "
            "KAGGLE_USERNAME (or keep kaggle.json in ~/.kaggle)"
        )
    k = config.kernels
    groups: list[list[int] | None] = (
        [[p] for p in k.patient_numbers] if k.patient_numbers else [None]
    )
    datasets = [input_dataset(config, user)] + ([k.weights_dataset] if k.weights_dataset else [])
    settings = bundle_settings(config)
    payload = _payload()
    folder = Path(k.folder)
    bundles = []
    for patients in groups:
        title = f"DeepSync {config.train.run}" + (f" patient {patients[0]}" if patients else "")
        slug = slugify(title)
        bundle = Bundle(f"{user}/{slug}", folder / slug, patients)
        bundle.folder.mkdir(parents=True, exist_ok=True)
        script = SCRIPT.format(
            title=title,
            code_file=f"{slug}.py",
            patients_text=f" for patient {patients[0]}" if patients else "",
            kernel=bundle.kernel,
            patients=patients,
            datasets=datasets,
            settings=json.dumps(settings, sort_keys=True),
            payload=payload,
        )
        write_text(bundle.folder / f"{slug}.py", script)
        metadata = _metadata(config, bundle, title, datasets)
        write_text(bundle.folder / METADATA, json.dumps(metadata, indent=1))
        bundles.append(bundle)
    manifest = {
        "run": config.train.run,
        "features": params_hash(config.features),
        "bundles": [
            {"kernel": b.kernel, "folder": b.folder.name, "patients": b.patients} for b in bundles
        ],
    }
    write_text(folder / MANIFEST, json.dumps(manifest, indent=1))
    return bundles


def load(config: Config) -> list[Bundle]:
    """The bundles `render` wrote last, made with ``config``'s run and features settings."""
    folder = Path(config.kernels.folder)
    path = folder / MANIFEST
    if not path.exists():
        raise DeepSyncError(f"no kernel bundles in {folder}: run `make kernel` first")
    manifest = read_json(path)
    if (manifest["run"], manifest["features"]) != (config.train.run, params_hash(config.features)):
        raise DeepSyncError(
            f"the bundles in {folder} were rendered for run {manifest['run']} with other "
            "settings: give the same PROFILE and SET as to `make kernel`, or render again"
        )
    return [
        Bundle(entry["kernel"], folder / entry["folder"], entry["patients"])
        for entry in manifest["bundles"]
    ]


def bundle_settings(config: Config) -> dict:
    """The resolved settings a kernel runs with, without anything about this machine."""
    values = copy.deepcopy(config.to_dict())
    for section in LOCAL_SECTIONS:
        values.pop(section, None)
    for section, key in (("features", "cache_root"), ("train", "runs_root"), ("submit", "folder")):
        values[section].pop(key, None)  # the kernel's own folders
    weights = values["cnn"].get("pretrained_file")
    if weights:
        values["cnn"]["pretrained_file"] = Path(weights).name  # found again under the inputs
    values["train"]["patients"] = ""
    return values


def _metadata(config: Config, bundle: Bundle, title: str, datasets: list[str]) -> dict:
    k = config.kernels
    return {
        "id": bundle.kernel,
        "title": title,
        "code_file": f"{bundle.slug}.py",
        "language": "python",
        "kernel_type": "script",
        "is_private": k.private,
        "enable_gpu": bool(k.accelerator),
        "enable_tpu": False,
        "enable_internet": k.internet,
        "machine_shape": k.accelerator or None,
        "dataset_sources": datasets,
        "competition_sources": [config.data.competition],
        "kernel_sources": [],
        "model_sources": [],
    }


def _payload() -> str:
    """The deepsync package's source as base64 lines of a reproducible tar.gz."""
    root = Path(deepsync.__file__).resolve().parent
    buffer = io.BytesIO()
    zipped = gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0)  # mtime 0: reproducible
    with zipped, tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(root.rglob("*")):
            if not path.is_file() or not _ships(path.relative_to(root)):
                continue
            info = tarfile.TarInfo(f"deepsync/{path.relative_to(root).as_posix()}")
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    text = base64.b64encode(buffer.getvalue()).decode()
    return "\n".join(
        f'    "{text[i : i + PAYLOAD_LINE]}"' for i in range(0, len(text), PAYLOAD_LINE)
    )


def _ships(path: Path) -> bool:
    """Whether the package file at ``path`` (relative to the package) goes in a kernel."""
    parts = set(path.parts)
    return (
        "__pycache__" not in parts
        and path.parts[0] not in LEFT_OUT_FOLDERS
        and path.suffix in (".py", ".toml", ".csv", ".tsv")
        and path.name not in LEFT_OUT
    )
