"""The CLI as a user meets it: real processes, --help everywhere, one-line errors."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from deepsync.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "deepsync", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "stage")
    return sorted(action.choices)


@pytest.mark.parametrize("stage", [None, *subcommands()])
def test_help_for_every_command(stage):
    result = run(*([stage] if stage else []), "--help")
    assert result.returncode == 0
    assert "usage: deepsync" in result.stdout
    if stage:
        assert stage in result.stdout


def test_user_error_is_one_line_with_advice(tmp_path):
    result = run(
        "data",
        "--source",
        "dir",
        "--data-dir",
        str(tmp_path / "nothing"),
        "--root",
        str(tmp_path / "data"),
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "does not exist" in lines[0] and "DATA_DIR" in lines[0]
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = run(
        "--debug",
        "data",
        "--source",
        "dir",
        "--data-dir",
        str(tmp_path / "nothing"),
        "--root",
        str(tmp_path / "data"),
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_bad_setting_is_one_line():
    result = run("--set", "synthetic.sedd=1", "data")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "synthetic.seed" in result.stderr


def makefile_targets():
    text = (ROOT / "Makefile").read_text()
    return sorted(set(re.findall(r"^([a-z][a-z-]*):.*## ", text, flags=re.M)))


def test_makefile_has_the_pipeline_targets():
    assert {"setup", "data", "demo", "test", "lint", "help"} <= set(makefile_targets())


@pytest.mark.parametrize("target", makefile_targets())
def test_every_make_target_resolves(target):
    result = subprocess.run(
        ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
