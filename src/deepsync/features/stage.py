"""`make features`: every indexed segment through the kernel into the cache, resumably.

Workers (processes) read, decode and transform segments; the main process writes rows
and the journal. A rerun skips segments already cached from the same file (path, size,
modification time) with the same parameters; a file that cannot be read is listed with
its reason while the rest goes on, and the run then ends with a non-zero exit.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import time
import warnings
from contextlib import closing, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from deepsync.config import Config, FeaturesConfig
from deepsync.data.index import load_index
from deepsync.data.segment import read_segment
from deepsync.data.stage import INDEX_FILE
from deepsync.durable import FolderLock, write_csv, write_text
from deepsync.errors import DeepSyncError
from deepsync.features.cache import (
    FeatureCache,
    RowWriter,
    Shapes,
    cache_folder,
    params_hash,
    read_journal,
)
from deepsync.features.families import FAMILIES
from deepsync.features.spectrogram import plan_for, segment_features
from deepsync.parallel import parallel_map

PREFETCH = 4  # files asked of the page cache ahead of the workers
WARM_UP_RATE = 400  # Hz, of the tiny segment `load_kernels` runs


@dataclass
class FeatureReport:
    """What a `make features` run did."""

    folder: Path
    total: int
    computed: int = 0
    reused: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warned: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def build_features(config: Config, *, workers: int = 1, progress: bool = True) -> FeatureReport:
    """Cache the features of every segment in the data stage's index.

    The cache folder is this run's alone while it runs (`FolderLock`); a row counts as
    cached only when its journal line is there and the row on disk matches its checksum.
    """
    started = time.perf_counter()
    folder = cache_folder(config.features)
    with (
        FolderLock(config.data.root, "deepsync features", shared=True),
        FolderLock(folder, "deepsync features"),
    ):
        report = _build(config, folder, workers, progress)
    report.seconds = time.perf_counter() - started
    return report


def _build(config: Config, folder: Path, workers: int, progress: bool) -> FeatureReport:
    index = load_index(Path(config.data.root) / INDEX_FILE)
    params = config.features
    described = {**config.to_dict()["features"], "hash": params_hash(params)}
    described["families"] = ",".join(params.family_names)  # "all" resolved
    write_text(folder / "params.json", json.dumps(described, indent=1))
    identity = [_identity(path) for path in index["path"]]
    shapes = _shapes(params, index, identity)
    _reset_if_other_layout(folder, index, shapes)
    writer = RowWriter(folder, shapes)
    try:
        done = _verified(writer, read_journal(folder), identity, progress)
        todo = [row for row in range(len(index)) if row not in done]
        report = FeatureReport(folder, len(index), reused=len(done))
        if todo:  # the finished cache's manifest goes until this run has finished it again
            (folder / "segments.csv").unlink(missing_ok=True)
            short = _short_of_space(folder)
            if short:
                report.warned.append(short)
                tqdm.write(f"features: warning: {short}", file=sys.stderr)
        jobs = _jobs(index, identity, todo, params, shapes)
        bar = tqdm(
            total=len(index),
            initial=len(done),
            unit="file",
            desc="features",
            disable=not progress,
            smoothing=0.1,
        )
        with bar, closing(parallel_map(compute_segment, jobs, workers, in_worker)) as results:
            for row, outcome in results:
                if isinstance(outcome, str):
                    report.failed.append((index["path"].iat[row], outcome))
                else:
                    arrays, record = outcome
                    report.warned += record.pop("warnings")
                    writer.write(row, arrays, record)
                    done[row] = record
                    report.computed += 1
                bar.update()
    except BaseException:
        with suppress(OSError):  # rows written in full before the failure stay cached
            writer.close()
        raise
    writer.close()
    _write_manifest(folder, index, done)
    return report


def _verified(writer: RowWriter, journal: dict, identity: list, progress: bool) -> dict:
    """Journalled rows of the same file whose bytes on disk match their checksum."""
    same_file = {r: rec for r, rec in journal.items() if r < len(identity)}
    rows = [r for r, rec in same_file.items() if rec.get("identity") == identity[r]]
    checking = tqdm(
        rows, desc="checking cache", unit="row", disable=not progress or len(rows) < 1000
    )
    return {row: journal[row] for row in checking if writer.holds(row, journal[row])}


def _short_of_space(folder: Path) -> str | None:
    """A warning when the rows still to write need more than the disk has free.

    The arrays are sparse files: their unwritten rows are holes that take space only
    when written. A full disk mid-run loses nothing (a rerun goes on), but it is better
    known at the start than an hour in.
    """
    try:
        stats = [p.stat() for p in folder.glob("*.npy")]
        holes = sum(max(0, s.st_size - s.st_blocks * 512) for s in stats)
        free = shutil.disk_usage(folder).free
    except (OSError, AttributeError):  # st_blocks: not on every system
        return None
    if holes <= free:
        return None
    return (
        f"the feature cache needs about {holes / 1e6:,.0f} MB more in {folder} and its disk "
        f"has {free / 1e6:,.0f} MB free: free some space, or set features.cache_root to a "
        "bigger disk (a run stopped by a full disk resumes where it stopped)"
    )


def _identity(path: str) -> list:
    """What must not change for a cached row to stay valid: the file's size and mtime."""
    try:
        stat = os.stat(path)
    except OSError:
        return [path, -1, -1]
    return [path, stat.st_size, stat.st_mtime_ns]


