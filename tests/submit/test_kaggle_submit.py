"""Submitting and reading scores back through the real kaggle client, against the stand-in."""

import pandas as pd
import pytest

from deepsync.errors import DeepSyncError
from deepsync.submit import kaggle_api, ledger
from deepsync.submit.leaderboard import refresh_from_kaggle, table
from deepsync.submit.stage import make_submission, send
from tests.conftest import USER
from tests.standins.kaggle_server import RULES_MESSAGE

COMPETITION = "melbourne-university-seizure-prediction"


def events(config):
    return list(ledger.read(config.submit.folder)["event"])


def test_a_submission_is_uploaded_and_ledgered(submit_config, kaggle_server):
    kaggle_server.scorer = lambda content: ("0.61234", "0.65432")
    report = make_submission(submit_config)
    ref = send(report, submit_config, "tiny run, first try")
    (upload,) = kaggle_server.uploads.values()
    assert upload["content"] == report.path.read_bytes()  # the very bytes of the file
    assert upload["name"] == "submitting.csv"
    (created,) = kaggle_server.calls("CreateSubmission")
    assert created.body["competitionName"] == COMPETITION
    assert created.body["submissionDescription"] == "tiny run, first try"
    assert created.user == USER
    assert events(submit_config) == ["written", "submitted"]
    assert ledger.read(submit_config.submit.folder)["kaggle_ref"].iloc[-1] == ref


def test_kaggle_scores_are_read_back_into_the_ledger_once(submit_config, kaggle_server):
    kaggle_server.scorer = lambda content: ("0.61234", "0.65432")
    report = make_submission(submit_config)
    send(report, submit_config, "scored")
    assert refresh_from_kaggle(submit_config.submit.folder, COMPETITION) == 1
    assert refresh_from_kaggle(submit_config.submit.folder, COMPETITION) == 0  # nothing new
    row = table(submit_config.submit.folder).iloc[0]
    assert (row["kaggle_public"], row["kaggle_private"]) == (0.61234, 0.65432)
    assert row["kaggle_status"] == "COMPLETE"
    assert row["private_minus_oof"] == pytest.approx(0.65432 - report.chosen.oof_auc)


def test_a_pending_score_is_updated_when_kaggle_has_it(submit_config, kaggle_server):
    kaggle_server.pending = True
    send(make_submission(submit_config), submit_config, "pending")
    assert refresh_from_kaggle(submit_config.submit.folder, COMPETITION) == 0  # still PENDING
    entry = kaggle_server.submissions[0]
    entry.update(status="COMPLETE", publicScore="0.7", privateScore="0.71")
    assert refresh_from_kaggle(submit_config.submit.folder, COMPETITION) == 1
    assert table(submit_config.submit.folder)["kaggle_private"].iloc[0] == 0.71


def test_every_page_of_submissions_is_read(kaggle_server):
    kaggle_server.max_page_size = 2
    kaggle_server.submissions = [
        {"ref": 100 + i, "fileName": f"s{i}.csv", "status": "COMPLETE", "publicScore": "0.5"}
        for i in range(5)
    ]
    listed = kaggle_api.submissions(COMPETITION)
    assert [s.ref for s in listed] == [str(100 + i) for i in range(5)]
    assert len(kaggle_server.calls("ListSubmissions")) == 3


def test_a_refused_submission_is_one_line_and_the_file_stays(submit_config, kaggle_server):
    kaggle_server.refuse_submissions = "Your team has used its daily Submission allowance (5)"
    report = make_submission(submit_config)
    with pytest.raises(DeepSyncError) as error:
        send(report, submit_config, "refused")
    message = str(error.value)
    assert "daily Submission allowance" in message and "\n" not in message
    assert report.path.exists()
    assert events(submit_config) == ["written", "refused"]
    assert table(submit_config.submit.folder)["kaggle_status"].iloc[0] == "REFUSED"


def test_unaccepted_rules_say_where_to_accept_them(submit_config, kaggle_server):
    kaggle_server.forbidden = True
    with pytest.raises(DeepSyncError) as error:
        send(make_submission(submit_config), submit_config, "rules")
    assert RULES_MESSAGE in str(error.value) and f"competitions/{COMPETITION}/rules" in str(
        error.value
    )


def test_a_failed_upload_is_refused(submit_config, kaggle_server):
    kaggle_server.upload_status = 403
    with pytest.raises(DeepSyncError, match="Kaggle did not take submitting.csv"):
        send(make_submission(submit_config), submit_config, "upload fails")
    assert kaggle_server.calls("CreateSubmission") == []
    assert events(submit_config) == ["written", "refused"]


def test_missing_credentials_send_nothing(submit_config, kaggle_server, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    report = make_submission(submit_config)
    with pytest.raises(DeepSyncError, match="no usable Kaggle credentials") as raised:
        send(report, submit_config, "no credentials")
    assert f"the file stays in {submit_config.submit.folder}/" in str(raised.value)
    assert kaggle_server.requests == [] and report.path.exists()
    refused = ledger.read(submit_config.submit.folder).iloc[-1]
    assert refused["event"] == "refused" and "credentials" in refused["message"]
    assert isinstance(pd.read_csv(report.path), pd.DataFrame)


@pytest.mark.parametrize(
    "content, why",
    [
        (b'["deepsync-tester", "key"]', "holds a JSON list, not an object"),
        ('{"username": "a", "key": "b"}'.encode("utf-16"), "is not UTF-8 text"),
        (b"username=a key=b", "is not JSON"),
    ],
)
def test_a_broken_credentials_file_is_one_line_and_ledgered(
    submit_config, kaggle_server, kaggle_home, monkeypatch, content, why
):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    (kaggle_home / ".kaggle").mkdir(exist_ok=True)
    (kaggle_home / ".kaggle" / "kaggle.json").write_bytes(content)
    report = make_submission(submit_config)
    with pytest.raises(DeepSyncError) as raised:
        send(report, submit_config, "broken credentials file")
    message = str(raised.value)
    assert f"the Kaggle credentials file {kaggle_home / '.kaggle' / 'kaggle.json'} {why}" in message
    assert "\n" not in message and kaggle_server.requests == []
    assert events(submit_config) == ["written", "refused"]


def test_any_failure_after_written_is_ledgered_as_refused(submit_config, monkeypatch):
    def broken(*_):
        raise TypeError("list indices must be integers or slices, not str")

    monkeypatch.setattr(kaggle_api, "submit", broken)
    report = make_submission(submit_config)
    with pytest.raises(TypeError):
        send(report, submit_config, "a bug in the client")
    refused = ledger.read(submit_config.submit.folder).iloc[-1]
    assert refused["event"] == "refused"
    assert refused["message"].startswith("failed before Kaggle answered (TypeError: list")


def test_a_sent_file_the_ledger_cannot_record_is_said_to_be_sent(
    submit_config, kaggle_server, monkeypatch
):
    report = make_submission(submit_config)
    real = ledger.append

    def full_disk(folder, event, **values):
        if event == "submitted":
            raise OSError(28, "No space left on device", str(folder / ledger.LEDGER_FILE))
        return real(folder, event, **values)

    monkeypatch.setattr(ledger, "append", full_disk)
    with pytest.raises(DeepSyncError) as raised:
        send(report, submit_config, "sent, not recorded")
    (created,) = kaggle_server.calls("CreateSubmission")
    assert f"Kaggle took submitting.csv (submission {report.kaggle_ref}), but the ledger" in str(
        raised.value
    )
    assert str(raised.value).endswith("do not send it again")
    assert "no space left on the disk holding" in str(raised.value)
