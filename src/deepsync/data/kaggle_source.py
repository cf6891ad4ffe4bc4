"""`make data SOURCE=kaggle`: the competition's files (or a Kaggle dataset's) via the kaggle client.

Under ``target``: ``downloads/`` holds what the client fetched, each beside a
``<name>.deepsync.json`` marker once unpacked and verified; ``files/`` holds the
competition layout (``train_1/1_1_0.mat``, ``test_1_new/new_1_1.mat``, csv files at the
top). Zips are unpacked safely, other files moved in as they are, and every file the
reference lists is checked by size and MD5. A rerun skips what its marker says is done
and lets the client resume a partial download.

The competition's own page lost its data in 2018 (see docs/melbourne.md): an empty list
is expected there, and the error says where the data lives now.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from deepsync.config import DataConfig
from deepsync.data import archive
from deepsync.durable import replacing, write_text
from deepsync.errors import DeepSyncError
from deepsync.kaggle_client import authenticated_api, kaggle_errors

DOWNLOADS = "downloads"
FILES = "files"
MARKER_SUFFIX = ".deepsync.json"
LIST_PAGE_SIZE = 200  # files per list call; the client's default is 20
PROBLEMS_SHOWN = 3  # mismatching files named in an error before "and N more"

DISK_ADVICE = "data already on disk is read with `make data SOURCE=dir DATA_DIR=/path`"
MOVED_ADVICE = (
    "the competition's data left Kaggle in 2018 and now lives on epilepsyecosystem.org "
    "(download it there), or use a Kaggle dataset copy with KAGGLE_DATASET=owner/slug; "
    + DISK_ADVICE
)


@dataclass(frozen=True)
class RemoteFile:
    """One file the competition (or dataset) lists: its path there and its size."""

    name: str  # posix path, e.g. "train_1.zip" or "train_1/1_1_0.mat" in a dataset
    size: int  # bytes, as listed (0 if not given)


def fetch(
    config: DataConfig,
    target: Path,
    *,
    progress: bool = True,
    reference: dict[str, tuple[int, str]] | None = None,
) -> Path:
    """Download, unpack and verify every listed file; return ``target/files``.

    ``reference`` maps relative paths to (bytes, md5); None means the packaged table of
    the original competition files.
    """
    reference = archive.reference_md5() if reference is None else reference
    target = Path(target).resolve()
    downloads, files = target / DOWNLOADS, target / FILES
    api = authenticated_api(DISK_ADVICE)
    remote = _list_files(api, config)
    if not remote:
        raise DeepSyncError(_empty_list_message(config))
    downloads.mkdir(parents=True, exist_ok=True)
    files.mkdir(parents=True, exist_ok=True)
    for item in remote:
        _fetch_file(api, config, item, downloads, files, reference, progress)
    return files


# -- the kaggle client ------------------------------------------------------------------


def _kaggle_errors(config: DataConfig, action: str):
    return kaggle_errors(
        action, functools.partial(_http_advice, config), "rerun (partial downloads resume)"
    )


def _list_files(api, config: DataConfig) -> list[RemoteFile]:
    """Every file the competition or dataset lists, all pages."""
    found, token = [], None
    with _kaggle_errors(config, f"listing the files of {_what(config)}"):
        while True:
            page, token = _list_page(api, config, token)
            found += page
            if not token or not page:
                return found


def _list_page(api, config: DataConfig, token: str | None) -> tuple[list[RemoteFile], str]:
    """One page of the listing and the token of the next ("" at the end)."""
    if config.kaggle_dataset:
        page = api.dataset_list_files(
            config.kaggle_dataset, page_token=token, page_size=LIST_PAGE_SIZE
        )
        if page.error_message:
            raise DeepSyncError(
                f"Kaggle could not list dataset {config.kaggle_dataset}: {page.error_message}; "
                "check KAGGLE_DATASET=owner/slug"
            )
        entries = page.dataset_files
    else:
        page = api.competition_list_files(
            config.competition, page_token=token, page_size=LIST_PAGE_SIZE
        )
        entries = page.files
    files = [RemoteFile(e.name or e.ref, int(e.total_bytes or 0)) for e in entries]
    return files, page.next_page_token or ""


def _download(api, config: DataConfig, item: RemoteFile, downloads: Path, progress: bool) -> Path:
    """Download one file with the client (its progress bar, its resume); return the file.

    The client names the file after its download URL: ``name``, or ``name.zip`` when
    Kaggle serves a large file compressed.
    """
    # quiet=True silences the client except for dataset URLs: those go too.
    output = contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO())
    try:
        with _kaggle_errors(config, f"downloading {item.name}"), output:
            if config.kaggle_dataset:
                api.dataset_download_file(
                    config.kaggle_dataset, item.name, path=str(downloads), quiet=not progress
                )
            else:
                api.competition_download_file(
                    config.competition, item.name, path=str(downloads), quiet=not progress
                )
    except ValueError as error:  # a short download, or a name outside downloads/
        raise DeepSyncError(
            f"downloading {item.name} failed ({error}): rerun to resume it"
        ) from error
    except OSError as error:  # the network's are taken above: this is the disk's
        raise DeepSyncError(
            f"could not save {item.name} in {downloads} ({error.strerror or error}): "
            "free some disk space, then rerun (the download resumes)"
        ) from error
    for candidate in (downloads / item.name, downloads / (item.name + ".zip")):
        if candidate.is_file():
            return candidate
    raise DeepSyncError(f"the kaggle client saved no file for {item.name} in {downloads}; rerun")


# -- unpack, verify, remember ----------------------------------------------------------


def _fetch_file(
    api,
    config: DataConfig,
    item: RemoteFile,
    downloads: Path,
    files: Path,
    reference: dict[str, tuple[int, str]],
    progress: bool,
) -> None:
    """Bring one listed file into ``files``, verified, unless its marker says it is there."""
    marker = downloads / (item.name + MARKER_SUFFIX)
    if _still_verified(marker, item, downloads, files, reference):
        if progress:
            print(f"{item.name}: already downloaded and verified")
        return
    marker.unlink(missing_ok=True)  # stale: this file is done again below
    download = _download(api, config, item, downloads, progress)
    download_bytes = download.stat().st_size
    checked = _unpack_verified(download, item, files, reference, progress)
    write_text(
        marker,
        json.dumps(
            {
                "file": item.name,
                "listed_bytes": item.size,
                "download": download.name,
                "download_bytes": download_bytes,
                "files": checked,
                "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            indent=1,
        ),
    )


def _unpack_verified(
    download: Path,
    item: RemoteFile,
    files: Path,
    reference: dict[str, tuple[int, str]],
    progress: bool,
) -> dict[str, list]:
    """Put a download's files under ``files``, checked; return what `_verify` checked.

    A zip is extracted into the folder of its listed name, then checked; any other file
    is checked where the client saved it, then moved in, so a bad one stays beside its
    download for the user to delete.
    """
    if download.suffix.lower() == ".zip":
        folder = files.joinpath(*PurePosixPath(item.name).parent.parts)
        written = archive.safe_extract(download, folder, progress=progress)
        return _verify(download, {p.relative_to(files).as_posix(): p for p in written}, reference)
    destination = archive.destination_inside(files, item.name)
    if destination is None:
        raise DeepSyncError(f"refusing listed file {item.name!r}: it would land outside {files}")
    checked = _verify(download, {destination.relative_to(files).as_posix(): download}, reference)
    _move_into(download, destination)
    return checked


def _move_into(source: Path, destination: Path) -> Path:
    """Move a downloaded file into place; it appears under its name only once complete."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with replacing(destination) as partial:
        shutil.move(source, partial)
    return destination


