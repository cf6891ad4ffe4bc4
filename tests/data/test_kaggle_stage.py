"""`make data SOURCE=kaggle` end to end: the real client, a stand-in Kaggle, the index."""

import os
import subprocess
import sys
import zipfile

import pandas as pd
import pytest

from deepsync.config import load_config
from deepsync.data import archive
from deepsync.data.index import scan_folder
from deepsync.data.stage import prepare


@pytest.fixture
def served(tiny_set, tmp_path_factory):
    """The tiny synthetic set as Kaggle served the competition: one zip per folder."""
    folder = tmp_path_factory.mktemp("served")
    files, reference = {}, {}
    for sub in sorted(p for p in tiny_set.iterdir() if p.is_dir()):
        with zipfile.ZipFile(folder / f"{sub.name}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(sub.iterdir()):
                name = f"{sub.name}/{path.name}"
                zf.write(path, name)
                reference[name] = (path.stat().st_size, archive.md5_file(path))
        files[f"{sub.name}.zip"] = (folder / f"{sub.name}.zip").read_bytes()
    for name in ("train_and_test_data_labels_safe.csv", "sample_submission.csv"):
        files[name] = (tiny_set / name).read_bytes()
    return files, reference


def test_kaggle_source_indexes_what_it_downloaded(
    kaggle_server, served, tiny_set, tmp_path, monkeypatch
):
    kaggle_server.files, reference = served
    monkeypatch.setattr(archive, "reference_md5", lambda: reference)
    config = load_config(overrides=["data.source=kaggle", f"data.root={tmp_path / 'data'}"])
    data = prepare(config, progress=False)
    assert data.folder == (tmp_path / "data" / "kaggle" / "files").resolve()
    assert data.reference.startswith("every listed file's size and MD5")
    keys = ["segment", "patient", "split", "label", "hour", "sequence", "safe", "bytes"]
    pd.testing.assert_frame_equal(data.scan.segments[keys], scan_folder(tiny_set).segments[keys])
    assert not data.scan.problems


def cli(tmp_path, *args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "deepsync",
            "--no-progress",
            "data",
            "--source",
            "kaggle",
            "--root",
            str(tmp_path / "data"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )


def test_cli_refuses_files_that_differ_from_the_originals(kaggle_server, served, tmp_path):
    """Synthetic files under real names cannot match the real MD5s: named, one line."""
    files, _ = served
    kaggle_server.files = {name: data for name, data in files.items() if name.startswith("train_")}
    result = cli(tmp_path)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line
    assert "differ from the originals: train_1/1_" in line
    assert "the original has" in line and "delete" in line and "train_1.zip" in line


def test_cli_explains_the_empty_competition_page(kaggle_server, tmp_path):
    kaggle_server.empty = True
    result = cli(tmp_path)
    assert result.returncode == 2
    assert "epilepsyecosystem.org" in result.stderr and "SOURCE=dir" in result.stderr
    assert result.stderr.count("\n") == 1
