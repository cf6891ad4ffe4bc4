"""The kaggle source through the real kaggle client, against a stand-in Kaggle server."""

import hashlib
import json
import sys
import zipfile

import numpy as np
import pytest

from deepsync.config import COMPETITION, DataConfig
from deepsync.data import kaggle_source
from deepsync.data.archive import md5_file
from deepsync.data.segment import write_segment
from deepsync.errors import DeepSyncError
from tests.conftest import KEY, USER
from tests.standins.kaggle_server import RULES_MESSAGE, etag_of

COMPETITION_FILES = {
    "train_1.zip": ["train_1/1_1_0.mat", "train_1/1_2_0.mat", "train_1/1_1_1.mat"],
    "test_1_new.zip": ["test_1_new/new_1_1.mat", "test_1_new/new_1_2.mat"],
}
LABELS = "train_and_test_data_labels_safe.csv"


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    """The served files ({name: bytes}) and a reference built from what they hold."""
    folder = tmp_path_factory.mktemp("originals")
    rng = np.random.default_rng(3)
    served, reference = {}, {}
    for zip_name, members in COMPETITION_FILES.items():
        with zipfile.ZipFile(folder / zip_name, "w", zipfile.ZIP_DEFLATED) as zf:
            for member in members:
                path = folder / member
                path.parent.mkdir(parents=True, exist_ok=True)
                sequence = None if "test" in member else 1
                data = rng.normal(0, 30, (400, 16)).astype(np.float32)
                write_segment(path, data, sequence=sequence)
                zf.write(path, member)
                reference[member] = (path.stat().st_size, md5_file(path))
        served[zip_name] = (folder / zip_name).read_bytes()
    labels = b"image,class,safe\n1_1_0.mat,0,1\n1_2_0.mat,0,1\n1_1_1.mat,1,1\n"
    served[LABELS] = labels
    reference[LABELS] = (len(labels), hashlib.md5(labels).hexdigest())
    return served, reference


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


EXPECTED = sorted([m for members in COMPETITION_FILES.values() for m in members] + [LABELS])


def test_fetch_downloads_unpacks_and_verifies(kaggle_server, competition, tmp_path, capsys):
    served, reference = competition
    kaggle_server.files = dict(served)
    kaggle_server.max_page_size = 2  # three files: the listing takes two pages
    files = kaggle_source.fetch(
        DataConfig(), tmp_path / "kaggle", progress=True, reference=reference
    )
    assert files == (tmp_path / "kaggle" / "files").resolve()
    assert files_under(files) == EXPECTED
    for name, (size, md5) in reference.items():
        assert md5_file(files / name) == md5 and (files / name).stat().st_size == size
    listed = kaggle_server.calls("ListDataFiles")
    assert len(listed) == 2 and listed[0].body["competitionName"] == COMPETITION
    asked = sorted(c.body["fileName"] for c in kaggle_server.calls("DownloadDataFile"))
    assert asked == sorted(served) and len(kaggle_server.downloads()) == 3
    assert {r.user for r in kaggle_server.requests} == {USER}  # basic auth on every call
    downloads = tmp_path / "kaggle" / "downloads"
    marker = json.loads((downloads / ("train_1.zip" + kaggle_source.MARKER_SUFFIX)).read_text())
    assert marker["download_bytes"] == len(served["train_1.zip"])
    assert marker["files"]["train_1/1_1_1.mat"] == [*reference["train_1/1_1_1.mat"]]
    shown = capsys.readouterr()
    assert KEY not in shown.out + shown.err  # progress output never shows the key


def test_rerun_skips_verified_archives(kaggle_server, competition, tmp_path):
    served, reference = competition
    kaggle_server.files = dict(served)
    target = tmp_path / "kaggle"
    kaggle_source.fetch(DataConfig(), target, progress=False, reference=reference)
    kaggle_server.requests.clear()
    files = kaggle_source.fetch(DataConfig(), target, progress=False, reference=reference)
    assert files_under(files) == EXPECTED
    assert kaggle_server.calls("ListDataFiles")  # the listing is still asked for
    assert kaggle_server.calls("DownloadDataFile") == [] and kaggle_server.downloads() == []


