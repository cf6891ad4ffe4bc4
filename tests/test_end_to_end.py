"""The command the kit is measured with on hidden data, end to end through `make`."""

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_hidden_data_command_runs_on_a_folder_in_the_competition_layout(tiny_set, tmp_path):
    """`make data features train submit SOURCE=dir DATA_DIR=... PROFILE=demo` on a folder of
    .mat files in the competition's layout: every stage from make, the submit line naming
    the chosen model and its pooled OOF AUC, and a File,Class CSV of every file of the
    sample submission. Every stage's files under tmp_path; the CNN at 2 epochs (the same
    path, shorter)."""
    where = [s for s in tiny_overrides(tiny_set, tmp_path) if not s.startswith("data.")]
    where += [f"data.root={tmp_path}/data", "cnn.epochs=2"]
    result = subprocess.run(
        [
            "make",
            "data",
            "features",
            "train",
            "submit",
            "SOURCE=dir",
            f"DATA_DIR={tiny_set}",
            "PROFILE=demo",
            "SET=" + " ".join(where),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = re.search(
        r"^submit: (\S+) \((\S+), calibration \S+, pooled OOF AUC (0\.\d{4})\)$",
        result.stdout,
        re.M,
    )
    assert line, result.stdout[-3000:]
    path, model = Path(line[1]), line[2]
    assert path.parent == tmp_path / "submissions" and model in result.stdout.split("submit:")[0]
    sent = pd.read_csv(path)
    sample = pd.read_csv(tiny_set / "sample_submission.csv")
    assert list(sent.columns) == ["File", "Class"] and sorted(sent["File"]) == sorted(
        sample["File"]
    )
    assert sent["Class"].between(0, 1).all()