def _shapes(params: FeaturesConfig, index: pd.DataFrame, identity: list) -> Shapes:
    """Array shapes, from the first segment that reads (segments share one length)."""
    for path, (_, size, _) in zip(index["path"], identity, strict=True):
        if size <= 0:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                segment = read_segment(path)
        except DeepSyncError:
            continue
        return shapes_of(params, segment, len(index))
    raise DeepSyncError("no segment in the index could be read; check `make data`'s problems")


def shapes_of(params: FeaturesConfig, segment, count: int) -> Shapes:
    """The shapes of a cache of ``count`` segments like ``segment``."""
    samples, rate = segment.data.shape[0], segment.sampling_rate
    plan = plan_for(params, samples, rate)
    channels, windows = segment.data.shape[1], plan.table_windows.shape[0]
    return Shapes(
        count,
        channels,
        params.bands,
        params.frames,
        windows,
        tuple(
            (name, family.windows(samples, rate, windows), family.width(channels))
            for name, family in ((n, FAMILIES[n]) for n in plan.families)
            if family.compute is not None
        ),
    )


def _reset_if_other_layout(folder: Path, index: pd.DataFrame, shapes: Shapes) -> None:
    """Rows are positions in the index: another index (or shape) starts the cache afresh."""
    layout = {
        "segments": index["segment"].tolist(),
        "shapes": asdict(shapes),
        "arrays": list(shapes.arrays),
    }
    layout = json.loads(json.dumps(layout))  # tuples as JSON gives them back: lists
    path = folder / "layout.json"
    with suppress(OSError, ValueError):  # none, or damaged: start afresh
        if json.loads(path.read_bytes()) == layout:
            return
    stale = {p.name for p in folder.glob("family_*.npy")} | {f"{a}.npy" for a in shapes.arrays}
    for name in ("segments.csv", "journal.jsonl", *sorted(stale)):
        (folder / name).unlink(missing_ok=True)
    write_text(path, json.dumps(layout))


def _jobs(index, identity, todo, params, shapes):
    """Work for the pool, asking the OS to read files a few jobs ahead (I/O overlap)."""
    paths = index["path"].tolist()
    for i, row in enumerate(todo):
        ahead = todo[i + PREFETCH] if i + PREFETCH < len(todo) else None
        if ahead is not None:
            _prefetch(paths[ahead])
        yield row, paths[row], identity[row], params, shapes


