"""What the CNN will see: a few cached stacks as PNG pictures.

One picture per patient: an interictal segment beside a preictal one, each as its 16
electrodes' log spectrograms (frequency up on the log bands' own scale, time right, one
colour scale per picture), with filled-in (dropout) frames shaded so that they cannot be
mistaken for signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepsync.config import FeaturesConfig
from deepsync.durable import replacing
from deepsync.errors import DeepSyncError
from deepsync.features.cache import FeatureCache
from deepsync.features.spectrogram import log_band_edges


@dataclass(frozen=True)
class StackAxes:
    """Where a stack's rows and columns are: band centres (Hz) and frame times (s)."""

    band_hz: np.ndarray  # (bands,)
    seconds: float  # the segment's length

    @classmethod
    def of(cls, params: FeaturesConfig, sampling_rate: float, seconds: float) -> StackAxes:
        length = int(round(params.window_seconds * sampling_rate))
        bins = length // 2 + 1
        bin_hz = sampling_rate / length
        edges = log_band_edges(params.bands, params.min_hz / bin_hz, bins) * bin_hz
        return cls(np.sqrt(edges[:-1] * np.maximum(edges[1:] - bin_hz, edges[:-1])), seconds)

    def band_ticks(self, count: int = 6) -> tuple[list[int], list[str]]:
        """``count`` band rows spread evenly, labelled with their frequency, for an axis."""
        rows = np.unique(np.linspace(0, len(self.band_hz) - 1, count).round().astype(int))
        return rows.tolist(), [f"{self.band_hz[r]:.0f}" for r in rows]


def choose_pairs(cache: FeatureCache, patients: int) -> list[tuple[int, int, int]]:
    """(patient, interictal row, preictal row) per patient; segments with dropout first."""
    s = cache.segments
    s = s[(s["status"] == "ok") & (s["split"] == "train") & ~s["all_zero"].astype(bool)]
    pairs = []
    for patient, group in s.groupby("patient"):
        ordered = group.sort_values("dropout", ascending=False)
        inter = ordered[ordered["label"] == 0]
        pre = ordered[ordered["label"] == 1]
        if len(inter) and len(pre):
            pairs.append((int(patient), int(inter["row"].iat[0]), int(pre["row"].iat[0])))
    if not pairs:
        raise DeepSyncError("no patient has both an interictal and a preictal segment cached")
    return pairs[:patients]


def stack_figure(cache: FeatureCache, patient: int, inter: int, pre: int, axes_of: StackAxes):
    """A matplotlib figure: the two segments' 16 electrodes side by side, labelled."""
    from matplotlib import pyplot as plt

    stacks = [np.asarray(cache.stacks[r], dtype=np.float32) for r in (inter, pre)]
    low, high = np.percentile(np.concatenate([x.ravel() for x in stacks]), [1, 99])
    fig, axes = plt.subplots(
        4, 9, figsize=(18, 8.5), width_ratios=[1] * 4 + [0.15] + [1] * 4, squeeze=False
    )
    for ax in axes[:, 4]:
        ax.axis("off")
    frames = stacks[0].shape[-1]
    extent = (0, axes_of.seconds, -0.5, stacks[0].shape[1] - 0.5)
    rows, labels = axes_of.band_ticks()
    image = None
    for side, (row, stack) in enumerate(zip((inter, pre), stacks, strict=True)):
        clean = np.asarray(cache.frames[row])
        for electrode in range(stack.shape[0]):
            ax = axes[electrode // 4, side * 5 + electrode % 4]
            image = ax.imshow(
                stack[electrode],
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=low,
                vmax=high,
                interpolation="nearest",
                extent=extent,
            )
            step = axes_of.seconds / frames
            for t in np.flatnonzero(~clean):  # a strip along the top marks fill-in
                ax.axvspan(t * step, (t + 1) * step, ymin=0.9, color="cyan", lw=0)
            ax.set_title(f"electrode {electrode + 1}", fontsize=8)
            ax.set_yticks(rows, labels if electrode % 4 == 0 else [], fontsize=7)
            ax.tick_params(axis="x", labelsize=7, labelbottom=electrode // 4 == 3)
            if electrode % 4 == 0:
                ax.set_ylabel("frequency (Hz)", fontsize=8)
            if electrode // 4 == 3:
                ax.set_xlabel("time (s)", fontsize=8)
        info = cache.segments.set_index("row").loc[row]
        kind = "preictal" if side else "interictal"
        fig.text(
            0.12 + 0.45 * side,
            0.955,
            f"{kind}: {info['segment']} (dropout {info['dropout']:.0%})",
            fontsize=12,
        )
    fig.suptitle(
        f"patient {patient}: log power spectrogram per electrode; cyan strip = dropout, filled in",
        y=0.995,
        fontsize=11,
    )
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.015, pad=0.01)
    bar.set_label("log power (log µV²/Hz)")
    return fig


def save_pictures(
    cache: FeatureCache, out: Path, axes_of: StackAxes, patients: int = 3
) -> list[Path]:
    """Write one PNG per patient into ``out``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    from matplotlib import pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for patient, inter, pre in choose_pairs(cache, patients):
        fig = stack_figure(cache, patient, inter, pre, axes_of)
        path = out / f"patient{patient}_interictal_vs_preictal.png"
        with replacing(path) as partial:
            fig.savefig(partial, dpi=80, format="png")
        plt.close(fig)
        written.append(path)
    return written


def stack_axes(cache: FeatureCache, params: FeaturesConfig) -> StackAxes:
    """The cache's stack axes, from its first readable segment's rate and length."""
    from deepsync.data.segment import read_segment

    for path in cache.segments.loc[cache.segments["status"] == "ok", "path"]:
        try:
            segment = read_segment(path)
        except (DeepSyncError, OSError):
            continue
        rate = segment.sampling_rate
        return StackAxes.of(params, rate, segment.data.shape[0] / rate)
    return StackAxes.of(params, 400.0, 600.0)  # the competition's own
