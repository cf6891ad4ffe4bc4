"""The local scorer reproduces the leaderboard: the published public scores, to five decimals."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepsync.errors import DeepSyncError
from deepsync.submit import scoring, submission

FIXTURES = Path(__file__).parents[1] / "fixtures" / "melbourne"
PUBLISHED = {  # the winning team's README: public leaderboard scores
    "Winning_submission.csv": 0.80630,
    "Feng_xgb.csv": 0.75909,
    "Andriy_submissionXGB7_5mean.csv": 0.77310,
}


@pytest.fixture(scope="module")
def labels():
    return scoring.load_labels(scoring.reference_labels())


@pytest.fixture(scope="module")
def sample():
    return submission.read_sample(submission.reference_sample())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_the_published_public_scores_are_reproduced(labels, sample, name):
    scores = submission.read(FIXTURES / name, sample)
    result = scoring.score(scores, labels)
    assert round(result["Public"]["auc"], 5) == PUBLISHED[name]
    assert result["Public"]["files"] == 564
    assert result["Private"] is None  # the organisers published no private labels


def test_the_label_file_maps_names_and_splits(labels, sample):
    assert scoring.matches(labels, sample)
    assert labels["usage"].value_counts().to_dict() == {
        "Private": 1324,
        "Public": 564,
        "Ignored": 20,
    }
    first = labels.iloc[0]
    assert first["File"] == "new_1_1.mat" and first["patient"] == 1


def test_ignored_files_do_not_count(labels, sample):
    scores = submission.read(FIXTURES / "Winning_submission.csv", sample)
    ignored = labels.loc[labels["usage"] == "Ignored", "File"]
    changed = scores.copy()
    changed[ignored] = np.linspace(0, 1, len(ignored))
    assert scoring.score(changed, labels)["Public"]["auc"] == pytest.approx(0.80630, abs=5e-6)


def test_per_patient_scores_are_the_patients_own(labels, sample):
    scores = submission.read(FIXTURES / "Winning_submission.csv", sample)
    result = scoring.score(scores, labels)["Public"]
    # Pooling patients is not averaging them: the winners' per-patient AUCs are lower.
    assert set(result["patients"]) == {"1", "2", "3"}
    assert np.mean(list(result["patients"].values())) < result["auc"]


def test_both_splits_score_where_both_are_labelled(tmp_path):
    path = tmp_path / "labels.csv"
    rows = ["image,class,usage"]
    rows += [f"Pat1Test_{j}_0,{j % 2},{'Public' if j <= 4 else 'Private'}" for j in range(1, 9)]
    rows += ["Pat1Test_9_0,0,Ignored"]
    path.write_text("\n".join(rows) + "\n")
    labels = scoring.load_labels(path)
    perfect = pd.Series([j % 2 for j in range(1, 10)], index=labels["File"], dtype=float)
    result = scoring.score(perfect, labels)
    assert result["Public"]["auc"] == 1.0 and result["Private"]["auc"] == 1.0
    assert result["Private"]["files"] == 4
    with pytest.raises(DeepSyncError, match="no score for new_1_2.mat"):
        scoring.score(perfect.drop("new_1_2.mat"), labels)


def test_a_file_that_is_not_a_labels_file_is_refused(tmp_path):
    (tmp_path / "x.csv").write_text("File,Class\nnew_1_1.mat,0.5\n")
    with pytest.raises(DeepSyncError, match="image,class,usage"):
        scoring.load_labels(tmp_path / "x.csv")
