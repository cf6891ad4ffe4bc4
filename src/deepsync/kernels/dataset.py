"""`make kaggle-dataset`: the kernels' input as a private Kaggle dataset, with the real client.

The competition page carries no data any more, so kernels read a dataset of the user's.
It holds either the feature cache (``kernels.upload=features``: the arrays, params.json,
segments.csv with local paths removed, the sample submission and, where known, the test
labels; for the real data's 8,233 files 11.1 GB with the `gpu` profile's 128 x 288 stacks,
4.5 GB with the default 80 x 144, instead of 63 GB: `make bench-scale` computes it from the
cache's layout) or the segments themselves
(``kernels.upload=data``: the data folder, each top folder zipped by the client). The
folder is staged under ``kernels/dataset/<slug>/`` with hard links (copies across
file systems) beside ``dataset-metadata.json``; a dataset that exists gets a new version.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
from pathlib import Path

from deepsync.config import Config
from deepsync.durable import copy_file, read_csv, read_json, write_csv, write_text
from deepsync.errors import DeepSyncError
from deepsync.features.cache import ARRAYS, cache_folder
from deepsync.kaggle_client import authenticated_api, kaggle_errors
from deepsync.kernels.bundle import input_dataset
from deepsync.kernels.entry import TEST_LABELS
from deepsync.submit import references, submission

DATASET_METADATA = "dataset-metadata.json"
DATA_FOLDER = "segments"  # kernels.upload=data: the data folder, under this name
IN_USE = "already in use"  # how dataset_create_new says the slug exists


def stage(config: Config, user: str) -> Path:
    """The folder to upload, ready: ``kernels/dataset/<slug>/`` (rebuilt each time)."""
    ref = input_dataset(config, user)
    folder = Path(config.kernels.folder) / "dataset" / ref.split("/")[1]
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if config.kernels.upload == "features":
        _stage_cache(config, folder)
    else:
        _stage_data(config, folder)
    copy_file(references.pick_sample(config), folder / submission.SAMPLE_FILE)
    labels = references.pick_labels(config)
    copy_file(labels, folder / TEST_LABELS)
    title = f"DeepSync {config.train.run} input"[:50]
    metadata = {"title": title, "id": ref, "licenses": [{"name": "other"}]}
    write_text(folder / DATASET_METADATA, json.dumps(metadata, indent=1))
    return folder


def _stage_cache(config: Config, folder: Path) -> None:
    cache = cache_folder(config.features)
    if not (cache / "segments.csv").exists():
        raise DeepSyncError(f"no finished feature cache in {cache}: run `make features` first")
    families = sorted(p.name for p in cache.glob("family_*.npy"))
    for name in (*[f"{a}.npy" for a in ARRAYS], *families, "params.json"):
        _link(cache / name, folder / name)
    segments = read_csv(cache / "segments.csv")
    segments["path"] = segments["path"].map(lambda p: Path(str(p)).name)  # no local paths
    write_csv(folder / "segments.csv", segments)


def _stage_data(config: Config, folder: Path) -> None:
    described = Path(config.data.root) / "dataset.json"
    if not described.exists():
        raise DeepSyncError(f"no {described}: run `make data` first")
    data = Path(read_json(described)["folder"])
    (folder / DATA_FOLDER).symlink_to(data.resolve(), target_is_directory=True)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system: a copy
        copy_file(source, target)


@contextlib.contextmanager
def _client_refusals(ref: str, retry: str):
    """The client's own ValueErrors (a file that did not go up, bad metadata), as one line."""
    try:
        yield
    except ValueError as error:
        raise DeepSyncError(f"uploading {ref} failed ({error}): {retry}") from None


def upload(config: Config, user: str, *, quiet: bool = True) -> tuple[str, str]:
    """Create the dataset (or a new version of it); its reference and what was done."""
    folder = stage(config, user)
    ref = input_dataset(config, user)
    api = authenticated_api("the staged folder stays in " + str(folder))
    output = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
    retry = "rerun `make kaggle-dataset` (uploads resume)"
    with kaggle_errors(f"uploading {ref}", retry=retry), output, _client_refusals(ref, retry):
        response = api.dataset_create_new(
            str(folder),
            public=not config.kernels.private,
            quiet=quiet,
            convert_to_csv=False,
            dir_mode="zip",
        )
        done = "created"
        if response.error and IN_USE in response.error:
            response = api.dataset_create_version(
                str(folder),
                version_notes=f"deepsync {time.strftime('%Y-%m-%d %H:%M')}",
                quiet=quiet,
                convert_to_csv=False,
                dir_mode="zip",
            )
            done = "new version"
    if response.error:
        raise DeepSyncError(f"Kaggle did not take dataset {ref}: {response.error}")
    return ref, done
