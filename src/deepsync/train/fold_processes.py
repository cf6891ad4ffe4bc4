"""Several CNN folds at once, one process each: every GPU of a machine kept busy.

A Kaggle T4 x2 kernel has two GPUs; folds are independent (each has its own seed,
folder and checkpoint), so the simplest use of both is one fold per GPU. Each worker
process claims the next GPU when it starts (``cuda:<i mod GPUs>``) and trains the folds
it is handed, one after the other, reading the stacks from the memory-mapped cache
itself. Processes are spawned, never forked: CUDA does not survive a fork. A fold
trained here gives what the training process would have given (same seed, same data),
and an interrupted one resumes from its ``last.pt`` on the next run.

Workers never see a Ctrl-C themselves. When the training process stops (Ctrl-C, an error
in a fold), it sets the stop event and sends ``STOP_SIGNAL`` to the workers: a running
fold stops where it is, as it would in-process, and a fold queued but not begun is not
begun.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from deepsync.config import CnnConfig
from deepsync.parallel import quiet_children

STOP_SIGNAL = getattr(signal, "SIGUSR1", None)  # None on Windows: folds run to their end
_worker_index = 0  # set in each worker process by `_start`
_stop = None  # the pool's stop event, in each worker
_fitting = False  # a worker is inside `_fit`


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
    pids = context.Array("i", processes)  # each worker's, once it has started
    stop = context.Event()
    threads = max(1, (os.cpu_count() or 1) // processes)
    pool = ProcessPoolExecutor(
        processes,
        mp_context=context,
        initializer=_start,
        initargs=(counter, pids, stop, threads),
    )
    pending = {}
    try:
        with quiet_children():  # the submits spawn the workers
            pending = {pool.submit(_fit, job): job for job in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()
    finally:
        if pending:
            _stop_workers(stop, pids)
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(stop, pids) -> None:
    """Folds not begun will not begin; the running ones stop at once (their last.pt stays)."""
    stop.set()
    if STOP_SIGNAL is None:
        return
    ours = {child.pid for child in multiprocessing.active_children()}  # no pid reused
    for pid in set(pids[:]) & ours:
        with contextlib.suppress(ProcessLookupError):  # it ended just now
            os.kill(pid, STOP_SIGNAL)


def _start(counter, pids, stop, threads: int) -> None:
    """In a new worker: take the next index, its GPU, and a fair share of the CPU threads."""
    global _worker_index, _stop
    if STOP_SIGNAL is not None:
        signal.signal(STOP_SIGNAL, _on_stop)
    import torch

    with counter.get_lock():
        _worker_index = counter.value
        counter.value += 1
    pids[_worker_index] = os.getpid()
    _stop = stop
    torch.set_num_threads(threads)
    if torch.cuda.is_available():
        torch.cuda.set_device(_worker_index % torch.cuda.device_count())


@functools.lru_cache(maxsize=2)
def _stacks(folder: Path):
    from deepsync.features.cache import FeatureCache

    return FeatureCache.open(folder).stacks


def _on_stop(signum, frame) -> None:
    """``STOP_SIGNAL`` in a worker: the fold it trains ends here, as a Ctrl-C would end it."""
    if _fitting:
        raise KeyboardInterrupt


def _fit(job: FoldJob) -> dict:
    global _fitting
    from deepsync.train.cnn import fit_fold

    meta = job.meta | {"worker": _worker_index}
    _fitting = True  # before the check: a stop from now on is seen by one or the other
    try:
        if _stop.is_set():  # set by `_start`, which runs before any job
            raise KeyboardInterrupt  # queued before the stop: never begun
        return fit_fold(
            _stacks(job.cache_folder),
            job.data,
            job.cfg,
            job.seed,
            job.folder,
            progress=False,
            meta=meta,
        )
    finally:
        _fitting = False
