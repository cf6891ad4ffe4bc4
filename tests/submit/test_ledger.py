"""The ledger only grows: appends survive a crash mid-write, and nothing is rewritten."""

import subprocess
import sys
import textwrap

import pytest

from deepsync.submit import ledger


def test_events_come_back_as_written(tmp_path):
    ledger.append(tmp_path, "written", file="a.csv", oof_auc=0.8123456789, local_public=0.75)
    ledger.append(tmp_path, "submitted", file="a.csv", kaggle_ref="51001", message='say "hi",\nok')
    events = ledger.read(tmp_path)
    assert list(events["event"]) == ["written", "submitted"]
    assert events["oof_auc"].iloc[0] == 0.8123456789  # exact, not rounded
    assert events["message"].iloc[1] == 'say "hi", ok'  # one line, quotes kept
    assert list(events.columns) == ledger.COLUMNS


def test_unknown_events_and_columns_are_refused(tmp_path):
    with pytest.raises(ValueError):
        ledger.append(tmp_path, "deleted", file="a.csv")
    with pytest.raises(ValueError):
        ledger.append(tmp_path, "written", score=1)


def test_appending_never_rewrites_what_is_there(tmp_path):
    ledger.append(tmp_path, "written", file="a.csv")
    before = (tmp_path / ledger.LEDGER_FILE).read_bytes()
    ledger.append(tmp_path, "written", file="b.csv")
    assert (tmp_path / ledger.LEDGER_FILE).read_bytes().startswith(before)


CRASHING_APPEND = """
import os, sys
from deepsync.submit import ledger

real_write = os.write

def write_half_then_die(fd, data):
    if len(data) > 1:
        real_write(fd, data[: len(data) // 2])
        os._exit(9)  # the process dies in the middle of the line
    return real_write(fd, data)

os.write = write_half_then_die
ledger.append(sys.argv[1], "submitted", file="crashed.csv", kaggle_ref="51002")
"""


def test_an_append_cut_by_a_crash_loses_only_itself(tmp_path):
    ledger.append(tmp_path, "written", file="a.csv", oof_auc=0.8)
    ledger.append(tmp_path, "submitted", file="a.csv", kaggle_ref="51001")
    crashed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASHING_APPEND), str(tmp_path)],
        capture_output=True,
    )
    assert crashed.returncode == 9
    text = (tmp_path / ledger.LEDGER_FILE).read_text()
    assert not text.endswith("\n")  # half a line, cut short
    with pytest.warns(UserWarning, match="skipped 1 incomplete line"):
        assert list(ledger.read(tmp_path)["file"]) == ["a.csv", "a.csv"]
    ledger.append(tmp_path, "written", file="after.csv", oof_auc=0.9)
    with pytest.warns(UserWarning, match="skipped 1 incomplete line"):
        events = ledger.read(tmp_path)
    assert list(events["file"]) == ["a.csv", "a.csv", "after.csv"]
    assert events["oof_auc"].iloc[-1] == 0.9


def test_a_damaged_line_never_passes_as_an_event(tmp_path):
    ledger.append(tmp_path, "kaggle", file="a.csv", kaggle_public=0.80630)
    path = tmp_path / ledger.LEDGER_FILE
    path.write_text(path.read_text().replace("0.8063", "0.9063"))  # a changed score
    with pytest.warns(UserWarning):
        assert ledger.read(tmp_path).empty


def test_bytes_that_are_not_text_cost_only_their_line(tmp_path):
    ledger.append(tmp_path, "written", file="a.csv")
    with open(tmp_path / ledger.LEDGER_FILE, "ab") as handle:
        handle.write(b"\xff\xfe\x00garbage,written\n")  # a disk error, another tool
    ledger.append(tmp_path, "written", file="b.csv")
    with pytest.warns(UserWarning, match="skipped 1 incomplete line"):
        events = ledger.read(tmp_path)
    assert list(events["file"]) == ["a.csv", "b.csv"]


def test_a_line_cut_inside_quotes_costs_that_line_only(tmp_path):
    ledger.append(tmp_path, "written", file="a.csv")
    row = ledger.append(tmp_path, "refused", file="a.csv", message="Kaggle said: no, not today")
    path = tmp_path / ledger.LEDGER_FILE
    text = path.read_text()
    cut = text.index('"Kaggle said: no') + 10  # a full disk stopped the write in the quote
    path.write_text(text[:cut])
    ledger.append(tmp_path, "written", file="b.csv")
    with pytest.warns(UserWarning, match="skipped 1 incomplete line"):
        events = ledger.read(tmp_path)
    assert list(events["file"]) == ["a.csv", "b.csv"] and row["event"] == "refused"


def test_a_ledger_a_crash_left_empty_keeps_its_first_event(tmp_path):
    (tmp_path / ledger.LEDGER_FILE).write_bytes(b"")
    ledger.append(tmp_path, "written", file="a.csv")
    assert (tmp_path / ledger.LEDGER_FILE).read_text().startswith(ledger.HEADER + "\n")
    assert list(ledger.read(tmp_path)["file"]) == ["a.csv"]
