"""Work spread over processes, stoppable: Ctrl-C cancels what has not started.

Workers ignore SIGINT, so an interrupt reaches only the main process. At most two jobs per
worker are queued at a time; on an interrupt or an error the queued ones are cancelled, the
running ones finish their (atomic) writes, the pool is shut down, and the exception goes on.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")
QUEUED_PER_WORKER = 2
WORKER_MODULES = ("deepsync.data.synthetic", "deepsync.features.stage")  # run in workers


def _start_worker(initializer: Callable[[], None] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer()


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
    # forkserver: workers never inherit OpenMP threads (numba's kernels) from this process.
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
            pending.add(pool.submit(func, job))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in done)
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
