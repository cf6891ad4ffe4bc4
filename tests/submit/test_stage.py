"""`make submit` on a trained tiny run: the file, its description, scores, ledger, guards."""

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepsync.config import load_config
from deepsync.errors import DeepSyncError
from deepsync.submit import ledger, references, scoring, submission
from deepsync.submit.leaderboard import render, table
from deepsync.submit.stage import make_submission, summary
from deepsync.train.stage import train
from tests.conftest import tiny_config

from .conftest import with_submit


def test_the_submission_holds_every_sample_file_in_order(submit_config):
    report = make_submission(submit_config)
    sample = submission.read_sample(references.pick_sample(submit_config))
    frame = pd.read_csv(report.path)
    assert report.path.name == "submitting.csv"
    assert list(frame["File"]) == sample and frame["Class"].between(0, 1).all()
    assert submission.problems(report.path, sample) == []


def test_the_description_and_ledger_say_where_it_came_from(submit_config):
    report = make_submission(submit_config)
    described = json.loads(report.path.with_suffix(".json").read_text())
    assert described["run"] == "submitting" and described["model"] == report.chosen.model
    defaults = load_config().train.models.split(",")
    assert set(described["candidates"]) == {*defaults, "blend"}
    assert described["run_settings"]["cnn"]["model"] == "test_resnet"
    (event,) = ledger.read(submit_config.submit.folder).itertuples()
    assert event.event == "written" and event.file == "submitting.csv"
    assert event.config_hash == report.config_hash == described["config_hash"]
    assert event.oof_auc == pytest.approx(report.chosen.oof_auc)


def test_local_scores_are_the_scorer_s_on_the_written_file(submit_config):
    report = make_submission(submit_config)
    labels = scoring.load_labels(references.pick_labels(submit_config))
    sample = submission.read_sample(references.pick_sample(submit_config))
    again = scoring.score(submission.read(report.path, sample), labels)
    assert report.scores["Public"]["auc"] == pytest.approx(again["Public"]["auc"], abs=1e-7)
    assert report.scores["Private"] is not None  # the synthetic set labels both splits
    (event,) = ledger.read(submit_config.submit.folder).itertuples()
    assert event.local_public == pytest.approx(again["Public"]["auc"], abs=1e-7)
    text = summary(report)
    assert "Public" in text and "Private" in text and "pooled OOF AUC" in text


def test_all_zero_test_files_get_the_neutral_score(submit_config, tiny_cache):
    _, cache = tiny_cache
    segments = cache.segments
    zero = segments.loc[(segments["split"] == "test") & segments["all_zero"], "segment"]
    assert len(zero) >= 1
    report = make_submission(submit_config)
    scores = pd.read_csv(report.path).set_index("File")["Class"]
    others = scores.drop(index=zero)
    assert np.allclose(scores[zero], others.median(), atol=1e-8)
    assert report.neutral_files == len(zero)


def test_the_auto_choices_are_the_best_measured(submit_config):
    report = make_submission(submit_config)
    best = max(c.oof_auc for c in report.candidates)
    assert report.chosen.oof_auc == best
    for candidate in report.candidates:
        if candidate.measured:
            assert candidate.oof_auc == max(candidate.measured.values())


def test_configured_model_and_calibration_are_used(submit_config):
    config = with_submit(submit_config, model="cnn", calibration="rank", name="cnn-rank")
    report = make_submission(config)
    assert (report.chosen.model, report.chosen.calibration) == ("cnn", "rank")
    assert report.path.name == "cnn-rank.csv"
    frame = pd.read_csv(report.path)
    ranked = frame[frame["File"].str.startswith("new_1_")]["Class"]
    assert ranked.max() < 1 and ranked.min() > 0  # ranks in (0, 1)


