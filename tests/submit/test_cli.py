"""validate, score and blend as a user runs them: real processes, exit codes, one-line errors."""

from pathlib import Path

import numpy as np
import pandas as pd

from deepsync.submit import submission
from deepsync.submit.blend import rank_average
from tests.test_cli import run

FIXTURES = Path(__file__).parents[1] / "fixtures" / "melbourne"
WINNING = FIXTURES / "Winning_submission.csv"


def test_score_prints_the_winners_public_score(tmp_path):
    result = run("score", str(WINNING), cwd=tmp_path)  # no data set here: the real labels
    assert result.returncode == 0, result.stderr
    assert "Public   0.80630 pooled over 564 files" in result.stdout
    assert "Private  unknown here" in result.stdout


def test_validate_says_what_is_wrong_and_exits_non_zero(tmp_path):
    assert run("validate", str(WINNING), cwd=tmp_path).returncode == 0
    frame = pd.read_csv(WINNING)
    frame.loc[3, "Class"] = 1.7
    broken = pd.concat([frame.iloc[1:], frame.iloc[[5]]])  # first file gone, one twice
    broken.to_csv(tmp_path / "broken.csv", index=False)
    result = run("validate", str(tmp_path / "broken.csv"), cwd=tmp_path)
    assert result.returncode == 1
    for part in ("1 missing files: new_1_1.mat", "duplicated files: new_1_6.mat", "outside [0, 1]"):
        assert part in result.stdout


def test_blend_writes_a_valid_rank_average(tmp_path):
    out = tmp_path / "blend.csv"
    result = run(
        "blend",
        str(WINNING),
        str(FIXTURES / "Feng_xgb.csv"),
        "--weights",
        "2,1",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert run("validate", str(out), cwd=tmp_path).returncode == 0
    sample = submission.read_sample(submission.reference_sample())
    expected = rank_average(
        [submission.read(WINNING, sample), submission.read(FIXTURES / "Feng_xgb.csv", sample)],
        [2, 1],
    )
    assert np.allclose(submission.read(out, sample), expected, atol=1e-7)
    bad = run("blend", str(WINNING), "--weights", "a", "--out", str(out), cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_submit_without_a_run_is_a_one_line_error(tmp_path):
    result = run("submit", cwd=tmp_path)
    assert result.returncode == 2 and "make train" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_blend_into_a_folder_or_against_a_binary_sample_is_one_line(tmp_path):
    (tmp_path / "out").mkdir()
    into = run("blend", str(WINNING), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert into.returncode == 2 and "Traceback" not in into.stderr
    assert into.stderr.strip().splitlines() == [
        f"deepsync blend: error: {tmp_path / 'out'} is a folder where a file belongs: move it "
        "away, or give another file name"
    ]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out"]  # no .partial anywhere
    binary = tmp_path / "sample.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    validate = run("validate", str(WINNING), "--sample", str(binary), cwd=tmp_path)
    assert validate.returncode == 2 and "Traceback" not in validate.stderr
    assert validate.stderr.strip().splitlines() == [
        f"deepsync validate: error: cannot read the sample submission {binary} (not UTF-8 text)"
    ]


def test_an_unclosed_quote_or_nul_bytes_are_shown_in_short(tmp_path):
    lines = WINNING.read_text().splitlines()
    quoted = tmp_path / "quoted.csv"
    quoted.write_text("\n".join(lines[:4] + ['"new_1_3.mat,0.5'] + lines[5:]) + "\n")
    nul = tmp_path / "nul.csv"
    nul.write_text("\n".join(lines[:4] + ["new_1_\x00\x003.mat,0.5"] + lines[5:]) + "\n")
    for path, expected in (
        (quoted, "1 quoted fields that run over several lines: line 5 opens a quote"),
        (nul, "1 files not in the sample submission: 'new_1_\\x00\\x003.mat'"),
    ):
        result = run("validate", str(path), cwd=tmp_path)
        assert result.returncode == 1 and expected in result.stdout
        assert len(result.stdout.splitlines()) <= 4 and "\x00" not in result.stdout
        assert max(len(line) for line in result.stdout.splitlines()) < 200
