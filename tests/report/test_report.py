"""`make report` on a small trained run: every section and picture, nothing from the network."""

import base64
import dataclasses
import re
from pathlib import Path

import pytest

from deepsync.errors import DeepSyncError
from deepsync.report.page import build_report
from deepsync.submit.stage import make_submission

PNG = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("data", "stacks", "run-submitting", "ledger")


@pytest.fixture(scope="module")
def page(trained_run, tmp_path_factory):
    config, _ = trained_run
    out = tmp_path_factory.mktemp("reports")
    submissions = out / "submissions"
    config = dataclasses.replace(
        config, submit=dataclasses.replace(config.submit, folder=submissions)
    )
    make_submission(config)  # one entry in the ledger
    path = build_report(config, out)
    return path, path.read_text()


def test_the_page_has_every_section(page):
    path, text = page
    assert path.name == "index.html" and path.parent.name == "submitting"
    for anchor in SECTIONS:
        assert f'id="{anchor}"' in text, anchor
    for words in ("ROC", "training", "preictal", "dropout", "<table"):
        assert words in text


def test_every_picture_is_inside_the_page_and_beside_it(page):
    path, text = page
    embedded = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)">', text)
    files = sorted(path.parent.glob("*.png"))
    names = {p.stem for p in files}
    # data, 2 patients x (stacks, difference), ROC, training curves, ledger
    assert len(embedded) == len(files) == 8
    assert {"data_summary", "submitting_roc", "submitting_training", "ledger"} <= names
    assert {"patient1_stacks", "patient2_preictal_difference"} <= names
    for data in embedded:
        assert base64.b64decode(data)[:8] == PNG
    assert {base64.b64decode(d) for d in embedded} == {p.read_bytes() for p in files}


def test_nothing_on_the_page_needs_the_network(page):
    _, text = page
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "<script" not in text and "@import" not in text


def test_a_run_that_does_not_exist_is_a_one_line_error(trained_run, tmp_path):
    config, _ = trained_run
    other = dataclasses.replace(config, train=dataclasses.replace(config.train, run="nothing"))
    with pytest.raises(DeepSyncError, match="no trained run .*make train"):
        build_report(other, tmp_path)
    every = build_report(other, tmp_path, every_run=True)  # --all: every run there is
    assert every == tmp_path / "index.html" and 'id="run-submitting"' in every.read_text()


def test_a_damaged_run_is_said_on_the_page_of_every_run_not_fatal(trained_run, tmp_path):
    import shutil

    config, _ = trained_run
    root = tmp_path / "runs"
    source = Path(config.train.runs_root) / config.train.run
    shutil.copytree(source, root / config.train.run, symlinks=True)
    (root / "damaged").mkdir()
    (root / "damaged" / "config.json").write_text("{not json")
    moved = dataclasses.replace(config, train=dataclasses.replace(config.train, runs_root=root))
    text = build_report(moved, tmp_path / "out", every_run=True).read_text()
    assert 'id="run-damaged"' in text and "this run cannot be read" in text
    assert f'id="run-{config.train.run}"' in text  # the rest is there
    assert (tmp_path / "out" / f"{config.train.run}_roc.png").exists()
    alone = dataclasses.replace(moved, train=dataclasses.replace(moved.train, run="damaged"))
    with pytest.raises(DeepSyncError, match="damaged"):  # asked for alone: the error
        build_report(alone, tmp_path / "alone")
