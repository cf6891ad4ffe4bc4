"""`make bench-features`: its arguments checked before any work, in one line."""

from deepsync.bench import features


def test_bad_arguments_are_one_line_errors(capsys, tmp_path):
    for argv in (["--files", "0"], ["--reps", "0"], ["--workers", "0"]):
        assert features.main([*argv, "--root", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("bench-features: --files, --reps and --workers must be >= 1")
        assert err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing generated
