"""The segment index from both layouts, and the data stage end to end on folders."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.io

from deepsync.config import load_config
from deepsync.data.index import COLUMNS, load_index, save_index, scan_folder
from deepsync.data.layout import parse_name
from deepsync.data.segment import read_segment, write_segment
from deepsync.data.stage import prepare, summary
from deepsync.errors import DeepSyncError
from tests.conftest import TINY


def test_index_of_the_kaggle_layout(tiny_set):
    scan = scan_folder(tiny_set)
    t = scan.segments
    assert list(t.columns) == COLUMNS
    assert scan.labels_source.endswith("train_and_test_data_labels_safe.csv")
    train, test = t[t["split"] == "train"], t[t["split"] == "test"]
    assert len(test) == TINY.patients * TINY.test_hours * 6
    assert test["label"].isna().all() and test["sequence"].isna().all()
    extra = train[train["segment"].map(lambda n: parse_name(n).kind == "old_test")]
    assert len(extra) == TINY.patients * TINY.extra_preictal
    assert (extra["label"] == 1).all() and extra["hour"].is_unique
    hours = train.groupby("hour")
    assert hours.size().drop(extra["hour"]).eq(6).all()  # six segments in every hour
    assert hours["safe"].nunique().eq(1).all()  # an hour is safe or unsafe as a whole
    assert hours["label"].nunique().eq(1).all()
    assert (~train["safe"]).sum() == TINY.patients * TINY.unsafe_hours * 6
    seq = train.dropna(subset=["sequence"])
    assert (
        seq["sequence"]
        == seq["segment"].map(
            lambda n: read_segment(seq.loc[seq["segment"] == n, "path"].item()).sequence
        )
    ).all()
    assert (t["bytes"] > 0).all() and not scan.problems


def to_re_release(source, target, as_csv=()):
    """Copy the safe segments into the epilepsyecosystem.org naming and format."""
    labels = pd.read_csv(source / "train_and_test_data_labels_safe.csv")
    unsafe = set(labels.loc[labels["safe"] == 0, "image"])
    target.mkdir()
    for path in sorted(source.rglob("*.mat")):
        parsed = parse_name(path)
        if parsed.kind == "old_test" or parsed.name in unsafe:
            continue
        name = (
            f"Pat{parsed.patient}Train_{parsed.number}_{parsed.label}"
            if parsed.kind == "train"
            else f"Pat{parsed.patient}Test_{parsed.number}_0"
        )
        data = read_segment(path).data
        if parsed.name in as_csv:
            np.savetxt(target / f"{name}.csv", data, delimiter=",", fmt="%g")
        else:
            scipy.io.savemat(target / f"{name}.mat", {"data": data}, do_compression=True)


def test_both_layouts_map_to_the_same_index(tiny_set, tmp_path):
    kaggle = scan_folder(tiny_set).segments
    re_release = tmp_path / "ecosystem"
    to_re_release(tiny_set, re_release, as_csv={"1_1_0.mat", "new_2_3.mat"})
    eco = scan_folder(re_release).segments
    assert set(eco["layout"]) == {"ecosystem"}
    expected = kaggle[kaggle["safe"] & ~kaggle["segment"].str.fullmatch(r"\d+_\d+\.mat")]
    keys = ["segment", "patient", "split", "label", "hour", "sequence", "safe"]
    pd.testing.assert_frame_equal(
        eco[keys].reset_index(drop=True), expected[keys].reset_index(drop=True)
    )
    csv_row = eco[eco["segment"] == "new_2_3.mat"].iloc[0]
    assert csv_row["path"].endswith("Pat2Test_3_0.csv")


def test_unlabelled_old_test_files_are_skipped(tiny_set, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_set, folder)
    write_segment(folder / "test_1/1_999.mat", np.zeros((400, 16)), sequence=None)
    (folder / "test_1/notes.mat").write_bytes(b"x")
    scan = scan_folder(folder)
    assert "1_999.mat" not in set(scan.segments["segment"])
    assert scan.skipped == {"old test set, unlabelled": 1, "not a segment name": 1}


def test_problems_are_listed_not_fatal(tiny_set, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_set, folder)
    (folder / "train_1/1_2_0.mat").write_bytes(b"garbage")
    data = prepare(
        load_config(
            overrides=[
                "data.source=dir",
                f"data.data_dir={folder}",
                f"data.root={tmp_path / 'data'}",
            ]
        )
    )
    assert any("1_2_0.mat: a text file, not a MAT file" in p for p in data.scan.problems)
    assert "problems: 1" in summary(data)


def test_real_files_are_checked_against_the_original_sizes(tiny_set, tmp_path):
    folder = tmp_path / "real"
    (folder / "train_1").mkdir(parents=True)
    shutil.copy(tiny_set / "train_1/1_1_0.mat", folder / "train_1/1_1_0.mat")
    data = prepare(
        load_config(
            overrides=[
                "data.source=dir",
                f"data.data_dir={folder}",
                f"data.root={tmp_path / 'data'}",
            ]
        )
    )
    assert data.reference == "1 files checked against the original sizes"
    assert any("the original has 5543020" in p for p in data.scan.problems)


def test_index_round_trip(tiny_set, tmp_path):
    table = scan_folder(tiny_set).segments
    save_index(table, tmp_path / "segments.csv")
    pd.testing.assert_frame_equal(load_index(tmp_path / "segments.csv"), table)


def snapshot(folder):
    return {str(p): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_dir_source_indexes_the_synthetic_set_in_place(tiny_set, tmp_path):
    """`make data SOURCE=dir DATA_DIR=<synthetic folder>` gives the same index, read-only."""
    synthetic_index = scan_folder(tiny_set).segments
    before = snapshot(tiny_set)
    root = tmp_path / "data"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepsync",
            "--no-progress",
            "data",
            "--source",
            "dir",
            "--data-dir",
            str(tiny_set),
            "--root",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "problems: none" in result.stdout
    assert snapshot(tiny_set) == before  # never written to
    pd.testing.assert_frame_equal(load_index(root / "segments.csv"), synthetic_index)
    described = json.loads((root / "dataset.json").read_text())
    assert described["source"] == "dir" and described["test_labels"].endswith(".csv")


def test_synthetic_source_through_the_cli(tmp_path):
    root = tmp_path / "data"
    args = [
        sys.executable,
        "-m",
        "deepsync",
        "--no-progress",
        "--set",
        "synthetic.patients=1",
        "--set",
        "synthetic.seconds=5",
        "--set",
        "synthetic.interictal_hours=2",
        "--set",
        "synthetic.preictal_hours=1",
        "--set",
        "synthetic.test_hours=1",
        "data",
        "--root",
        str(root),
    ]
    first = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("data: synthetic source, 26 segments")
    assert "problems: none" in first.stdout
    index = load_index(root / "segments.csv")
    assert len(index) == 26 and (root / "synthetic_test_labels.csv").exists()
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "26 segments" in again.stdout


def write_2014_files(folder):
    """A file of each 2014 competition, renamed like Melbourne training files."""
    (folder / "train_1").mkdir(parents=True)
    rng = np.random.default_rng(3)
    scipy.io.savemat(  # UPenn and Mayo Clinic seizure detection: 1 s clips, 16 x 400
        folder / "train_1/1_1_0.mat",
        {
            "data": rng.normal(size=(16, 400)),
            "freq": 400.0,
            "channels": np.array([f"NVC1202_32_002_Ecog_c{i:03d}" for i in range(1, 17)]),
            "latency": 0.0,
        },
        do_compression=True,
    )
    scipy.io.savemat(  # American Epilepsy Society seizure prediction: a struct per file
        folder / "train_1/1_2_0.mat",
        {
            "interictal_segment_2": {
                "data": rng.normal(size=(16, 800)),
                "data_length_sec": 600.0,
                "sampling_frequency": 399.6,
                "channels": np.array(["c1"]),
                "sequence": 2.0,
            }
        },
        do_compression=True,
    )


def test_files_of_another_competition_are_named_as_such(tmp_path):
    folder = tmp_path / "mixed"
    write_2014_files(folder)
    config = load_config(
        overrides=["data.source=dir", f"data.data_dir={folder}", f"data.root={tmp_path / 'data'}"]
    )
    problems = prepare(config, progress=False).scan.problems
    assert len(problems) == 2
    assert (
        "1_1_0.mat: " in problems[0]
        and (
            "this looks like a file of another competition (2014 layout: data 16 x 400, freq, "
            "channels: the UPenn and Mayo Clinic seizure detection challenge's 1-second clips)"
        )
        in problems[0]
    )
    assert (
        "1_2_0.mat: " in problems[1]
        and (
            "(2014 layout: struct interictal_segment_2 with data, sampling_frequency, channels: "
            "the American Epilepsy Society seizure prediction challenge)"
        )
        in problems[1]
    )
    for path in sorted(folder.rglob("*.mat")):
        with pytest.raises(DeepSyncError, match="looks like a file of another competition"):
            read_segment(path)


def test_an_empty_or_text_file_is_listed_once(tiny_set, tmp_path):
    folder = tmp_path / "copy"
    (folder / "train_1").mkdir(parents=True)
    shutil.copy(tiny_set / "train_1/1_3_0.mat", folder / "train_1/1_3_0.mat")
    (folder / "train_1/1_1_0.mat").write_bytes(b"")
    (folder / "train_1/1_2_0.mat").write_text("File,Class\nnew_1_1.mat,0.5\n")
    config = load_config(
        overrides=["data.source=dir", f"data.data_dir={folder}", f"data.root={tmp_path / 'data'}"]
    )
    problems = prepare(config, progress=False).scan.problems
    named = {name: [p for p in problems if f"/{name}:" in p] for name in ("1_1_0.mat", "1_2_0.mat")}
    assert named["1_1_0.mat"] == [
        f"{folder / 'train_1/1_1_0.mat'}: an empty file (0 bytes); copy or download it again"
    ]
    assert [p.split(": ", 1)[1] for p in named["1_2_0.mat"]] == [
        "a text file, not a MAT file; copy or download it again"
    ]
