"""The report's figures, each a matplotlib figure with labelled axes and units (Agg only)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from deepsync.features.cache import FeatureCache
from deepsync.features.pictures import StackAxes
from deepsync.train.metrics import auc

MODEL_COLOURS = {"baseline": "tab:blue", "cnn": "tab:orange", "blend": "tab:green"}
PALETTE = ["tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]


def model_colours(models) -> dict[str, str]:
    """One colour per model: the kit's own models keep theirs, the others (window models, in
    order) take the palette's colours, all different up to len(PALETTE) of them."""
    others = [m for m in models if m not in MODEL_COLOURS]
    spare = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(others)}
    return {m: MODEL_COLOURS.get(m) or spare[m] for m in models}


def plt():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot

    return pyplot


def data_summary(segments: pd.DataFrame):
    """Files per patient and kind (stacked bars), and the spread of dropout per patient.

    ``segments``: the feature cache's segments.csv (index columns plus dropout, status).
    """
    pyplot = plt()
    fig, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4))
    train = segments["split"] == "train"
    kinds = {
        "interictal (safe)": train & (segments["label"] == 0) & segments["safe"],
        "preictal": train & (segments["label"] == 1),
        "unsafe (left out)": train & ~segments["safe"],
        "test": ~train,
    }
    patients = sorted(segments["patient"].unique())
    bottom = np.zeros(len(patients))
    for name, chosen in kinds.items():
        counts = segments[chosen].groupby("patient").size().reindex(patients, fill_value=0)
        left.bar([str(p) for p in patients], counts, bottom=bottom, label=name)
        bottom += counts.to_numpy()
    left.set_xlabel("patient")
    left.set_ylabel("segments (files)")
    left.set_title("segments per patient and kind")
    left.set_ylim(0, bottom.max() * 1.35)  # room for the legend above the bars
    left.legend(fontsize=8, ncol=2, loc="upper center")
    ok = segments[segments["status"] == "ok"]
    bins = np.linspace(0, 1, 21)
    for patient in patients:
        share = ok.loc[ok["patient"] == patient, "dropout"]
        right.hist(share[share > 0], bins=bins, histtype="step", lw=2, label=f"patient {patient}")
    right.set_xlabel("dropout (share of samples where every electrode reads 0)")
    right.set_ylabel("segments")
    right.set_title(f"dropout: {int((ok['dropout'] > 0).sum())} of {len(ok)} segments have some")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def mean_stack(stacks: np.ndarray, rows: np.ndarray, chunk: int = 32) -> np.ndarray:
    """(electrodes, bands): the mean over ``rows`` and frames of ``stacks``, read ``chunk``
    rows at a time as they are cached (float16), summed in float64 (a patient's stacks at
    full size are gigabytes; 32 of the `gpu` profile's are 38 MB)."""
    total = np.zeros(stacks.shape[1:3], dtype=np.float64)
    for start in range(0, len(rows), chunk):
        part = np.asarray(stacks[rows[start : start + chunk]])
        total += part.sum(axis=(0, 3), dtype=np.float64)
    return total / (len(rows) * stacks.shape[3]) if len(rows) else total * np.nan


def band_difference(cache: FeatureCache, patient: int, axes_of: StackAxes):
    """Mean preictal minus mean interictal log power, per electrode and band (heat map)."""
    pyplot = plt()
    s = cache.segments
    usable = (
        (s["status"] == "ok")
        & (s["split"] == "train")
        & (s["patient"] == patient)
        & s["safe"].astype(bool)
        & ~s["all_zero"].astype(bool)
    )
    means = {}
    for label in (0, 1):
        rows = s.loc[usable & (s["label"] == label), "row"].to_numpy()
        means[label] = mean_stack(cache.stacks, np.sort(rows))
    difference = means[1] - means[0]  # (electrodes, bands)
    limit = float(np.abs(difference).max()) or 1.0
    fig, ax = pyplot.subplots(figsize=(10, 4))
    image = ax.imshow(
        difference, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest"
    )
    rows, labels = axes_of.band_ticks()
    ax.set_xticks(rows, labels)
    ax.set_yticks(range(difference.shape[0]), [str(e + 1) for e in range(difference.shape[0])])
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("frequency (Hz, log-spaced bands)")
    ax.set_ylabel("electrode")
    ax.set_title(f"patient {patient}: mean preictal minus mean interictal log power")
    fig.colorbar(image, ax=ax).set_label("difference (log power)")
    fig.tight_layout()
    return fig


