"""The CLI as a user meets it: real processes, --help everywhere, one-line errors."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deepsync.cli import build_parser, main
from deepsync.config import SyntheticConfig
from tests.conftest import FAST_CNN, start_as_in_a_terminal, tiny_overrides

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


@pytest.mark.parametrize(
    "args", [("--set", "synthetic.sedd=1", "data"), ("data", "--set", "synthetic.sedd=1")]
)
def test_bad_setting_is_one_line_before_or_after_the_stage(args):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "synthetic.seed" in result.stderr


def test_options_after_the_stage_add_to_those_before(tmp_path):
    from deepsync.cli import _overrides

    args = build_parser().parse_args(
        [
            "--set",
            "synthetic.seed=3",
            "--workers",
            "2",
            "data",
            "--set",
            "synthetic.seconds=9",
            "--root",
            "x",
        ]
    )
    assert args.workers == 2 and not args.debug
    assert _overrides(args) == ["synthetic.seed=3", "synthetic.seconds=9", "data.root=x"]


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


def test_ctrl_c_leaves_no_half_file_and_a_rerun_completes(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it."""
    import os
    import signal
    import time

    root = tmp_path / "data"
    args = [
        sys.executable,
        "-m",
        "deepsync",
        "--no-progress",
        "--workers",
        "2",
        "--set",
        "synthetic.seconds=30",
        "data",
        "--root",
        str(root),
    ]
    process = start_as_in_a_terminal(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(root.rglob("*.mat")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted; rerun to resume" in stderr and "Traceback" not in stderr
    written = list(root.rglob("*.mat"))
    assert written and not list(root.rglob("*.partial"))
    assert not (root / "synthetic" / "SYNTHETIC.json").exists()
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    cfg = SyntheticConfig()
    hours = cfg.interictal_hours + cfg.preictal_hours + cfg.test_hours
    segments = cfg.patients * (6 * hours + cfg.extra_preictal)
    assert f"{segments} segments" in rerun.stdout and "problems: none" in rerun.stdout


def test_train_errors_are_one_line_and_come_before_any_work(tmp_path):
    missing = run("train", "--set", f"features.cache_root={tmp_path}")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and "make features" in missing.stderr
    typo = run("train", "--set", "cnn.model=inception_resnet_v9")
    assert typo.returncode == 2 and "not a timm model" in typo.stderr
    assert "inception_resnet_v2" in typo.stderr  # close names suggested


# -- every OS error as one line: read-only folders, closed or full output, odd profiles -----


def respecting_file_modes() -> list[str]:
    """A prefix under which root, too, is refused by file modes (capabilities dropped)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to drop root's capabilities")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


@pytest.mark.parametrize(
    "stage, setting",
    [
        ("data", "data.root"),
        ("features", "features.cache_root"),
        ("train", "train.runs_root"),
        ("submit", "submit.folder"),
    ],
)
def test_a_read_only_folder_is_one_line_naming_the_setting(
    trained_run, tiny_set, tmp_path, stage, setting
):
    config, base = trained_run
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    settings = tiny_overrides(tiny_set, base, "train.run=submitting", *FAST_CNN)
    settings += ["train.models=baseline", f"{setting}={read_only / 'inside'}"]
    command = [sys.executable, "-m", "deepsync", "--no-progress"]
    command += [f"--set={s}" for s in settings] + [stage]
    result = subprocess.run(
        respecting_file_modes() + command, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"deepsync {stage}: error: permission denied: {read_only / 'inside'}: check its owner "
        f"and mode (ls -ld), or set {setting} to a folder you can write"
    ]


def test_a_closed_or_full_output_is_one_line(tiny_set, tmp_path):
    command = [sys.executable, "-m", "deepsync", "--no-progress"]
    command += [f"--set={s}" for s in tiny_overrides(tiny_set, tmp_path)] + ["data"]
    piped = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    piped.stdout.close()  # as `| head -1` does once it has its line
    stderr = piped.stderr.read()
    assert piped.wait(timeout=120) == 141 and "Traceback" not in stderr
    assert stderr.strip().splitlines() == [
        "deepsync data: error: its output was closed before it ended (broken pipe)"
    ]
    if not Path("/dev/full").exists():
        return
    with open("/dev/full", "w") as full:
        result = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "deepsync data: error: cannot write its output (No space left on device); send it elsewhere"
    ]


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p.write_bytes(bytes(range(256))), "is not a text file: give a TOML file"),
        (lambda p: p.mkdir(), "is a folder: give a TOML file, or a named profile (demo,"),
        (lambda p: p.write_text("[data\n"), "is not valid TOML"),
    ],
)
def test_a_profile_that_is_no_toml_file_is_one_line(tmp_path, capsys, make, words):
    profile = tmp_path / "profile.toml"
    make(profile)
    assert main(["--profile", str(profile), "data"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"deepsync data: error: profile {profile} {words}")


def test_an_empty_profile_name_is_one_line(capsys):
    assert main(["--profile", "", "data"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "profile . is a folder: give a TOML file, or a named profile" in line


def test_a_data_dir_that_is_a_file_says_so(tmp_path, capsys):
    file = tmp_path / "train_1.zip"
    file.write_bytes(b"PK")
    code = main(["data", "--source", "dir", "--data-dir", str(file), "--root", str(tmp_path)])
    assert code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"data folder {file} is a file, not a folder; set DATA_DIR to the folder" in line
