"""Safe unpacking and MD5 verification of downloaded archives."""

import hashlib
import os
import zipfile

import numpy as np
import pytest

from deepsync.data import archive
from deepsync.data.archive import md5_file, reference_md5, safe_extract, verify_files
from deepsync.data.segment import read_segment, write_segment
from deepsync.errors import DeepSyncError


def make_zip(path, entries, compression=zipfile.ZIP_DEFLATED):
    """A zip holding ``entries`` ({name: bytes}), names written exactly as given."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, content in entries.items():
            zf.writestr(zipfile.ZipInfo(name), content)
    return path


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_extracts_real_segments_into_the_competition_layout(tmp_path):
    x = np.arange(400 * 16, dtype=np.float32).reshape(400, 16)
    write_segment(tmp_path / "1_1_0.mat", x, sequence=1)
    zip_path = make_zip(
        tmp_path / "train_1.zip",
        {"train_1/": b"", "train_1/1_1_0.mat": (tmp_path / "1_1_0.mat").read_bytes()},
    )
    dest = tmp_path / "files"
    written = safe_extract(zip_path, dest, progress=False)
    assert [p.relative_to(dest.resolve()).as_posix() for p in written] == ["train_1/1_1_0.mat"]
    assert files_under(dest) == ["train_1/1_1_0.mat"]  # no .partial left behind
    assert np.array_equal(read_segment(dest / "train_1" / "1_1_0.mat").data, x)


@pytest.mark.parametrize("evil", ["../escaped.txt", "train_1/../../escaped.txt", "..\\escaped.txt"])
def test_refuses_an_entry_that_climbs_out(tmp_path, evil):
    zip_path = make_zip(tmp_path / "evil.zip", {"train_1/ok.txt": b"fine", evil: b"gotcha"})
    dest = tmp_path / "a" / "files"
    with pytest.raises(DeepSyncError) as error:
        safe_extract(zip_path, dest, progress=False)
    assert "evil.zip" in str(error.value) and repr(evil) in str(error.value)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not dest.exists() or files_under(dest) == []  # checked before anything is written


def test_refuses_an_absolute_entry(tmp_path):
    outside = tmp_path / "outside" / "abs.txt"
    zip_path = make_zip(tmp_path / "abs.zip", {str(outside): b"gotcha"})
    with pytest.raises(DeepSyncError, match="abs.zip.*refusing entry"):
        safe_extract(zip_path, tmp_path / "files", progress=False)
    assert not outside.exists()


def test_refuses_a_symlink_entry(tmp_path):
    info = zipfile.ZipInfo("train_1/link")
    info.external_attr = (0o120777 << 16) | 0  # S_IFLNK: the way zip stores a symlink
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DeepSyncError, match="symlink"):
        safe_extract(tmp_path / "link.zip", tmp_path / "files", progress=False)
    assert not (tmp_path / "files" / "train_1" / "link").exists()


def test_refuses_a_path_through_a_symlinked_folder(tmp_path):
    dest, elsewhere = tmp_path / "files", tmp_path / "elsewhere"
    dest.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, dest / "train_1")
    zip_path = make_zip(tmp_path / "train_1.zip", {"train_1/1_1_0.mat": b"data"})
    with pytest.raises(DeepSyncError, match="outside"):
        safe_extract(zip_path, dest, progress=False)
    assert list(elsewhere.iterdir()) == []


def test_a_member_is_written_under_a_temporary_name(tmp_path, monkeypatch):
    """A crash mid-member (kill -9, power loss) can leave only a .partial file behind."""
    content = np.random.default_rng(1).bytes(archive.CHUNK_BYTES * 2 + 5)  # several chunks
    zip_path = make_zip(tmp_path / "big.zip", {"train_1/1_1_0.mat": content})
    dest = tmp_path / "files"
    seen = []

    class Watcher:  # stands in for the progress bar, which is told after every chunk
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            seen.append(files_under(dest))

    monkeypatch.setattr(archive, "tqdm", Watcher)
    safe_extract(zip_path, dest, progress=True)
    assert len(seen) == 3
    assert all(names == ["train_1/1_1_0.mat.partial"] for names in seen)
    assert files_under(dest) == ["train_1/1_1_0.mat"]
    assert (dest / "train_1" / "1_1_0.mat").read_bytes() == content


def test_a_corrupt_member_never_appears_under_its_name(tmp_path):
    content = bytes(range(256)) * 64
    zip_path = make_zip(tmp_path / "bad.zip", {"x/a.bin": content}, zipfile.ZIP_STORED)
    raw = bytearray(zip_path.read_bytes())
    raw[raw.index(content[:256]) + 1000] ^= 0xFF  # one flipped byte: the CRC check fails
    zip_path.write_bytes(bytes(raw))
    with pytest.raises(DeepSyncError, match="'x/a.bin' is corrupt"):
        safe_extract(zip_path, tmp_path / "files", progress=False)
    assert files_under(tmp_path / "files") == []  # neither a.bin nor a.bin.partial


def test_not_a_zip_says_delete_it(tmp_path):
    (tmp_path / "train_1.zip").write_bytes(b"<html>not found</html>")
    with pytest.raises(DeepSyncError, match="train_1.zip is not a readable zip.*delete it"):
        safe_extract(tmp_path / "train_1.zip", tmp_path / "files", progress=False)


def test_md5_matches_hashlib_across_chunks(tmp_path):
    content = np.random.default_rng(0).bytes(archive.CHUNK_BYTES * 2 + 123)
    (tmp_path / "f").write_bytes(content)
    assert md5_file(tmp_path / "f") == hashlib.md5(content).hexdigest()


def reference_of(folder):
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, md5_file(p))
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture
def good_folder(tmp_path):
    folder = tmp_path / "files"
    for name in ("train_1/1_1_0.mat", "train_1/1_2_0.mat", "sample_submission.csv"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(name.encode() * 100)
    return folder


def test_verify_passes_identical_files(good_folder):
    report = verify_files(good_folder, reference_of(good_folder))
    assert report.ok and report.checked == 3
    assert report.mismatches == report.missing == report.unexpected == []


def test_verify_catches_one_flipped_byte_of_the_same_size(good_folder):
    reference = reference_of(good_folder)
    path = good_folder / "train_1" / "1_2_0.mat"
    raw = bytearray(path.read_bytes())
    raw[17] ^= 0x01
    path.write_bytes(bytes(raw))
    report = verify_files(good_folder, reference)
    assert not report.ok
    assert [name for name, _ in report.mismatches] == ["train_1/1_2_0.mat"]
    assert "MD5" in report.mismatches[0][1]


def test_verify_checks_size_first_and_skips_the_md5(good_folder, monkeypatch):
    reference = reference_of(good_folder)
    path = good_folder / "train_1" / "1_1_0.mat"
    path.write_bytes(path.read_bytes()[:-1])
    hashed = []
    monkeypatch.setattr(archive, "md5_file", lambda p: hashed.append(p.name) or "x" * 32)
    report = verify_files(good_folder, reference)
    reason = dict(report.mismatches)["train_1/1_1_0.mat"]
    assert "bytes" in reason and "MD5" not in reason
    assert "1_1_0.mat" not in hashed  # the wrong size alone decided it


def test_verify_lists_missing_and_unexpected_files(good_folder):
    reference = reference_of(good_folder)
    (good_folder / "sample_submission.csv").unlink()
    (good_folder / "notes.txt").write_text("mine")
    report = verify_files(good_folder, reference)
    assert report.missing == ["sample_submission.csv"]
    assert report.unexpected == ["notes.txt"]
    assert report.checked == 2 and not report.ok


def test_packaged_reference_lists_the_original_files():
    reference = reference_md5()
    assert len(reference) == 12169
    assert reference["sample_submission.csv"] == (76328, "0d83f3f3dbb965def8d96c9b9addfb54")
    assert "train_1/1_45_1.mat" in reference
    assert all(len(md5) == 32 and size > 0 for size, md5 in reference.values())
