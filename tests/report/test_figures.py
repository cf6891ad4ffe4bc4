"""The report's figures tell models apart."""

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba

from deepsync.report import figures


def _oof(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 40
    return pd.DataFrame(
        {
            "patient": np.repeat([1, 2], n // 2),
            "label": np.tile([0, 1], n // 2),
            "score": rng.random(n),
        }
    )


def test_every_model_of_the_roc_figure_has_its_own_colour():
    models = ["baseline", "cnn", "logistic:all", "gbm:all", "svm:corr", "blend"]
    fig = figures.roc_curves({m: _oof(i) for i, m in enumerate(models)})
    for ax in fig.axes:
        curves = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
        assert [c.get_label().split(" (")[0] for c in curves] == models
        colours = {to_rgba(c.get_color()) for c in curves}
        assert len(colours) == len(models)
        assert to_rgba("grey") not in colours  # the chance diagonal stays apart
    figures.plt().close(fig)


def test_the_kits_models_keep_their_colours_whatever_runs_beside_them():
    alone = figures.model_colours(["baseline", "cnn"])
    mixed = figures.model_colours(["gbm:all", "baseline", "knn:power", "cnn"])
    assert mixed["baseline"] == alone["baseline"] and mixed["cnn"] == alone["cnn"]
    assert len(set(mixed.values())) == 4


def test_the_mean_stack_reads_in_chunks_and_equals_the_mean_of_every_row():
    rng = np.random.default_rng(3)
    stacks = rng.normal(size=(40, 4, 5, 6)).astype(np.float16)
    rows = np.array([1, 3, 4, 9, 17, 20, 33, 39])
    whole = np.asarray(stacks[rows], dtype=np.float64).mean(axis=(0, 3))
    for chunk in (1, 3, 256):
        np.testing.assert_allclose(figures.mean_stack(stacks, rows, chunk), whole, rtol=1e-12)
    assert np.isnan(figures.mean_stack(stacks, rows[:0])).all()
