"""Work spread over processes, stoppable: Ctrl-C cancels what has not started.

Workers never see SIGINT (`quiet_children`), so an interrupt reaches only the main process.
At most two jobs per worker are queued at a time; on an interrupt or an error the queued
ones are cancelled, the running ones finish their (atomic) writes, the pool is shut down,
and the exception goes on.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")
QUEUED_PER_WORKER = 2
# Imported once by the forkserver, before any worker forks from it (preload loads kernels).
WORKER_MODULES = ("deepsync.data.synthetic", "deepsync.features.stage", "deepsync.features.preload")
# glibc mallopt parameters: keep freed blocks up to these sizes in the heap for reuse.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest: a 15 MB segment buffer stays in the heap
TRIM_THRESHOLD_BYTES = 128 << 20


@contextmanager
def quiet_children() -> Iterator[None]:
    """Processes started inside never get SIGINT; a Ctrl-C meant for us waits for the end.

    A terminal's Ctrl-C goes to every process of the group. A child still starting up (the
    forkserver importing numpy and numba, a spawned worker importing torch: seconds) would
    die of it with a traceback, and one half started when the parent gave up would be left
    behind. Here SIGINT is blocked in this thread, a mask that children inherit through fork
    and exec and keep, and in the main thread an interrupt is held until the block is done.
    """
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no masks, no forkserver
        yield
        return
    held: list[int] = []
    hold = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda signum, _: held.append(signum)) if hold else None
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending SIGINT is held now
        if hold:
            signal.signal(signal.SIGINT, previous)  # runs the held handler first
            if held:
                signal.raise_signal(signal.SIGINT)  # as if it came now: KeyboardInterrupt


def _start_worker(initializer: Callable[[], None] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _reuse_freed_memory()
    if initializer is not None:
        initializer()


def _reuse_freed_memory() -> None:
    """Let a worker reuse its big freed buffers instead of mapping fresh pages per job.

    Each job allocates and frees buffers of the same size (a segment's 15 MB signal).
    glibc serves a block that size with a fresh mmap each time (its dynamic threshold
    ends up just at the block size), and faulting 15 MB of fresh pages in costs about as
    much as a third of the decode. A fixed threshold keeps such blocks in the heap. Other
    C libraries: nothing to do.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (TypeError: Windows)
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)


def parallel_map(
    func: Callable[[Job], Result],
    jobs: Iterable[Job],
    workers: int,
    initializer: Callable[[], None] | None = None,
) -> Iterator[Result]:
    """Results of ``func`` over ``jobs`` as they complete (any order), in ``workers`` processes.

    ``workers <= 1`` runs in this process, which keeps tracebacks and debuggers simple.
    ``initializer`` runs once in each worker process. Use it under ``contextlib.closing``
    so that an interrupt in the consuming loop shuts the pool down there and then.
    """
    if workers <= 1:
        yield from map(func, jobs)
        return
    # forkserver: workers never inherit this process's threads (kernel and torch pools).
    # The server imports the worker modules once, so each worker forks ready to run
    # (importing them takes seconds: numpy, scipy, pandas, numba).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*WORKER_MODULES, func.__module__])
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(initializer,)
    )
    pending: set[Future] = set()
    try:
        for job in jobs:
            while len(pending) >= QUEUED_PER_WORKER * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
            with quiet_children():  # a submit may start a worker (the first, the forkserver)
                pending.add(pool.submit(func, job))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in done)
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
