"""Several CNN folds at once, one process each: every GPU of a machine kept busy.

A Kaggle T4 x2 kernel has two GPUs; folds are independent (each has its own seed,
folder and checkpoint), so the simplest use of both is one fold per GPU. Each worker
process claims the next GPU when it starts (``cuda:<i mod GPUs>``) and trains the folds
it is handed, one after the other, reading the stacks from the memory-mapped cache
itself. Processes are spawned, never forked: CUDA does not survive a fork. A fold
trained here gives what the training process would have given (same seed, same data),
and an interrupted one resumes from its ``last.pt`` on the next run.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from deepsync.config import CnnConfig

_worker_index = 0  # set in each worker process by `_start`


@dataclass(frozen=True)
class FoldJob:
    """Everything one fold needs, small enough to send to a process."""

    cache_folder: Path
    data: object  # cnn.FoldData
    cfg: CnnConfig
    seed: int
    folder: Path
    meta: dict


def processes_for(cfg: CnnConfig) -> int:
    """``cnn.fold_processes``, or one per GPU when CUDA shows several (else 1: in-process)."""
    if cfg.fold_processes:
        return cfg.fold_processes
    if cfg.device == "cpu":
        return 1
    import torch

    return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1


def train_folds(jobs: list[FoldJob], processes: int) -> Iterator[tuple[FoldJob, dict]]:
    """(job, result) of every fold as it finishes, ``processes`` folds at a time."""
    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    threads = max(1, (os.cpu_count() or 1) // processes)
    pool = ProcessPoolExecutor(
        processes, mp_context=context, initializer=_start, initargs=(counter, threads)
    )
    pending = {}
    try:
        pending = {pool.submit(_fit, job): job for job in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _start(counter, threads: int) -> None:
    """In a new worker: take the next index, its GPU, and a fair share of the CPU threads."""
    global _worker_index
    import torch

    with counter.get_lock():
        _worker_index = counter.value
        counter.value += 1
    torch.set_num_threads(threads)
    if torch.cuda.is_available():
        torch.cuda.set_device(_worker_index % torch.cuda.device_count())


@functools.lru_cache(maxsize=2)
def _stacks(folder: Path):
    from deepsync.features.cache import FeatureCache

    return FeatureCache.open(folder).stacks


def _fit(job: FoldJob) -> dict:
    from deepsync.train.cnn import fit_fold

    meta = job.meta | {"worker": _worker_index}
    return fit_fold(
        _stacks(job.cache_folder),
        job.data,
        job.cfg,
        job.seed,
        job.folder,
        progress=False,
        meta=meta,
    )
