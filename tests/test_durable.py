"""Whole files or none, every byte or an error, one writer per folder (real processes)."""

import errno
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from deepsync import durable
from deepsync.durable import LOCK_FILE, FolderLock, replacing, write_all, write_csv, write_text
from deepsync.errors import DeepSyncError, os_error_line

HOLD = """
import sys, time
from deepsync.durable import FolderLock
with FolderLock(sys.argv[1], "deepsync features", shared=sys.argv[2] == "shared"):
    print("held", flush=True)
    time.sleep(120)
"""


def hold(folder, mode="exclusive") -> subprocess.Popen:
    """Another process holding ``folder``'s lock until it is killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), mode], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline() == "held\n"
    return process


def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial(tmp_path):
    path = write_text(tmp_path / "table.csv", "old\n")
    with pytest.raises(OSError) as raised, replacing(path) as partial:
        partial.write_text("half of the new")
        raise OSError(errno.ENOSPC, "No space left on device")  # as a write to an open file
    assert raised.value.filename == str(path)  # named: the CLI can say which file
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_an_interrupt_mid_write_leaves_no_partial(tmp_path):
    with pytest.raises(KeyboardInterrupt), replacing(tmp_path / "a.csv") as partial:
        partial.write_text("x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_folder_where_the_file_belongs_is_one_line(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(DeepSyncError, match="out is a folder where a file belongs: move it away"):
        write_csv(tmp_path / "out", pd.DataFrame({"a": [1]}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_short_writes_are_written_again_until_every_byte_is_there(tmp_path, monkeypatch):
    real = os.pwrite
    calls = []

    def three_bytes_at_a_time(fd, data, offset):
        calls.append(offset)
        return real(fd, bytes(data[:3]), offset)

    monkeypatch.setattr(durable.os, "pwrite", three_bytes_at_a_time)
    fd = os.open(tmp_path / "rows", os.O_RDWR | os.O_CREAT)
    try:
        write_all(fd, b"0123456789", 5)
    finally:
        os.close(fd)
    assert (tmp_path / "rows").read_bytes() == b"\0" * 5 + b"0123456789"
    assert calls == [5, 8, 11, 14]


def test_a_disk_that_fills_mid_write_raises(tmp_path, monkeypatch):
    def full_after_four(fd, data, offset):
        if offset >= 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, bytes(data[: 4 - offset]))

    monkeypatch.setattr(durable.os, "pwrite", full_after_four)
    fd = os.open(tmp_path / "rows", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="No space"):
            write_all(fd, b"0123456789", 0)
    finally:
        os.close(fd)


def test_a_second_writer_is_refused_in_one_line_naming_the_first(tmp_path):
    holder = hold(tmp_path)
    try:
        with pytest.raises(DeepSyncError) as raised, FolderLock(tmp_path, "deepsync train"):
            pass
        message = str(raised.value)
        assert f"in use by deepsync features (PID {holder.pid}, since " in message
        assert "rerun deepsync train" in message and "\n" not in message
        with pytest.raises(DeepSyncError), FolderLock(tmp_path, "deepsync train", shared=True):
            pass  # nor may anyone read what is being written
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_run_is_free_and_every_lock_file_goes(tmp_path):
    holder = hold(tmp_path)
    holder.send_signal(signal.SIGKILL)  # no cleanup of its own
    holder.wait()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == holder.pid  # left behind
    with FolderLock(tmp_path, "deepsync features"):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()


def test_readers_share_and_keep_the_writer_out(tmp_path):
    reader = hold(tmp_path, "shared")
    try:
        with FolderLock(tmp_path, "deepsync submit", shared=True):
            pass  # two readers at once
        assert (tmp_path / LOCK_FILE).exists()  # the other reader still holds it
        with pytest.raises(DeepSyncError, match="in use"), FolderLock(tmp_path, "deepsync train"):
            pass
    finally:
        reader.kill()
        reader.wait()
    with FolderLock(tmp_path, "deepsync train"):
        pass


def test_a_stage_may_take_a_lock_it_holds_again(tmp_path):
    with FolderLock(tmp_path, "deepsync submit"), FolderLock(tmp_path, "deepsync submit"):
        assert (tmp_path / LOCK_FILE).exists()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    writing = FolderLock(tmp_path / "real", "deepsync train")
    with writing, FolderLock(tmp_path / "link", "deepsync train", shared=True):
        assert FolderLock._held[writing.key][2] == 2  # one lock however the folder is spelt
    reading = FolderLock(tmp_path, "deepsync train", shared=True)
    with pytest.raises(DeepSyncError, match="internal"), reading, FolderLock(tmp_path, "x"):
        pass
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_file_removed_while_being_taken_is_taken_anew(tmp_path):
    """A run that opened the lock file just as its last holder removed it locks the new one."""
    real_open, opened = os.open, []

    def open_then_lose_it(path, flags, mode=0o777):
        fd = real_open(path, flags, mode)
        if str(path).endswith(LOCK_FILE) and not opened:
            opened.append(fd)
            os.unlink(path)  # as the last holder's release does, between our open and lock
        return fd

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(durable.os, "open", open_then_lose_it)
        with FolderLock(tmp_path, "deepsync features") as lock:
            held = FolderLock._held[lock.key][0]
            assert durable._same_file(held, tmp_path / LOCK_FILE)  # the file others will see
            assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert len(opened) == 1 and not (tmp_path / LOCK_FILE).exists()


def test_a_reader_of_a_folder_not_there_makes_nothing(tmp_path):
    with FolderLock(tmp_path / "not-there", "deepsync train", shared=True):
        assert not (tmp_path / "not-there").exists()  # a reader makes nothing


@pytest.mark.parametrize(
    "code, words",
    [
        (
            errno.ENOSPC,
            "no space left on the disk holding {p}: free some space, or set "
            "features.cache_root to a folder on another disk, then rerun",
        ),
        (
            errno.EACCES,
            "permission denied: {p}: check its owner and mode (ls -ld), or set "
            "features.cache_root to a folder you can write",
        ),
        (errno.EROFS, "{p} is on a read-only file system: set features.cache_root"),
        (errno.EISDIR, "{p} is a folder where a file belongs: move it away"),
        (errno.EEXIST, "{p} is a file where a folder belongs: move it away, or set features."),
    ],
)
def test_os_errors_name_the_path_the_setting_and_what_to_do(tmp_path, code, words):
    path = tmp_path / "cache" / "features-x" / "stacks.npy"
    places = {"features.cache_root": tmp_path / "cache", "data.root": tmp_path / "data"}
    line = os_error_line(OSError(code, os.strerror(code), str(path)), places)
    assert words.format(p=path) in line and "\n" not in line


def test_a_damaged_json_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b'{"settings": {"train": ')  # cut short by another tool
    with pytest.raises(DeepSyncError) as raised:
        durable.read_json(path)
    assert str(raised.value).startswith(f"{path} is damaged (")
    assert str(raised.value).endswith("delete it, then rerun the stage writing it")


def test_errors_about_the_temporary_file_name_the_target(tmp_path, monkeypatch):
    source = write_text(tmp_path / "a.csv", "x\n")

    def full(src, dst):  # what shutil's sendfile copy raises on a full disk
        raise OSError(errno.ENOSPC, "No space left on device", str(src), None, str(dst))

    monkeypatch.setattr(durable.shutil, "copyfile", full)
    with pytest.raises(OSError) as raised:
        durable.copy_file(source, tmp_path / "b.csv")
    assert raised.value.filename == str(tmp_path / "b.csv")
    assert os_error_line(raised.value).startswith(
        f"no space left on the disk holding {tmp_path / 'b.csv'}: free some space, then rerun"
    )
    copying = OSError(errno.ENOSPC, "No space left on device", str(source), None, "out/b.csv")
    assert "holding out/b.csv:" in os_error_line(copying)  # the side that writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_a_damaged_csv_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "folds.csv"
    path.write_bytes(b"")  # another tool truncated it
    with pytest.raises(DeepSyncError, match=f"^{path} is damaged .*: delete it, then rerun"):
        durable.read_csv(path)
    path.write_bytes(b"segment,fold\na.mat,1\nb.mat,2,x,y\n")  # two files run together
    with pytest.raises(DeepSyncError, match="is damaged"):
        durable.read_csv(path)


def test_an_empty_array_writes_nothing_and_an_array_its_bytes(tmp_path):
    fd = os.open(tmp_path / "rows", os.O_RDWR | os.O_CREAT)
    try:
        write_all(fd, np.zeros((0, 16, 12), np.float32), 0)  # a family with no window
        assert os.fstat(fd).st_size == 0
        rows = np.arange(6, dtype=np.float32).reshape(2, 3)
        write_all(fd, rows, 4)
    finally:
        os.close(fd)
    assert (tmp_path / "rows").read_bytes() == b"\0" * 4 + rows.tobytes()


def test_the_checksum_of_rows_skips_empty_arrays():
    rows = np.arange(6, dtype=np.float32).reshape(2, 3)
    empty = np.zeros((0, 16, 12), np.float32)
    assert (
        durable.checksum(rows, empty) == durable.checksum(rows) == durable.checksum(rows.tobytes())
    )
    assert durable.checksum(rows) != durable.checksum(rows[::-1].copy())
