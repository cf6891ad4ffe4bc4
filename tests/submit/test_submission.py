"""Submission files: every defect Kaggle would reject is caught and named; writing is safe."""

import numpy as np
import pandas as pd
import pytest

from deepsync.errors import DeepSyncError
from deepsync.submit import submission

SAMPLE = [f"new_1_{j}.mat" for j in range(1, 6)]


def write_rows(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def good_lines():
    return ["File,Class"] + [f"{name},0.{i}" for i, name in enumerate(SAMPLE, start=1)]


def test_a_good_file_has_no_problems(tmp_path):
    assert submission.problems(write_rows(tmp_path / "s.csv", good_lines()), SAMPLE) == []


def test_the_shipped_sample_submission_lists_the_final_test_files():
    sample = submission.read_sample(submission.reference_sample())
    assert len(sample) == 1908 and len(set(sample)) == 1908
    assert sample[0] == "new_1_1.mat" and sample[-1] == "new_3_690.mat"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda rows: ["file,class"] + rows[1:], "header is 'file,class', not File,Class"),
        (lambda rows: rows[:-1], "1 missing files: new_1_5.mat"),
        (lambda rows: rows + ["new_9_1.mat,0.5"], "1 files not in the sample submission: new_9_1"),
        (lambda rows: rows + ["new_1_2.mat,0.9"], "1 duplicated files: new_1_2.mat"),
        (lambda rows: rows[:2] + ["new_1_2.mat,abc"] + rows[3:], "line 3 (new_1_2.mat): 'abc'"),
        (lambda rows: rows[:2] + ["new_1_2.mat,nan"] + rows[3:], "NaN or infinite values: line 3"),
        (lambda rows: rows[:2] + ["new_1_2.mat,inf"] + rows[3:], "NaN or infinite values: line 3"),
        (lambda rows: rows[:2] + ["new_1_2.mat,1.5"] + rows[3:], "outside [0, 1]: line 3"),
        (lambda rows: rows[:2] + ["new_1_2.mat,-0.1"] + rows[3:], "outside [0, 1]: line 3"),
        (lambda rows: rows[:2] + ["new_1_2.mat,0.1,x"] + rows[3:], "line 3 has 3 fields"),
        (lambda rows: rows[:2] + ["new_1_2.mat,"] + rows[3:], "'' is not a number"),
    ],
)
def test_each_defect_is_named_precisely(tmp_path, change, expected):
    path = write_rows(tmp_path / "s.csv", change(good_lines()))
    found = submission.problems(path, SAMPLE)
    assert len(found) == 1 and expected in found[0], found
    with pytest.raises(DeepSyncError) as error:
        submission.check(path, SAMPLE)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_several_defects_are_all_listed(tmp_path):
    path = write_rows(tmp_path / "s.csv", ["File,Class", "new_1_1.mat,2", "new_1_1.mat,x"])
    found = " | ".join(submission.problems(path, SAMPLE))
    for part in ("4 missing files", "duplicated files: new_1_1.mat", "not numbers", "outside"):
        assert part in found


def test_an_empty_file_is_a_problem(tmp_path):
    (tmp_path / "s.csv").write_text("")
    assert "empty" in submission.problems(tmp_path / "s.csv", SAMPLE)[0]


def test_order_and_quotes_and_bom_do_not_matter(tmp_path):
    lines = ['"File","Class"'] + [f'"{n}",0.5' for n in reversed(SAMPLE)]
    path = tmp_path / "s.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode())
    assert submission.problems(path, SAMPLE) == []
    assert list(submission.read(path, SAMPLE).index) == SAMPLE


def test_write_follows_the_sample_order_and_validates(tmp_path):
    scores = pd.Series(np.linspace(0, 1, 5), index=list(reversed(SAMPLE)))
    path = submission.write(tmp_path / "out" / "s.csv", scores, SAMPLE)
    frame = pd.read_csv(path)
    assert list(frame["File"]) == SAMPLE
    assert np.allclose(frame["Class"], scores.reindex(SAMPLE))


def test_write_refuses_a_file_with_a_missing_score(tmp_path):
    scores = pd.Series([0.1, 0.2, np.nan, 0.4, 0.5], index=SAMPLE)
    with pytest.raises(DeepSyncError, match="refusing to write.*new_1_3.mat"):
        submission.write(tmp_path / "s.csv", scores, SAMPLE)
    assert list(tmp_path.iterdir()) == []  # no file, no partial file
