"""Blending is rank-based and order-independent; calibrations do what they say."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from deepsync.errors import DeepSyncError
from deepsync.submit import calibration
from deepsync.submit.blend import rank_average, ranks
from deepsync.train.metrics import auc

FILES = [f"new_1_{j}.mat" for j in range(1, 41)]


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    return [pd.Series(rng.uniform(size=len(FILES)), index=FILES) for _ in range(3)]


def test_blending_sees_only_ranks(inputs):
    a, b, c = inputs
    squashed = [a**5, np.log1p(b) / 10, c]  # monotone changes of each input
    assert np.allclose(rank_average(inputs), rank_average(squashed))


def test_blending_does_not_depend_on_the_order_of_inputs(inputs):
    a, b, c = inputs
    shuffled = c.sample(frac=1, random_state=1)  # its rows in another order too
    one = rank_average([a, b, c], [1, 2, 3])
    other = rank_average([shuffled, a, b], [3, 1, 2])
    assert np.allclose(one, other.reindex(one.index))


def test_weights_pull_the_blend_towards_their_input(inputs):
    a, b, _ = inputs
    heavy = rank_average([a, b], [100, 1])
    assert np.corrcoef(heavy, ranks(a))[0, 1] > 0.999
    assert np.allclose(rank_average([a]), ranks(a))


def test_bad_blends_are_one_line_errors(inputs):
    a, b, _ = inputs
    with pytest.raises(DeepSyncError, match="2 weights for 3"):
        rank_average(inputs, [1, 2])
    with pytest.raises(DeepSyncError, match="not be negative"):
        rank_average([a, b], [1, -1])
    with pytest.raises(DeepSyncError, match="same files"):
        rank_average([a, b.iloc[1:]])


def oof_with_patient_offsets(seed=0):
    """Three patients whose models are each good, but on different scales."""
    rng = np.random.default_rng(seed)
    rows = []
    for patient, offset in ((1, -2.0), (2, 0.0), (3, 2.0)):
        for i in range(120):
            label = int(i % 4 == 0)
            logit = offset + 1.5 * label + rng.normal(0, 1)
            rows.append((f"{patient}_{i}_{label}.mat", patient, label, i % 3, expit(logit)))
    return pd.DataFrame(rows, columns=["segment", "patient", "label", "fold", "score"])


def test_calibrations_make_patients_comparable():
    oof = oof_with_patient_offsets()
    measured = calibration.measured(oof)
    assert set(measured) == set(calibration.METHODS)
    for method in ("platt", "prior", "standardise", "rank"):
        assert measured[method] > measured["none"] + 0.05, (method, measured)
    assert calibration.best(measured) in ("platt", "prior", "standardise", "rank")


def test_each_method_keeps_the_order_within_a_patient():
    oof = oof_with_patient_offsets()
    for method in calibration.METHODS:
        out = pd.Series(calibration.calibrate_oof(oof, method), index=oof.index)
        for (_, _), part in oof.groupby(["patient", "fold"]):
            assert np.all(np.diff(out[part.sort_values("score").index]) >= -1e-12), method


def test_rank_standardise_and_prior_land_where_they_say():
    oof = oof_with_patient_offsets()
    test = oof[["patient", "score"]].copy()
    ranked = calibration.calibrate_scores(oof, test, "rank")
    assert np.allclose(sorted(ranked[test["patient"] == 1]), (np.arange(120) + 0.5) / 120)
    logits = np.log(1 / calibration.calibrate_scores(oof, test, "standardise") - 1)
    assert abs(logits[test["patient"] == 3].mean()) < 1e-6
    prior = calibration.calibrate_scores(oof, test, "prior")
    assert prior[test["patient"] == 2].mean() == pytest.approx(0.25, abs=1e-6)


def test_label_using_methods_are_cross_fitted():
    oof = oof_with_patient_offsets()
    moved = oof.copy()
    moved.loc[moved["fold"] == 0, "label"] = 1 - moved.loc[moved["fold"] == 0, "label"]
    for method in ("prior", "platt"):
        before = calibration.calibrate_oof(oof, method)
        after = calibration.calibrate_oof(moved, method)
        held = (oof["fold"] == 0).to_numpy()
        # Fold 0's own labels changed: its calibrated scores must not (they come from the
        # other folds); the other folds' maps saw the change.
        assert np.allclose(before[held], after[held]), method
        assert not np.allclose(before[~held], after[~held]), method


def test_best_prefers_the_simpler_method_on_a_tie():
    assert calibration.best({"none": 0.8, "platt": 0.8, "rank": 0.7}) == "none"
    assert calibration.best({"none": 0.7, "rank": 0.9, "prior": 0.9}) == "prior"
    assert auc([0, 1], [0.2, 0.8]) == 1.0


def test_the_weight_grid_covers_every_weighting_that_sums_to_one():
    from deepsync.submit.blend import weight_grid

    two = weight_grid(2)
    assert len(two) == 11 and (0.0, 1.0) in two and (0.5, 0.5) in two
    three = weight_grid(3)
    assert len(three) == 66 and all(abs(sum(w) - 1) < 1e-9 for w in three)


def test_blend_weights_for_a_fold_are_chosen_on_the_other_folds():
    from deepsync.submit.blend import fitted_blend

    rng = np.random.default_rng(0)
    n = 60
    labels = pd.Series(np.tile([0, 1], n // 2), index=[f"s{k}" for k in range(n)])
    folds = pd.Series(np.repeat([0, 1, 2], n // 3), index=labels.index)
    good = labels + rng.normal(0, 0.1, n)  # right on every fold but fold 0, inverted there
    good[folds == 0] = -good[folds == 0]
    noise = pd.Series(rng.normal(0, 1, n), index=labels.index)
    noise[folds == 0] = labels[folds == 0]  # only fold 0's own labels would prefer it
    fitted = fitted_blend([good, noise], labels, folds)
    assert fitted.per_fold[0][0] > 0.5  # what folds 1 and 2 prefer: mostly the first input
    fold0 = folds == 0
    assert auc(labels[fold0], fitted.oof[fold0]) < 0.5  # fold 0 did not pick its own weights
    assert set(fitted.per_fold) == {0, 1, 2}
    tied = fitted_blend([labels.astype(float), labels.astype(float)], labels, folds)
    assert tied.weights == (0.5, 0.5)  # ties go to equal weights


def test_the_weight_grid_coarsens_for_many_models():
    from deepsync.submit.blend import MAX_GRID, weight_grid

    assert len(weight_grid(4)) == 286  # still tenths
    for models in (5, 8, 11):
        grid = weight_grid(models)
        assert 1 < len(grid) <= MAX_GRID and all(abs(sum(w) - 1) < 1e-9 for w in grid)
        assert tuple([1.0] + [0.0] * (models - 1)) in grid  # one model alone stays possible


def test_a_blend_of_three_models_uses_what_each_knows():
    """Each model ranks one patient's segments; the blend of all three ranks them all."""
    from deepsync.submit.blend import fitted_blend

    rng = np.random.default_rng(1)
    n = 90
    index = [f"s{k}" for k in range(n)]
    labels = pd.Series(np.tile([0, 1], n // 2), index=index)
    folds = pd.Series(np.tile(np.repeat([0, 1, 2], 2), n // 6), index=index)
    patient = np.repeat([0, 1, 2], n // 3)
    inputs = []
    for knows in range(3):  # signal on its own patient, noise on the others
        scores = rng.normal(0, 1, n) + np.where(patient == knows, 3.0 * labels, 0.0)
        inputs.append(pd.Series(scores, index=index))
    fitted = fitted_blend(inputs, labels, folds)
    best_alone = max(auc(labels, s) for s in inputs)
    assert auc(labels, fitted.oof) > best_alone + 0.05
    assert all(w > 0 for w in fitted.weights) and abs(sum(fitted.weights) - 1) < 1e-9