def test_rerun_restores_a_deleted_file_from_the_kept_archive(kaggle_server, competition, tmp_path):
    served, reference = competition
    kaggle_server.files = dict(served)
    target = tmp_path / "kaggle"
    files = kaggle_source.fetch(DataConfig(), target, progress=False, reference=reference)
    (files / "train_1" / "1_2_0.mat").unlink()
    kaggle_server.requests.clear()
    # Same size, other bytes: had the client fetched it again, the kept archive would change.
    kaggle_server.files["train_1.zip"] = bytes(len(served["train_1.zip"]))
    kaggle_source.fetch(DataConfig(), target, progress=False, reference=reference)
    assert md5_file(files / "train_1" / "1_2_0.mat") == reference["train_1/1_2_0.mat"][1]
    assert [c.body["fileName"] for c in kaggle_server.calls("DownloadDataFile")] == ["train_1.zip"]
    assert (target / "downloads" / "train_1.zip").read_bytes() == served["train_1.zip"]


def test_an_interrupted_download_resumes_with_a_range_request(kaggle_server, competition, tmp_path):
    served, reference = competition
    kaggle_server.files = {"train_1.zip": served["train_1.zip"]}
    content = served["train_1.zip"]
    downloads = tmp_path / "kaggle" / "downloads"
    downloads.mkdir(parents=True)
    half = len(content) // 2
    (downloads / "train_1.zip").write_bytes(content[:half])
    # The marker the client writes beside a partial download, naming the remote object.
    (downloads / "train_1.zip.kaggle-partial").write_text(
        json.dumps({"validator": etag_of(content), "size": len(content)})
    )
    files = kaggle_source.fetch(
        DataConfig(), tmp_path / "kaggle", progress=False, reference=reference
    )
    # The client opens the file from the redirect, sees its partial, and asks for the rest.
    ranges = [get.headers.get("Range") for get in kaggle_server.downloads()]
    assert ranges == [None, f"bytes={half}-"]
    assert (downloads / "train_1.zip").read_bytes() == content
    assert files_under(files) == sorted(COMPETITION_FILES["train_1.zip"])


def test_a_changed_file_is_named_with_the_archive_to_delete(kaggle_server, competition, tmp_path):
    served, reference = competition
    kaggle_server.files = {"train_1.zip": served["train_1.zip"]}
    size, _ = reference["train_1/1_2_0.mat"]
    wrong = dict(reference) | {"train_1/1_2_0.mat": (size, "0" * 32)}
    with pytest.raises(DeepSyncError) as error:
        kaggle_source.fetch(DataConfig(), tmp_path / "kaggle", progress=False, reference=wrong)
    message = str(error.value)
    assert "train_1/1_2_0.mat" in message and "1_1_0.mat" not in message
    assert "delete" in message and "train_1.zip" in message and "\n" not in message
    assert not list((tmp_path / "kaggle" / "downloads").glob("*" + kaggle_source.MARKER_SUFFIX))


def test_a_dataset_copy_is_listed_and_downloaded_file_by_file(kaggle_server, competition, tmp_path):
    served, _ = competition
    original = tmp_path / "1_1_0.mat"
    write_segment(original, np.zeros((400, 16), np.float32), sequence=1)
    kaggle_server.files = {"train_1/1_1_0.mat": original.read_bytes(), LABELS: served[LABELS]}
    reference = {"train_1/1_1_0.mat": (original.stat().st_size, md5_file(original))}
    config = DataConfig(kaggle_dataset="someone/melbourne-copy")
    files = kaggle_source.fetch(config, tmp_path / "kaggle", progress=False, reference=reference)
    assert files_under(files) == ["train_1/1_1_0.mat", LABELS]
    assert md5_file(files / "train_1" / "1_1_0.mat") == reference["train_1/1_1_0.mat"][1]
    (listed,) = kaggle_server.calls("ListDatasetFiles")
    assert listed.body["ownerSlug"] == "someone" and listed.body["datasetSlug"] == "melbourne-copy"
    assert len(kaggle_server.calls("DownloadDataset")) == 2


def test_an_empty_competition_says_where_the_data_lives(kaggle_server, tmp_path):
    kaggle_server.empty = True
    with pytest.raises(DeepSyncError) as error:
        kaggle_source.fetch(DataConfig(), tmp_path / "kaggle", progress=False, reference={})
    message = str(error.value)
    for advice in ("epilepsyecosystem.org", "KAGGLE_DATASET=owner/slug", "SOURCE=dir DATA_DIR="):
        assert advice in message
    assert "\n" not in message


