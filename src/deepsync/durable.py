"""Files that are whole or absent, and one writer per folder.

Every file the kit writes goes through here:
- `replacing` (and `write_bytes`, `write_text`, `write_csv` on it): the content goes to
  ``<name>.partial`` beside the target, is synced, then renamed over the target and the
  folder synced. A reader sees the old file or the new one, never half of either; on any
  failure the partial file is removed and the error names the target.
- `write_all`: a write at an offset (``pwrite``) or at the end of a file, every byte of it
  or an error: a filling disk can write part of a buffer and return the count.
- `FolderLock`: an advisory lock on ``<folder>/.deepsync.lock`` (``flock``) holding the
  holder's PID and stage, so that a second writer is refused in one line naming the first.
  The kernel drops the lock of a process that dies, however it dies: the lock file a
  killed run leaves behind is free to take.

An OS error that Python raises without a file name (a write to an open file) gets the
path it was about, so that the CLI can say which file and what to do.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from deepsync.errors import DeepSyncError

try:  # ISA-L's CRC-32: the same values as zlib's, about 8x faster
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - isal is in requirements.txt
    from zlib import crc32

PARTIAL = ".partial"
LOCK_FILE = ".deepsync.lock"


def checksum(*buffers) -> str:
    """CRC-32 of the buffers' bytes, one after another, as 8 hex digits."""
    value = 0
    for buffer in buffers:
        view = memoryview(buffer)
        if view.nbytes:  # an empty array adds nothing (and cannot be cast)
            value = crc32(view.cast("B"), value)
    return f"{value:08x}"


@contextmanager
def naming(path: Path | str, instead_of: Path | None = None) -> Iterator[None]:
    """An `OSError` raised inside without a file name, or naming ``instead_of`` (the
    temporary file ``path`` is written as), names ``path``."""
    try:
        yield
    except OSError as error:
        names = {os.fsdecode(n) for n in (error.filename, error.filename2) if n is not None}
        stand_in = os.fspath(instead_of) if instead_of is not None else None
        if error.errno is None or (names and stand_in not in names):
            raise
        raise type(error)(error.errno, error.strerror, str(path)) from error


@contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; it replaces ``path`` on success.

    ``path.partial`` is synced, renamed over ``path`` and the folder synced; on any
    failure, an interrupt included, it is removed and ``path`` is as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise DeepSyncError(
            f"{path} is a folder where a file belongs: move it away, or give another file name"
        )
    partial = path.with_name(path.name + PARTIAL)
    try:
        with naming(path, instead_of=partial):
            yield partial
            _sync_file(partial)
            os.replace(partial, path)
            _sync_folder(path.parent)
    except BaseException:
        with suppress(OSError):
            partial.unlink()
        raise


def read_json(path: Path | str):
    """A JSON file of the kit's; a one-line error naming it if it is damaged (not JSON)."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes())
    except ValueError as error:  # not JSON, or not UTF-8 text
        raise _damaged(path, error) from None


def read_csv(path: Path | str, **options):
    """A CSV file of the kit's as a pandas frame; a one-line error naming it if damaged."""
    import pandas as pd

    try:
        return pd.read_csv(path, **options)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise _damaged(path, error) from None


def _damaged(path: Path | str, error: Exception) -> DeepSyncError:
    why = " ".join(str(error).split())[:120]
    return DeepSyncError(f"{path} is damaged ({why}): delete it, then rerun the stage writing it")


