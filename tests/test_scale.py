"""`make bench-scale`: growth exponents, projections, and the stages run at two tiny sizes."""

import json
import math

import pytest

from deepsync import scale


def test_the_exponent_and_the_projection_follow_a_power_law():
    segments = [100, 200, 400]
    linear = [2.0, 4.0, 8.0]
    assert scale.exponent(segments, linear) == pytest.approx(1.0)
    assert scale.project(segments, linear, full=800) == pytest.approx(16.0)
    square = [s**2 / 1e3 for s in segments]
    assert scale.exponent(segments, square) == pytest.approx(2.0)
    assert scale.project(segments, square, full=800) == pytest.approx(640.0)
    assert math.isnan(scale.exponent([100], [1.0]))
    rss = [1.0e9, 1.5e9, 2.5e9]  # 0.5 GB fixed, 5 MB a segment
    assert scale.project_memory(segments, rss, full=1000) == pytest.approx(5.5e9)


def test_the_table_flags_a_stage_that_grows_faster_than_its_data():
    def record(n, seconds):
        return {"seconds": seconds, "peak_rss": 2**30, "segments": n}

    results = {
        d: {"train fast": record(n, n / 100), "train slow": record(n, (n / 100) ** 2)}
        for d, n in ((32, 300), (16, 600), (8, 1200))
    }
    text = scale.render(results)
    assert "segments per size: 1/32: 300, 1/16: 600, 1/8: 1200; full: 8233" in text
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| train")}
    assert "(!)" in rows["| train slow (!)"] and "(!)" not in rows["| train fast"]
    fast = next(r for r in scale.table(results) if r["stage"] == "train fast")
    assert fast["exponent"] == pytest.approx(1.0) and fast["full s"] == pytest.approx(82.33)
    assert "projected at full size, classical models:" in text


def test_bench_scale_runs_every_stage_at_two_sizes_and_resumes(tmp_path, capsys):
    args = [
        "--sizes",
        "512,128",
        "--models",
        "logistic:share",
        "--root",
        str(tmp_path),
        "--workers",
        "1",
        "--set",
        "synthetic.seconds=20",
        "--set",
        "train.folds=2",
        "--set",
        "features.families=all",
    ]
    assert scale.main(args) == 0
    out = capsys.readouterr().out
    records = {d: json.loads((tmp_path / f"1-{d}" / "bench.json").read_text()) for d in (512, 128)}
    names = ["data", "features", "features (winners)", "train logistic:share", "submit", "report"]
    for measured in records.values():
        assert list(measured) == names
        assert all(r["seconds"] > 0 and r["peak_rss"] > 2**20 for r in measured.values())
    small, large = records[512]["data"]["segments"], records[128]["data"]["segments"]
    assert 0 < small < large  # 1/128 of the real counts has more files than 1/512
    assert (tmp_path / "1-128" / "submissions" / "winners.csv").exists()
    assert "| train logistic:share |" in out and (tmp_path / "table.md").exists()
    assert scale.main(args) == 0  # resumes: every stage measured, none run again
    assert "bench-scale 1/" not in capsys.readouterr().out
    again = {d: json.loads((tmp_path / f"1-{d}" / "bench.json").read_text()) for d in (512, 128)}
    assert again == records
    other = [*args, "--scenario", "spikes"]  # a size measured with other settings
    with pytest.raises(SystemExit, match="measured with other settings"):
        scale.main(other)
    assert scale.main([*args[:1], "0,8", *args[2:]]) == 2  # sizes are denominators >= 1
