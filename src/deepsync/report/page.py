"""`make report`: one self-contained HTML page (images inside it, opens offline) and its PNGs.

``reports/<run>/index.html`` for one run, or ``reports/index.html`` for every run under
``runs/``, beside the PNG files of its figures. Sections: the data (segments per patient
and kind, dropout), what the CNN sees (example stacks, preictal beside interictal, and
the mean preictal-minus-interictal difference per band and electrode), per run the ROC
curves of every model per patient and pooled, the fold AUC table and the CNN's training
curves, and the submissions ledger (local OOF AUC against public and private scores).
"""

from __future__ import annotations

import base64
import html
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from deepsync.config import Config
from deepsync.durable import read_csv, read_json, write_bytes, write_text
from deepsync.errors import DeepSyncError
from deepsync.features.cache import FeatureCache, cache_folder
from deepsync.features.pictures import choose_pairs, stack_axes, stack_figure
from deepsync.report import figures
from deepsync.submit import leaderboard

DPI = 90
STYLE = """
body { font-family: sans-serif; max-width: 1400px; margin: 2em auto; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #aaa; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
p.note { color: #555; font-size: 0.9em; }
"""


@dataclass
class Page:
    """The page being built: HTML parts in order, and the PNG files written beside it."""

    folder: Path
    parts: list[str] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)

    def heading(self, text: str, anchor: str) -> None:
        self.parts.append(f'<h2 id="{anchor}">{html.escape(text)}</h2>')

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def figure(self, fig, name: str, caption: str) -> None:
        """The figure as a PNG file beside the page and inside it."""
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
        figures.plt().close(fig)
        data = buffer.getvalue()
        path = write_bytes(self.folder / f"{name}.png", data)
        self.images.append(path)
        encoded = base64.b64encode(data).decode()
        self.parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def table(self, frame: pd.DataFrame) -> None:
        self.parts.append(frame.to_html(index=False, na_rep="-", float_format="{:.3f}".format))


def build_report(config: Config, out: Path = Path("reports"), *, every_run: bool = False) -> Path:
    """Write the report for ``config``'s run (or every run) under ``out``; the page's path."""
    runs = _runs(config, every_run)
    folder = Path(out) if every_run else Path(out) / config.train.run
    folder.mkdir(parents=True, exist_ok=True)
    page = Page(folder)
    cache = FeatureCache.open(cache_folder(config.features))
    _data_section(page, cache)
    _stacks_section(page, cache, config)
    for run in runs:
        try:
            _run_section(page, run)
        except (DeepSyncError, OSError) as error:  # --all: a damaged run hides no other
            if not every_run:
                raise
            page.note(f"this run cannot be read: {error}")
    _ledger_section(page, Path(config.submit.folder))
    title = "DeepSync report: " + (", ".join(r.name for r in runs) or "no runs yet")
    return write_page(page, title, "made by `make report`")


def write_page(page: Page, title: str, made_by: str) -> Path:
    """``page.folder/index.html``: the page's parts under ``title``, written at once."""
    body = "\n".join(page.parts)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    path = page.folder / "index.html"
    write_text(
        path,
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><p class="note">{made_by} {stamp}; '
        f"every picture is also a PNG file beside this page.</p>\n{body}\n</body></html>\n",
    )
    return path


def _runs(config: Config, every_run: bool) -> list[Path]:
    root = Path(config.train.runs_root)
    if every_run:
        return sorted(p for p in root.glob("*") if (p / "config.json").exists())
    run = root / config.train.run
    if not (run / "config.json").exists():
        raise DeepSyncError(f"no trained run in {run}: run `make train` first (or --all)")
    return [run]


def _data_section(page: Page, cache: FeatureCache) -> None:
    page.heading("The data", "data")
    segments = cache.segments.assign(safe=cache.segments["safe"].astype(bool))
    page.figure(figures.data_summary(segments), "data_summary", "segments and dropout")
    classes = segments["label"].map({0: "interictal", 1: "preictal"})
    kind = segments["split"].where(segments["split"] == "test", classes)
    kind = kind.where(segments["safe"] | (segments["split"] == "test"), "unsafe")
    counts = pd.crosstab(segments["patient"], kind).rename_axis(columns=None).reset_index()
    counts["dropout (mean share)"] = segments.groupby("patient")["dropout"].mean().to_numpy()
    page.table(counts)


