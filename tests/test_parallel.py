import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepsync.parallel import parallel_map, quiet_children
from tests.conftest import start_as_in_a_terminal


def square(x):
    return x * x


def fail_on_three(x):
    if x == 3:
        raise ValueError("three")
    return x


@pytest.mark.parametrize("workers", [1, 2])
def test_every_result_comes_back(workers):
    assert sorted(parallel_map(square, range(20), workers)) == [x * x for x in range(20)]


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_in_a_job_reaches_the_caller(workers):
    with pytest.raises(ValueError, match="three"):
        list(parallel_map(fail_on_three, range(10), workers))


def test_a_ctrl_c_inside_quiet_children_comes_when_the_block_ends():
    done = []
    with pytest.raises(KeyboardInterrupt), quiet_children():
        signal.raise_signal(signal.SIGINT)
        time.sleep(0.05)  # time enough for a signal to arrive in another thread
        done.append("the block ran to its end")
    assert done == ["the block ran to its end"]


def test_a_child_started_inside_quiet_children_never_gets_sigint():
    with quiet_children():
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read(); print('still here')"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    time.sleep(0.5)  # past its start-up, where Python installs its own SIGINT handler
    os.kill(child.pid, signal.SIGINT)
    out, _ = child.communicate("", timeout=30)
    assert child.returncode == 0 and out.strip() == "still here"


SLOW_MAP = """
import sys, time
from deepsync.parallel import parallel_map
try:
    for _ in parallel_map(time.sleep, [0.2] * 100, 2):
        pass
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
"""


def group_commands(group: int) -> list[str]:
    """The command lines of the processes in a process group (Linux: from /proc)."""
    commands = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        if int(fields[2]) == group:
            commands.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return commands


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_a_ctrl_c_while_the_forkserver_starts_ends_everything_quietly():
    """The forkserver imports numpy, pandas and numba for seconds before it ignores SIGINT."""
    process = start_as_in_a_terminal([sys.executable, "-c", SLOW_MAP], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any("forkserver" in c for c in group_commands(process.pid)):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130 and stderr.strip() == "interrupted", stderr
        deadline = time.monotonic() + 30
        while group_commands(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_commands(process.pid)  # no worker or server left behind
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
