"""Feng's KNN: the compiled exact Manhattan search gives scikit-learn's scores."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from deepsync.train import neighbours
from deepsync.train.neighbours import ManhattanKnn


@pytest.mark.parametrize("k", [1, 7, 40])
def test_the_scores_are_scikit_learns_distance_weighted_manhattan_knn(k):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(600, 37))
    y = (x[:, 0] + rng.normal(size=600) > 0.3).astype(int)
    queries = rng.normal(size=(300, 37))
    queries[:3] = x[:3]  # a query on a training row: that row alone decides
    x[10:14] = 6.0
    queries[3] = 6.0  # four training rows at distance 0 (far from the rest), of both classes
    y[10:14] = [0, 1, 1, 1]
    ours = ManhattanKnn(neighbours=k).fit(x, y)
    theirs = KNeighborsClassifier(k, weights="distance", metric="manhattan").fit(x, y)
    clear = np.arange(300) != 3 if k < 4 else slice(None)  # k=1 of 4 tied rows: any one
    expected = theirs.predict_proba(queries)
    assert np.allclose(ours.predict_proba(queries)[clear], expected[clear], rtol=0, atol=1e-9)
    assert (ours.predict(queries)[clear] == theirs.predict(queries)[clear]).all()
    if k >= 4:
        assert np.allclose(ours.predict_proba(queries[3:4]), [[0.25, 0.75]])
    single = ours.predict_proba(queries[:3])
    assert np.array_equal(single, np.eye(2)[y[:3]])  # distance 0: that row's class


def test_nearest_gives_every_rows_manhattan_distance_in_order():
    """Tiles of 64 queries, four at a time (here 131: two whole tiles, a ragged one, and
    queries left over from the fours) against tiles of 64 rows (150: a ragged last tile)."""
    rng = np.random.default_rng(0)
    queries, rows = rng.normal(size=(131, 9)), rng.normal(size=(150, 9))
    expected = np.abs(queries[:, None, :] - rows[None, :, :]).sum(axis=2)
    distances, index = neighbours.nearest(queries, rows, 150)
    assert np.array_equal(index, np.argsort(expected, axis=1, kind="stable"))
    assert np.allclose(distances, np.sort(expected, axis=1), rtol=1e-12, atol=0)
    few, chosen = neighbours.nearest(queries, rows, 5)
    assert np.array_equal(chosen, index[:, :5]) and np.array_equal(few, distances[:, :5])


def test_nearest_takes_the_lower_row_first_among_equal_distances():
    rows = np.array([[3.0], [1.0], [2.0], [1.0], [1.0], [0.0]])
    distances, index = neighbours.nearest(np.zeros((5, 1)), rows, 3)
    assert (index == [5, 1, 3]).all() and (distances == [0.0, 1.0, 1.0]).all()