def roc_curves(oofs: dict[str, pd.DataFrame]):
    """ROC curves of every model, per patient and pooled over patients, from OOF scores."""
    from sklearn.metrics import roc_curve

    pyplot = plt()
    patients = sorted({p for oof in oofs.values() for p in oof["patient"].unique()})
    panels = [*patients, "pooled"]
    colours = model_colours(oofs)
    fig, axes = pyplot.subplots(1, len(panels), figsize=(4 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for model, oof in oofs.items():
            part = oof if panel == "pooled" else oof[oof["patient"] == panel]
            score = part["score"]
            value = auc(part["label"], score)
            if math.isnan(value):
                continue
            fpr, tpr, _ = roc_curve(part["label"], score)
            ax.plot(fpr, tpr, color=colours[model], label=f"{model} (AUC {value:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        title = "pooled over patients" if panel == "pooled" else f"patient {panel}"
        ax.set_title(title)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_aspect("equal")
    fig.tight_layout()
    return fig


def training_curves(logs: dict[tuple[int, int], pd.DataFrame]):
    """Per patient: each fold's training loss and validation AUC, epoch by epoch."""
    from matplotlib.ticker import MaxNLocator

    pyplot = plt()
    patients = sorted({p for p, _ in logs})
    fig, axes = pyplot.subplots(2, len(patients), figsize=(4.5 * len(patients), 6), squeeze=False)
    for column, patient in enumerate(patients):
        loss_ax, auc_ax = axes[0, column], axes[1, column]
        for (p, fold), log in sorted(logs.items()):
            if p != patient:
                continue
            loss_ax.plot(log["epoch"], log["train_loss"], marker="o", label=f"fold {fold}")
            auc_ax.plot(log["epoch"], log["valid_auc"], marker="o", label=f"fold {fold}")
        loss_ax.set_title("all patients" if patient == "all" else f"patient {patient}")
        loss_ax.set_ylabel("training loss (weighted BCE)")
        auc_ax.set_ylabel("validation ROC AUC")
        auc_ax.set_ylim(0, 1)
        for ax in (loss_ax, auc_ax):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ledger_chart(board: pd.DataFrame):
    """Per submission: local OOF AUC against the public and private scores, local and Kaggle's."""
    pyplot = plt()
    shown = board.head(12)
    fig, ax = pyplot.subplots(figsize=(max(8, 1.4 * len(shown) + 4), 5))
    x = np.arange(len(shown))
    series = [
        ("oof_auc", "local OOF AUC", "o"),
        ("local_public", "local public", "s"),
        ("local_private", "local private", "D"),
        ("kaggle_public", "Kaggle public", "^"),
        ("kaggle_private", "Kaggle private", "v"),
    ]
    for offset, (column, label, marker) in enumerate(series):
        values = pd.to_numeric(shown[column], errors="coerce")
        if values.notna().any():
            ax.scatter(x + (offset - 2) * 0.08, values, marker=marker, s=50, label=label)
    ax.axhline(0.807, color="grey", ls=":", lw=1)
    ax.text(-0.45, 0.807, "2016 winners' private 0.807", fontsize=8, ha="left", va="bottom")
    ax.set_xlim(-0.5, len(shown) - 0.5)
    ax.set_xticks(x, shown["file"], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("ROC AUC")
    ax.set_ylim(0.4, 1.0)
    ax.set_title("submissions: local cross-validation against the leaderboard")
    ax.legend(fontsize=8, ncol=3, loc="lower left")
    fig.tight_layout()
    return fig