def _verify(
    download: Path, named: dict[str, Path], reference: dict[str, tuple[int, str]]
) -> dict[str, list]:
    """Check files (``{name under files/: path now}``) that the reference lists.

    Returns ``{name: [bytes, md5 or None]}`` (None: not in the reference). A mismatch is
    a `DeepSyncError` naming the files and the download to delete.
    """
    checked, problems = {}, []
    for name, path in named.items():
        checked[name] = [path.stat().st_size, None]
        key = _reference_key(name, reference)
        if key is None:
            continue
        reason = archive.check_file(path, *reference[key])
        if reason:
            problems.append(f"{name} ({reason})")
        else:
            checked[name][1] = reference[key][1]
    if problems:
        shown = ", ".join(problems[:PROBLEMS_SHOWN])
        extra = len(problems) - PROBLEMS_SHOWN
        more = f" and {extra} more" if extra > 0 else ""
        raise DeepSyncError(
            f"{len(problems)} file(s) from {download.name} differ from the originals: "
            f"{shown}{more}; delete {download} and rerun `make data SOURCE=kaggle`"
        )
    return checked


def _still_verified(
    marker: Path,
    item: RemoteFile,
    downloads: Path,
    files: Path,
    reference: dict[str, tuple[int, str]],
) -> bool:
    """True if the marker matches the listing, the files on disk and the reference."""
    try:
        done = json.loads(marker.read_text())
        if done["listed_bytes"] != item.size:
            return False
        download = downloads / done["download"]
        if download.exists() and download.stat().st_size != done["download_bytes"]:
            return False
        for name, (size, md5) in done["files"].items():
            if (files / name).stat().st_size != size:
                return False
            key = _reference_key(name, reference)
            if key is not None and reference[key][1] != md5:
                return False  # a reference entry this run has not checked
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def _reference_key(name: str, reference: dict[str, tuple[int, str]]) -> str | None:
    """The reference entry for ``name``: itself, or its tail below extra folders.

    A dataset copy may hold the layout one folder down (``melbourne/train_1/1_1_0.mat``).
    """
    parts = name.split("/")
    for start in range(len(parts)):
        key = "/".join(parts[start:])
        if key in reference:
            return key
    return None


# -- messages ---------------------------------------------------------------------------


def _what(config: DataConfig) -> str:
    if config.kaggle_dataset:
        return f"Kaggle dataset {config.kaggle_dataset}"
    return f"competition {config.competition}"


def _empty_list_message(config: DataConfig) -> str:
    if config.kaggle_dataset:
        return (
            f"Kaggle dataset {config.kaggle_dataset} lists no files: check "
            f"KAGGLE_DATASET=owner/slug (a dataset holding the competition files); {DISK_ADVICE}"
        )
    return f"Kaggle lists no files for competition {config.competition}: {MOVED_ADVICE}"


def _http_advice(config: DataConfig, status: int | None, where: str) -> str | None:
    """Advice for the statuses a download meets; None: the common advice."""
    if status == 403 and not config.kaggle_dataset:
        return (
            f"Kaggle refused {where}: accept the rules at "
            f"https://www.kaggle.com/competitions/{config.competition}/rules, then rerun"
        )
    if status == 403:
        return f"Kaggle refused {where}: the dataset must be public or shared with you"
    if status == 404 and config.kaggle_dataset:
        return f"Kaggle found nothing while {where}: check KAGGLE_DATASET=owner/slug"
    if status == 404:
        return f"Kaggle found nothing while {where}: {MOVED_ADVICE}"
    return None
