"""`make data`: segments from the configured source, verified, indexed, summarised.

Outputs, all under ``data.root``: ``segments.csv`` (the segment index) and
``dataset.json`` (where the segments are, which source, where the test labels are if
known); one run at a time writes there (`FolderLock`). The synthetic set lives in
``synthetic/``, kaggle downloads in ``kaggle/``; a ``dir`` source is read in place and
never written to.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from deepsync.config import Config
from deepsync.data import synthetic
from deepsync.data.archive import reference_md5
from deepsync.data.index import Scan, save_index, scan_folder
from deepsync.data.segment import describe_other
from deepsync.durable import FolderLock, read_json, write_text

INDEX_FILE = "segments.csv"
DATASET_FILE = "dataset.json"


@dataclass
class DataSet:
    """The result of the data stage: the index and where everything is."""

    folder: Path  # the segments, in either layout
    source: str
    index_path: Path
    scan: Scan
    test_labels: Path | None  # organisers'-format test labels, where known (synthetic)
    reference: str  # what the files were checked against
    seconds: float


def prepare(config: Config, *, workers: int = 1, progress: bool = True) -> DataSet:
    """Run the data stage for ``config.data.source`` and write the index."""
    with FolderLock(config.data.root, "deepsync data"):
        return _prepare(config, workers, progress)


def _prepare(config: Config, workers: int, progress: bool) -> DataSet:
    started = time.perf_counter()
    root = Path(config.data.root)
    source = config.data.source
    if source == "synthetic":
        folder = root / "synthetic"
        synthetic.generate(config.synthetic, folder, workers=workers, progress=progress)
    elif source == "kaggle":
        from deepsync.data import kaggle_source  # the kaggle client loads only when used

        folder = kaggle_source.fetch(config.data, root / "kaggle", progress=progress)
    else:
        folder = Path(config.data.data_dir)
    scan = scan_folder(folder)
    marker = folder / synthetic.MARKER
    test_labels = None
    if marker.exists():
        made = read_json(marker)
        scenario = made.get("settings", {}).get("scenario", "demo")
        reference = f"synthetic set, scenario {scenario} (generated and written by this kit)"
        test_labels = Path(made["test_labels"])
    elif source == "kaggle":
        reference = "every listed file's size and MD5, as downloaded"
    else:
        reference = _check_sizes(scan)
    index_path = root / INDEX_FILE
    save_index(scan.segments, index_path)
    description = {
        "source": source,
        "folder": str(folder.resolve()),
        "index": str(index_path.resolve()),
        "test_labels": str(test_labels) if test_labels else None,
        "labels": scan.labels_source,
        "segments": len(scan.segments),
        "config": config.to_dict(),
    }
    write_text(root / DATASET_FILE, json.dumps(description, indent=1))
    return DataSet(
        folder, source, index_path, scan, test_labels, reference, time.perf_counter() - started
    )


def _check_sizes(scan: Scan) -> str:
    """Compare Kaggle-layout files with the original sizes; note each mismatch as a problem.

    The kaggle source checks MD5s as it downloads; in place, a size check is cheap and
    catches truncated copies.
    """
    sizes = {name.rsplit("/", 1)[-1]: size for name, (size, _) in reference_md5().items()}
    kaggle = scan.segments[scan.segments["layout"] == "kaggle"]
    listed = kaggle[kaggle["segment"].isin(sizes.keys())]
    for row in listed.itertuples():
        if row.bytes != sizes[row.segment] and row.path not in scan.unreadable:
            why = describe_other(Path(row.path)) or "copy or download it again"
            scan.problems.append(
                f"{row.path}: {row.bytes} bytes, the original has {sizes[row.segment]}; {why}"
            )
    if listed.empty:
        return "no original sizes known for these files"
    return f"{len(listed)} files checked against the original sizes"


def summary(data: DataSet) -> str:
    """Files per patient, class and split, safe and unsafe, and the problems found."""
    t = data.scan.segments
    lines = [
        f"data: {data.source} source, {len(t)} segments in {data.folder} "
        f"({t['bytes'].sum() / 1e6:,.0f} MB, {data.seconds:.0f} s)"
    ]
    train = t[t["split"] == "train"]
    counts = (
        pd.DataFrame(
            {
                "interictal": train[train["label"] == 0].groupby("patient").size(),
                "preictal": train[train["label"] == 1].groupby("patient").size(),
                "unsafe": train[~train["safe"]].groupby("patient").size(),
                "safe_hours": train[train["safe"]].groupby("patient")["hour"].nunique(),
                "test": t[t["split"] == "test"].groupby("patient").size(),
            }
        )
        .fillna(0)
        .astype(int)
    )
    counts.index.name = "patient"
    lines += ["  " + line for line in counts.to_string().splitlines()]
    lines.append(f"  labels: {data.scan.labels_source}; checked: {data.reference}")
    for reason, n in sorted(data.scan.skipped.items()):
        lines.append(f"  skipped {n} files: {reason}")
    if data.test_labels:
        lines.append(f"  test labels (for local scoring): {data.test_labels}")
    lines.append(f"  index: {data.index_path}")
    problems = data.scan.problems
    lines.append(f"  problems: {len(problems) or 'none'}")
    lines += [f"    {p}" for p in problems[:20]]
    if len(problems) > 20:
        lines.append(f"    ... and {len(problems) - 20} more")
    return "\n".join(lines)