def test_unaccepted_rules_say_where_to_accept_them(kaggle_server, competition, tmp_path):
    served, _ = competition
    kaggle_server.files = dict(served)
    kaggle_server.forbidden = True
    with pytest.raises(DeepSyncError) as error:
        kaggle_source.fetch(DataConfig(), tmp_path / "kaggle", progress=False, reference={})
    message = str(error.value)
    assert f"https://www.kaggle.com/competitions/{COMPETITION}/rules" in message
    assert "403" in message and RULES_MESSAGE in message and "\n" not in message
    assert kaggle_server.downloads() == []


def test_missing_credentials_say_where_to_put_them(kaggle_server, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    with pytest.raises(DeepSyncError) as error:
        kaggle_source.fetch(DataConfig(), tmp_path / "kaggle", progress=False, reference={})
    message = str(error.value)
    for advice in ("kaggle.json", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        assert advice in message
    assert kaggle_server.requests == []  # nothing was sent without credentials
    assert "Authentication required" not in capsys.readouterr().out  # no client help text


def _raise_oserror(self):
    raise OSError("Could not find kaggle.json. Make sure it's located in ~/.kaggle")


def _exit(self):
    print("Authentication required to call the Kaggle API.")
    raise SystemExit(1)


def _only_print_help(self):
    print("Authentication required to call the Kaggle API.")


@pytest.mark.parametrize("fails", [_raise_oserror, _exit, _only_print_help])
def test_every_way_a_client_says_no_credentials(
    kaggle_server, monkeypatch, tmp_path, capsys, fails
):
    """kaggle <= 1.7 raises OSError, 1.8-2.2.3 exit, later ones may only print help."""
    from kaggle.api.kaggle_api_extended import KaggleApi

    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setattr(KaggleApi, "authenticate", fails)
    with pytest.raises(DeepSyncError, match="no usable Kaggle credentials"):
        kaggle_source.fetch(DataConfig(), tmp_path / "kaggle", progress=False, reference={})
    assert "Authentication required" not in capsys.readouterr().out
    assert kaggle_server.requests == []


def test_a_missing_client_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", None)  # import fails
    with pytest.raises(DeepSyncError, match="kaggle client is not installed.*make setup"):
        kaggle_source.fetch(DataConfig(), tmp_path / "kaggle", progress=False, reference={})


def test_kaggle_json_in_home_is_used(kaggle_server, kaggle_home, monkeypatch, tmp_path):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    config = kaggle_home / ".kaggle" / "kaggle.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"username": "from-file", "key": KEY}))
    config.chmod(0o600)
    kaggle_server.empty = True
    with pytest.raises(DeepSyncError, match="lists no files"):
        kaggle_source.fetch(DataConfig(), tmp_path / "kaggle", progress=False, reference={})
    assert [r.user for r in kaggle_server.requests] == ["from-file"]


def test_an_access_token_is_checked_then_sent_as_bearer(kaggle_server, monkeypatch, tmp_path):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "token-for-tests")
    kaggle_server.tokens = {"token-for-tests": "token-user"}
    kaggle_server.files = {LABELS: b"image,class,safe\n"}
    kaggle_source.fetch(DataConfig(), tmp_path / "kaggle", progress=False, reference={})
    assert kaggle_server.calls("IntrospectToken")[0].body == {"token": "token-for-tests"}
    assert {r.user for r in kaggle_server.requests} == {"token-user"}


def test_a_rejected_access_token_is_missing_credentials(kaggle_server, monkeypatch, tmp_path):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "expired-token")
    with pytest.raises(DeepSyncError, match="no usable Kaggle credentials.*KAGGLE_API_TOKEN"):
        kaggle_source.fetch(DataConfig(), tmp_path / "kaggle", progress=False, reference={})
    assert [c.path for c in kaggle_server.requests] == [
        "/api/v1/security.OAuthService/IntrospectToken"
    ]


def test_no_server_is_a_network_error(kaggle_home, tmp_path):
    with pytest.raises(DeepSyncError, match="could not reach Kaggle.*rerun"):
        kaggle_source.fetch(DataConfig(), tmp_path / "kaggle", progress=False, reference={})
