"""The one exception type a user sees, and the one-line form of the operating system's."""

from __future__ import annotations

import errno
import os
from pathlib import Path

WRITING = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # errors of the side that writes


class DeepSyncError(Exception):
    """A user-facing problem (bad data, missing credentials, bad config).

    The CLI prints ``str(error)`` as a single line and exits non-zero; the message
    must say what went wrong and what to do about it.
    """


def os_error_line(error: OSError, places: dict[str, Path] | None = None) -> str:
    """An `OSError` as one line: which path, what happened, what to do.

    ``places`` maps settings to the folders they name (``features.cache_root`` ->
    ``cache``): a path inside one of them gets the advice to move that setting.
    """
    path = error.filename
    if error.filename2 is not None and error.errno in WRITING:  # a copy's or a move's target
        path = error.filename2
    what = error.strerror or str(error)
    if path is None:
        code = errno.errorcode.get(error.errno or 0, "no errno")
        return f"{what} ({code}); check the disk and the files in use, then rerun"
    path = os.fsdecode(path)
    setting = _setting_of(Path(path), places or {})
    code = error.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        move = f", or set {setting} to a folder on another disk" if setting else ""
        return (
            f"no space left on the disk holding {path}: free some space{move}, then rerun "
            "(what was finished is kept)"
        )
    if code in (errno.EACCES, errno.EPERM):
        move = f", or set {setting} to a folder you can write" if setting else ""
        return f"permission denied: {path}: check its owner and mode (ls -ld){move}"
    if code == errno.EROFS:
        move = f": set {setting} to a writable folder" if setting else ": write elsewhere"
        return f"{path} is on a read-only file system{move}"
    if code == errno.EISDIR:
        return f"{path} is a folder where a file belongs: move it away, or give another name"
    if code == errno.EEXIST:
        move = f", or set {setting} to another folder" if setting else ""
        return f"{path} is a file where a folder belongs: move it away{move}"
    if code == errno.ENOTDIR:
        return f"{path}: a part of this path is a file, not a folder"
    if code == errno.ENOENT:
        folder = Path(path).parent
        if not folder.is_dir():
            return f"{path}: its folder {folder} does not exist: check the path, or create it"
        return f"{path} does not exist: check the path (and rerun the stage that writes it)"
    if code == errno.EIO:
        return f"input/output error on {path}: the disk or network share failed; check it"
    return f"{path}: {what}"


def _setting_of(path: Path, places: dict[str, Path]) -> str:
    """The setting whose folder holds ``path`` (the deepest one), or ''."""
    best, depth = "", -1
    target = path.absolute()
    for setting, folder in places.items():
        folder = Path(folder).absolute()
        if (target == folder or folder in target.parents) and len(folder.parts) > depth:
            best, depth = setting, len(folder.parts)
    return best
