"""Downloaded archives: unpacked safely, checked file by file against the original MD5s.

A zip from the internet is untrusted input: an entry may try to climb out of the
destination (``../``, an absolute path, a symlink). `safe_extract` refuses such an
archive before writing anything, and writes every member under a temporary name, so
an interrupted run never leaves a half-written file under its real name.
`verify_files` compares a folder with the packaged table of the original files' sizes
and MD5s (``reference/original_files_md5.tsv``), sizes first because they are free.
"""

from __future__ import annotations

import hashlib
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from tqdm import tqdm

from deepsync.durable import replacing
from deepsync.errors import DeepSyncError, os_error_line

REFERENCE_TABLE = "original_files_md5.tsv"  # file<TAB>bytes<TAB>md5, relative posix paths
CHUNK_BYTES = 1 << 20  # read and hash 1 MiB at a time: flat memory for 12 GB archives


@dataclass
class VerifyReport:
    """What `verify_files` found: relative posix paths, sorted."""

    checked: int = 0  # files present and listed in the reference
    mismatches: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    missing: list[str] = field(default_factory=list)  # listed but not under root
    unexpected: list[str] = field(default_factory=list)  # under root but not listed

    @property
    def ok(self) -> bool:
        """Every listed file is present and identical to the original."""
        return not self.mismatches and not self.missing


def reference_md5() -> dict[str, tuple[int, str]]:
    """The original competition files: ``{"train_1/1_1_0.mat": (bytes, md5), ...}``.

    Empty where the table is not shipped (inside a Kaggle kernel, which never downloads).
    """
    table = resources.files("deepsync.data").joinpath("reference", REFERENCE_TABLE)
    if not table.is_file():
        return {}
    reference = {}
    for line in table.read_text().splitlines()[1:]:  # first line is the header
        if line.strip():
            name, size, md5 = line.split("\t")
            reference[name] = (int(size), md5)
    return reference


def md5_file(path: Path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path: Path, size: int, md5: str) -> str | None:
    """Why ``path`` differs from the original (size, then MD5), or None if identical."""
    actual = path.stat().st_size
    if actual != size:
        return f"{actual} bytes, the original has {size}"
    digest = md5_file(path)
    if digest != md5:
        return f"MD5 {digest}, the original has {md5}"
    return None


def verify_files(
    root: Path, reference: dict[str, tuple[int, str]], *, progress: bool = False
) -> VerifyReport:
    """Compare every file under ``root`` with ``reference`` (keys relative to ``root``)."""
    root = Path(root)
    present = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
    report = VerifyReport(
        missing=sorted(set(reference) - set(present)),
        unexpected=sorted(set(present) - set(reference)),
    )
    listed = [name for name in present if name in reference]
    total = sum(present[name].stat().st_size for name in listed)
    with tqdm(total=total, unit="B", unit_scale=True, desc="verify", disable=not progress) as bar:
        for name in listed:
            reason = check_file(present[name], *reference[name])
            if reason:
                report.mismatches.append((name, reason))
            report.checked += 1
            bar.update(present[name].stat().st_size)
    return report


def destination_inside(dest: Path, name: str) -> Path | None:
    """Where entry ``name`` lands under ``dest``, or None if it would land anywhere else.

    Refuses absolute paths (``/x``, ``C:x``), any ``..`` part, and paths that resolve
    outside ``dest`` through a symlink already there. Backslashes count as separators.
    """
    if not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in re.split(r"[\\/]", name) if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    base = Path(dest).resolve()
    target = base.joinpath(*parts)
    if not target.resolve().is_relative_to(base):
        return None
    return target


def safe_extract(archive: Path, dest: Path, *, progress: bool) -> list[Path]:
    """Unpack zip ``archive`` into ``dest``; return the files written.

    Every entry is checked before anything is written: an absolute path, a ``..``, a
    symlink or a landing place outside ``dest`` is a `DeepSyncError` naming the
    archive and the entry. A corrupt member is a `DeepSyncError` too.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _checked_members(archive, zf, dest)
            total = sum(info.file_size for info, _ in members if not info.is_dir())
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=archive.name, disable=not progress
            ) as bar:
                written = []
                for info, target in members:
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                    else:
                        written.append(_extract_member(archive, zf, info, target, bar))
                return written
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise DeepSyncError(
            f"{archive} is not a readable zip archive ({error}): delete it and rerun"
        ) from error


def _checked_members(
    archive: Path, zf: zipfile.ZipFile, dest: Path
) -> list[tuple[zipfile.ZipInfo, Path]]:
    """Every entry with its landing place; refuse the archive if any entry is unsafe."""
    members = []
    for info in zf.infolist():
        if stat.S_ISLNK(info.external_attr >> 16):  # unix mode lives in the high 16 bits
            raise DeepSyncError(
                f"{archive}: refusing entry {info.filename!r}, a symlink; "
                "the archive is not an original competition file: delete it"
            )
        target = destination_inside(dest, info.filename)
        if target is None:
            raise DeepSyncError(
                f"{archive}: refusing entry {info.filename!r}, which would land outside "
                f"{dest}; the archive is not an original competition file: delete it"
            )
        members.append((info, target))
    return members


def _extract_member(
    archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, bar: tqdm
) -> Path:
    """Write one member under a temporary name, then rename: never a half file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:  # synced before the rename: on disk before a marker says the download is verified
        with replacing(target) as partial, zf.open(info) as source, open(partial, "wb") as out:
            while chunk := source.read(CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:  # CRC or inflate failure
        raise DeepSyncError(
            f"{archive}: entry {info.filename!r} is corrupt ({error}): delete the archive and rerun"
        ) from error
    except OSError as error:  # most likely a full disk: 63 GB unpack to 63 GB more
        named = OSError(error.errno, error.strerror, str(target))  # not its .partial
        raise DeepSyncError(f"{archive}: {os_error_line(named)}") from error
    return target
