"""What the benchmarks share: timing, peak memory, the data they measure on, their exit.

Each benchmark prints figures (ratios measured in one run); none is a test. They sit
above the pipeline and call it as a user would (`deepsync.pipeline.run`, or the CLI in a
process of its own), so nothing in the library imports them.
"""

from __future__ import annotations

import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from deepsync import pipeline
from deepsync.config import Config
from deepsync.errors import DeepSyncError


def timed(fn: Callable, *args) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    """The median of each contender's repetitions."""
    return {name: statistics.median(values) for name, values in times.items()}


def own_peak_rss() -> int:
    """This process's resident peak so far (bytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def waited_peak_rss() -> int:
    """The largest resident peak of this process's children that were waited for (bytes)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def prepared(config: Config, *, workers: int = 0, progress: bool = True, say=print) -> None:
    """The configured data set and feature cache, made where missing (resumable: what
    exists is checked, not made again), their summaries to ``say``."""
    options = pipeline.Options(workers=workers, progress=progress)
    pipeline.run(config, ["data", "features"], options, say=say)


def exit_code(name: str, body: Callable[[], int], *, after: str = "rerun it") -> int:
    """Run a benchmark's body: a `DeepSyncError` is one line on stderr (exit 2), Ctrl-C
    exits 130 with ``after`` (what a rerun does)."""
    try:
        return body()
    except DeepSyncError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted; {after}", file=sys.stderr)
        return 130


class MemorySampler:
    """Every ``every`` seconds in a thread, over process ``pid`` and all its descendants
    (a pool's workers are the forkserver's children, which ``RUSAGE_CHILDREN`` misses):
    ``peak_anon``, the largest sum of their anonymous resident memory (``RssAnon``), and
    ``peak_rss``, the largest resident peak (``VmHWM``) of any one of them (bytes).
    Linux only (``/proc``); elsewhere both stay 0."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid, self.every = pid, every
        self.peak_anon = self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            status = [_status(p) for p in _descendants(self.pid)]
            self.peak_anon = max(self.peak_anon, sum(s.get("RssAnon", 0) for s in status))
            self.peak_rss = max([self.peak_rss, *(s.get("VmHWM", 0) for s in status)])
            if self._stop.wait(self.every):
                return


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from ``/proc/*/stat``)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            text = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        parents[int(entry.name)] = int(text.rsplit(")", 1)[1].split()[1])
    out, frontier = [pid], [pid]
    while frontier:
        frontier = [c for c, parent in parents.items() if parent in frontier]
        out += frontier
    return out


def _status(pid: int) -> dict[str, int]:
    """The memory lines of ``/proc/<pid>/status`` in bytes (empty when it is gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out
