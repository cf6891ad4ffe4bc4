"""Feng's KNN: the compiled exact Manhattan search gives scikit-learn's scores."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from deepsync.train import neighbours
from deepsync.train.neighbours import ManhattanKnn


@pytest.mark.parametrize("k", [1, 7, 40])
def test_the_scores_are_scikit_learns_distance_weighted_manhattan_knn(k, monkeypatch):
    monkeypatch.setattr(neighbours, "QUERY_BLOCK", 64)  # several blocks of queries
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


def test_the_distances_are_every_pairs_manhattan_distance():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 9)), rng.normal(size=(7, 9))
    expected = np.abs(a[:, None, :] - b[None, :, :]).sum(axis=2)
    assert np.allclose(neighbours.manhattan(a, b), expected, rtol=1e-12)
