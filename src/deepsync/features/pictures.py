"""What the CNN will see: a few cached stacks as PNG pictures.

One picture per patient: an interictal segment beside a preictal one, each as its 16
electrodes' log spectrograms (frequency up, time right, one colour scale per picture),
with filled-in (dropout) frames shaded so that they cannot be mistaken for signal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepsync.errors import DeepSyncError
from deepsync.features.cache import FeatureCache


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


def save_pictures(cache: FeatureCache, out: Path, patients: int = 3) -> list[Path]:
    """Write one PNG per patient into ``out``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    from matplotlib import pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for patient, inter, pre in choose_pairs(cache, patients):
        stacks = [np.asarray(cache.stacks[r], dtype=np.float32) for r in (inter, pre)]
        low, high = np.percentile(np.concatenate([x.ravel() for x in stacks]), [1, 99])
        fig, axes = plt.subplots(4, 9, figsize=(18, 8), width_ratios=[1] * 4 + [0.15] + [1] * 4)
        for ax in axes[:, 4]:
            ax.axis("off")
        for side, (row, stack) in enumerate(zip((inter, pre), stacks, strict=True)):
            clean = np.asarray(cache.frames[row])
            for electrode in range(stack.shape[0]):
                ax = axes[electrode // 4, side * 5 + electrode % 4]
                ax.imshow(
                    stack[electrode],
                    origin="lower",
                    aspect="auto",
                    cmap="magma",
                    vmin=low,
                    vmax=high,
                    interpolation="nearest",
                )
                for t in np.flatnonzero(~clean):  # a strip along the top marks fill-in
                    ax.axvspan(t - 0.5, t + 0.5, ymin=0.9, color="cyan", lw=0)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"e{electrode + 1}", fontsize=8)
            info = cache.segments.set_index("row").loc[row]
            kind = "preictal" if side else "interictal"
            fig.text(
                0.3 + 0.44 * side - 0.1,
                0.96,
                f"{kind}: {info['segment']} (dropout {info['dropout']:.0%})",
                fontsize=12,
            )
        fig.suptitle(
            f"patient {patient}: log power, frequency up (log bands), time right; "
            "cyan strip = dropout, filled in",
            y=0.995,
            fontsize=10,
        )
        path = out / f"patient{patient}_interictal_vs_preictal.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written