def write_bytes(path: Path | str, data: bytes) -> Path:
    """``data`` as the whole content of ``path``, atomically (see `replacing`)."""
    with replacing(path) as partial, open(partial, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text(path: Path | str, text: str) -> Path:
    """``text`` (UTF-8) as the whole content of ``path``, atomically."""
    return write_bytes(path, text.encode())


def copy_file(source: Path | str, path: Path | str) -> Path:
    """A copy of ``source`` as ``path``, atomically."""
    with replacing(path) as partial:
        shutil.copyfile(source, partial)
    return Path(path)


def link_folder(source: Path | str, path: Path | str) -> Path:
    """A copy of the folder ``source`` as ``path`` (absent), all or nothing.

    Files are hard links where the file system allows (the kit never writes a file in
    place, so the two stay apart), copies elsewhere; the tree is built as ``path.partial``
    (a stale one from an interrupted copy is removed first), its files and folders synced,
    then renamed.
    """
    source, path = Path(source), Path(path)
    partial = path.with_name(path.name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        _sync_file(Path(dst))

    try:
        with naming(path, instead_of=partial):
            shutil.copytree(source, partial, copy_function=link, ignore=_no_locks)
            for folder, _, _ in os.walk(partial, topdown=False):  # its entries made durable
                _sync_folder(Path(folder))
            os.rename(partial, path)
            _sync_folder(path.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return path


def _no_locks(_folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n == LOCK_FILE or n.endswith(PARTIAL)]


def write_csv(path: Path | str, frame, **options) -> Path:
    """A pandas frame as CSV (no index unless ``options`` say so), atomically."""
    options.setdefault("index", False)
    with replacing(path) as partial:
        frame.to_csv(partial, **options)
    return Path(path)


def write_all(fd: int, data, offset: int | None = None) -> None:
    """Every byte of ``data`` to ``fd`` (at ``offset``, or appended), or an `OSError`.

    A write to a disk that fills up may take part of the buffer and return its count
    (the next one fails with ENOSPC): the rest is written again until all is taken.
    """
    view = memoryview(data)
    if not view.nbytes:  # an empty array (a family with no window in a short segment)
        return
    view = view.cast("B")
    while view:
        written = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
        if written <= 0:  # never seen: no progress and no error
            raise OSError(errno.EIO, "the disk took no bytes")
        view = view[written:]
        if offset is not None:
            offset += written


def ends_line(fd: int) -> None:
    """Before appending a line: end a last line that a crash cut short (it is then skipped)."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        write_all(fd, b"\n")


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder: the rename stands anyway
        pass
    finally:
        os.close(fd)


class FolderLock:
    """One writer (``shared=False``) or several readers of ``folder`` at a time.

    The lock file goes when its last holder lets go (a holder that finds, once locked,
    that its file was removed meanwhile tries again with the new one). Re-entrant within
    a process: a stage that takes a folder's lock may call another that takes it again.
    A writer makes the folder; a reader of a folder that is not there, or that it cannot
    write, takes no lock: no writer can change it from here either (Kaggle's read-only
    input mount).
    """

    _held: dict[Path, list] = {}  # this process's locks: folder -> [fd, shared, depth]

    def __init__(self, folder: Path | str, stage: str, *, shared: bool = False):
        self.folder, self.stage, self.shared = Path(folder), stage, shared
        self.key = self.folder.resolve()  # one lock however the folder is spelt
        self.path = self.folder / LOCK_FILE

    def __enter__(self) -> FolderLock:
        held = self._held.get(self.key)
        if held is not None:
            if held[1] and not self.shared:  # flock cannot turn a reader into a writer safely
                raise DeepSyncError(f"internal: {self.stage} reads {self.folder}, then writes it")
            held[2] += 1
            return self
        fd = self._acquire()
        self._held[self.key] = [fd, self.shared, 1]
        return self

    def __exit__(self, *_) -> None:
        held = self._held[self.key]
        held[2] -= 1
        if held[2] == 0:
            del self._held[self.key]
            if held[0] is not None:
                self._release(held[0])

    def _acquire(self) -> int | None:
        if self.shared and not self.folder.is_dir():  # nothing there to read, or to guard
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                if self.shared and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    return None
                raise
            try:
                self._flock(fd, shared=self.shared)
                if _same_file(fd, self.path):  # else its last holder removed it meanwhile
                    self._describe(fd)
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def _release(self, fd: int) -> None:
        """Let go; the last holder (the one that can take it alone) removes the file."""
        try:
            if self._try_exclusive(fd) and _same_file(fd, self.path):
                with suppress(OSError):
                    self.path.unlink()
        finally:
            os.close(fd)  # closing drops the lock

    def _flock(self, fd: int, *, shared: bool) -> None:
        import fcntl

        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeepSyncError(
                f"{self.folder} is in use by {holder(self.folder)}: wait until it ends (or "
                f"stop it), then rerun {self.stage}; two runs at once would mix their files"
            ) from None
        except OSError as error:  # a file system without locks (ENOLCK): go on unlocked
            if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise

    @staticmethod
    def _try_exclusive(fd: int) -> bool:
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def _describe(self, fd: int) -> None:
        """Who holds the lock, for the message a refused run prints."""
        text = json.dumps(
            {"pid": os.getpid(), "stage": self.stage, "since": time.strftime("%H:%M:%S")}
        )
        with suppress(OSError):  # a full disk: the lock holds, only its note is lost
            os.ftruncate(fd, 0)
            write_all(fd, text.encode(), 0)


def _same_file(fd: int, path: Path) -> bool:
    try:
        there = os.stat(path)
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def holder(folder: Path | str) -> str:
    """'deepsync features (PID 123, since 13:05:02)' from a folder's lock file, if known."""
    try:
        note = json.loads((Path(folder) / LOCK_FILE).read_text())
        pid = int(note["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another run"
    try:
        os.kill(pid, 0)  # the note of a reader that has since ended names no holder
    except PermissionError:  # alive, another user's
        pass
    except OSError:
        return "another run"
    return f"{note.get('stage', 'deepsync')} (PID {pid}, since {note.get('since', '?')})"