def test_tta_rescores_the_cnn_oof_and_test_and_keeps_them(submit_config, trained_run):
    config, _ = trained_run
    run = Path(config.train.runs_root) / config.train.run
    plain = make_submission(with_submit(submit_config, model="cnn", calibration="none"))
    tta = make_submission(with_submit(submit_config, model="cnn", calibration="none", tta=1))
    assert (run / "cnn" / "tta1" / "oof.csv").exists() and (
        run / "cnn" / "tta1" / "test.csv"
    ).exists()
    assert not np.allclose(plain.chosen.oof.to_numpy(), tta.chosen.oof.to_numpy())
    assert tta.config_hash != plain.config_hash


def test_a_sent_file_is_not_replaced_by_other_settings(submit_config):
    report = make_submission(submit_config)
    ledger.append(
        submit_config.submit.folder,
        "submitted",
        file=report.path.name,
        config_hash=report.config_hash,
        kaggle_ref="1",
    )
    make_submission(submit_config)  # the same settings: the same file, fine
    other = with_submit(submit_config, calibration="rank")
    with pytest.raises(DeepSyncError, match="submit.name=NEW_NAME"):
        make_submission(other)
    assert make_submission(with_submit(other, name="ranked")).path.name == "ranked.csv"


def test_a_run_missing_a_patient_cannot_be_submitted(trained_run, tiny_set, tmp_path):
    _, base = trained_run
    config = tiny_config(
        tiny_set,
        base,
        "train.models=baseline",
        "train.patients=1",
        "train.run=patient1",
        f"submit.folder={tmp_path}",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(config, progress=False)
    with pytest.raises(DeepSyncError, match=r"no predictions for patient\(s\) 2"):
        make_submission(config)
    assert not (tmp_path / "patient1.csv").exists()


def test_no_run_is_a_one_line_error(submit_config):
    config = dataclasses.replace(
        submit_config, train=dataclasses.replace(submit_config.train, run="never-trained")
    )
    with pytest.raises(DeepSyncError, match="run `make train` first"):
        make_submission(config)


def test_the_leaderboard_lists_each_submission_once_with_its_scores(submit_config):
    first = make_submission(submit_config)
    make_submission(submit_config)  # written again: still one entry
    make_submission(with_submit(submit_config, model="cnn", name="cnn-only"))
    board = table(submit_config.submit.folder)
    assert sorted(board["file"]) == ["cnn-only.csv", "submitting.csv"]
    row = board.set_index("file").loc["submitting.csv"]
    assert row["oof_auc"] == pytest.approx(first.chosen.oof_auc)
    assert row["public_minus_oof"] == pytest.approx(row["local_public"] - row["oof_auc"])
    privates = board["local_private"].to_numpy()
    assert list(privates) == sorted(privates, reverse=True)  # best private first
    text = render(board)
    assert "submitting.csv" in text and "cnn-only.csv" in text


def test_the_blend_takes_the_named_models_and_given_weights(submit_config):
    everyone = make_submission(submit_config)
    blend = next(c for c in everyone.candidates if c.model == "blend")
    defaults = load_config().train.models.split(",")
    assert all(m in blend.calibration for m in defaults)
    assert blend.calibration.split(",")[0].count("+") == len(defaults) - 1  # each one's
    chosen = with_submit(
        submit_config, blend="cnn,logistic:share,baseline", blend_weights="1,2,1", model="blend"
    )
    report = make_submission(chosen)
    assert report.chosen.model == "blend"
    assert report.chosen.calibration.endswith("weights cnn 1 logistic:share 2 baseline 1")
    assert "given weights" in report.chosen.measured
    assert report.config_hash != everyone.config_hash  # another blend, another file
    with pytest.raises(DeepSyncError, match="names svm:share, not trained in this run"):
        make_submission(with_submit(submit_config, blend="cnn,svm"))
    with pytest.raises(DeepSyncError, match="gives 2 weights for 3 models"):
        make_submission(
            with_submit(submit_config, blend="cnn,logistic:share,baseline", blend_weights="1,1")
        )