def _stacks_section(page: Page, cache: FeatureCache, config: Config) -> None:
    page.heading("What the CNN sees", "stacks")
    page.note(
        "Each segment becomes a 16-channel image: per electrode, log power in log-spaced "
        "frequency bands (rows) over pooled time frames (columns). Frames touching dropout "
        "are filled in (interpolated or the mean) and marked with a cyan strip."
    )
    axes_of = stack_axes(cache, config.features)
    for patient, inter, pre in choose_pairs(cache, patients=9):
        page.figure(
            stack_figure(cache, patient, inter, pre, axes_of),
            f"patient{patient}_stacks",
            f"patient {patient}: an interictal segment beside a preictal one",
        )
        page.figure(
            figures.band_difference(cache, patient, axes_of),
            f"patient{patient}_preictal_difference",
            f"patient {patient}: where preictal segments differ, on average",
        )


def _run_section(page: Page, run: Path) -> None:
    page.heading(f"Run {run.name}", f"run-{run.name}")
    from deepsync.runs import trained_models

    models = trained_models(run)
    oofs = {name: read_csv(folder / "oof.csv") for name, folder in models.items()}
    if not oofs:
        page.note("no model has finished in this run yet")
        return
    page.figure(
        figures.roc_curves(oofs),
        f"{run.name}_roc",
        "out-of-fold ROC curves per patient and pooled over patients (as the leaderboard pools)",
    )
    if "baseline" in models:
        page.note(
            "baseline: the 2016 winners' best single model (Alex and Gilberto's relative log "
            "power in bagged XGBoost), the bar every other model must clear; vs baseline: "
            "a model's pooled OOF AUC less the baseline's"
        )
    page.table(_fold_table(models))
    logs = {}
    for log in sorted(run.glob("cnn/*/fold*/log.csv")):
        who = log.parent.parent.name.removeprefix("patient")  # or "all" (cnn.scope=all)
        patient = int(who) if who.isdigit() else who
        logs[(patient, int(log.parent.name.removeprefix("fold")))] = read_csv(log)
    if logs:
        page.figure(
            figures.training_curves(logs),
            f"{run.name}_training",
            "CNN training: loss and validation AUC per epoch, one line per fold",
        )


def _fold_table(models: dict[str, Path]) -> pd.DataFrame:
    """One row per model and patient: each fold's AUC, the patient's, pooled and calibrated,
    and the pooled AUC less the baseline's."""
    rows = []
    every = {model: read_json(folder / "metrics.json") for model, folder in models.items()}
    bar = every.get("baseline", {}).get("pooled_auc")
    for model, metrics in every.items():
        for patient, values in sorted(metrics["patients"].items(), key=lambda kv: int(kv[0])):
            row = {"model": model, "patient": patient}
            row |= {f"fold {k}": v for k, v in enumerate(values["folds"])}
            row |= {"patient AUC": values["auc"], "segments": values["segments"]}
            rows.append(row)
        rows.append(
            {
                "model": model,
                "patient": "pooled",
                "patient AUC": metrics["pooled_auc"],
                "calibrated": metrics["pooled_auc_calibrated"],
                **({"vs baseline": metrics["pooled_auc"] - bar} if bar is not None else {}),
            }
        )
    return pd.DataFrame(rows)


def _ledger_section(page: Page, submissions: Path) -> None:
    page.heading("Submissions", "ledger")
    board = leaderboard.table(submissions)
    if board.empty:
        page.note("no submissions yet: `make submit` writes one and adds it to the ledger")
        return
    page.figure(
        figures.ledger_chart(board),
        "ledger",
        "every submission: local OOF AUC, local and Kaggle public and private scores",
    )
    page.table(board.drop(columns=["config_hash", "kaggle_ref"]))