def _prefetch(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    finally:
        os.close(fd)


_kernel_threads = True  # False in worker processes: see `in_worker`


def in_worker() -> None:
    """Processes share the cores: kernel threads in each would oversubscribe them.

    Workers run the kernel on their own thread; `load_kernels` loaded it in the
    forkserver before they forked from it: no kernel to load per worker.
    """
    global _kernel_threads
    _kernel_threads = False


def load_kernels() -> None:
    """Load (or compile) the worker's numba functions by running them on a tiny segment.

    Run in the forkserver (`deepsync.features.preload`), so that every worker forks with
    them ready, on the server's own thread (threads do not survive a fork). The signature
    is the one `compute_segment` calls with: a read-only float32 (channels, samples) signal.
    """
    plan = plan_for(FeaturesConfig(), 4 * WARM_UP_RATE, WARM_UP_RATE)
    x = np.zeros((16, 4 * WARM_UP_RATE), np.float32)
    x.flags.writeable = False
    segment_features(x, plan, threads=False)


@functools.lru_cache(maxsize=8)
def _plan(params: FeaturesConfig, samples: int, rate: float):
    return plan_for(params, samples, rate)


def compute_segment(job) -> tuple[int, tuple[dict, dict] | str]:
    """In a worker: one segment's rows and record, or the reason it failed."""
    row, path, identity, params, shapes = job
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            segment = read_segment(path)
        features = segment_features(
            segment.channels_major,
            _plan(params, segment.data.shape[0], segment.sampling_rate),
            threads=_kernel_threads,
        )
    except DeepSyncError as error:
        return row, str(error)
    windows = shapes.windows
    table = np.zeros((windows, *features.table.shape[1:]), np.float32)
    kept = np.zeros(windows, bool)
    n = min(windows, len(features.window_valid))
    table[:n], kept[:n] = features.table[:n], features.window_valid[:n]
    families = {}
    for name, count, width in shapes.families:  # padded alike: zeros, the winners' NaN
        values = features.families[name]
        own = FAMILIES[name].seconds is not None
        families[f"family_{name}"] = padded = np.full(
            (count, width), np.nan if own else 0.0, np.float32
        )
        padded[: len(values)] = values[:count]
    record = {
        "identity": identity,
        "dropout": round(features.dropout, 6),
        "all_zero": features.all_zero,
        "frames_valid": int(features.frame_valid.sum()),
        "windows_valid": int(kept.sum()),
        "warnings": [str(w.message) for w in caught],
    }
    arrays = {
        "stacks": features.image,
        "table": table,
        "windows": kept,
        "frames": features.frame_valid,
        **families,
    }
    return row, (arrays, record)


def _write_manifest(folder: Path, index: pd.DataFrame, done: dict[int, dict]) -> None:
    """segments.csv: the index with each row's status and dropout record."""
    stats = pd.DataFrame.from_dict(
        {
            row: {k: rec[k] for k in ("dropout", "all_zero", "frames_valid", "windows_valid")}
            for row, rec in done.items()
        },
        orient="index",
    )
    manifest = index.drop(columns=["layout"]).assign(row=np.arange(len(index)))
    manifest = manifest.join(stats, on="row")
    manifest["status"] = np.where(manifest["row"].isin(list(done)), "ok", "failed")
    write_csv(folder / "segments.csv", manifest)


def _described(name: str, values) -> str:
    """``rlp 96 (6 windows of 20 s)``: a family's width, and its own windows if it has them."""
    width = int(np.prod(values.shape[2:]))
    seconds = FAMILIES[name].seconds
    own = f" ({values.shape[1]} windows of {seconds:g} s)" if seconds else ""
    return f"{name} {width}{own}"


def summary(report: FeatureReport) -> str:
    """Counts, dropout, speed, where the cache is, and every failure with its reason."""
    lines = [
        f"features: {report.total} segments in {report.folder} "
        f"({report.computed} computed, {report.reused} already cached, "
        f"{len(report.failed)} failed) in {report.seconds:.0f} s"
    ]
    if report.computed:
        lines.append(f"  speed: {report.computed / max(report.seconds, 1e-9):.1f} files/s")
    if (report.folder / "segments.csv").exists():
        cache = FeatureCache.open(report.folder)
        ok = cache.segments[cache.segments["status"] == "ok"]
        size = sum(p.stat().st_size for p in report.folder.glob("*.npy"))
        lines.append(
            f"  dropout: {int((ok['dropout'] > 0).sum())} segments with some, "
            f"{int(ok['all_zero'].sum())} all zero (skipped for training)"
        )
        lines.append(
            f"  cache: {size / 1e6:,.0f} MB; stacks {cache.stacks.shape} float16, "
            f"table {cache.table.shape}"
        )
        widths = ", ".join(_described(n, a) for n, a in cache.families.items())
        lines.append(f"  feature families (per window): {widths}")
    for message in report.warned[:10]:
        lines.append(f"  warning: {message}")
    for path, reason in report.failed[:20]:
        lines.append(f"  failed: {reason}" if path in reason else f"  failed: {path}: {reason}")
    if len(report.failed) > 20:
        lines.append(f"  ... and {len(report.failed) - 20} more failures")
    return "\n".join(lines)
