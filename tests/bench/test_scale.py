"""`make bench-scale`: growth exponents, projections, and the stages run at two tiny sizes."""

import json
import math

import numpy as np
import pytest

from deepsync.bench import scale


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


def test_a_pairwise_model_is_projected_with_the_square_its_search_grows_with():
    """A KNN's fixed costs hide its square at small sizes (exponent well below 1 here); the
    projection fits a + c * n^2 and takes it where it is the larger."""
    segments = [300, 600, 1200, 2400]
    seconds = [7.0 + 1e-6 * n**2 for n in segments]  # 7 s fixed, the rest every pair
    assert scale.exponent(segments, seconds) < 0.6
    assert scale.project_pairwise(segments, seconds, full=9600) == pytest.approx(7.0 + 92.16)
    steep = [0.01 * (n / 300) ** 2.5 for n in segments]  # steeper than a square: its own law
    assert scale.project_pairwise(segments, steep, full=9600) == pytest.approx(0.01 * 32**2.5)

    def record(n, s):
        return {"seconds": s, "peak_rss": 2**30, "segments": n}

    results = {
        d: {
            "train feng_knn": record(n, s),
            "train knn:share": record(n, s),
            "train gbm": record(n, s),
        }
        for d, n, s in zip((32, 16, 8, 4), segments, seconds, strict=True)
    }
    rows = {r["stage"]: r["full s"] for r in scale.table(results)}
    assert rows["train feng_knn"] == rows["train knn:share"] > 2 * rows["train gbm"]
    assert "| train feng_knn (n²) |" in scale.render(results)


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
        assert all(r["peak_anon"] > 2**20 for r in measured.values())  # allocated memory
    small, large = records[512]["data"]["segments"], records[128]["data"]["segments"]
    assert 0 < small < large  # 1/128 of the real counts has more files than 1/512
    assert (tmp_path / "1-128" / "submissions" / "winners.csv").exists()
    assert "| train logistic:share |" in out and (tmp_path / "table.md").exists()
    assert scale.main(args) == 0  # resumes: every stage measured, none run again
    assert "bench-scale 1/" not in capsys.readouterr().out
    again = {d: json.loads((tmp_path / f"1-{d}" / "bench.json").read_text()) for d in (512, 128)}
    assert again == records
    assert scale.main([*args, "--stages", "submit,report", "--again", "submit"]) == 0
    redone = json.loads((tmp_path / "1-128" / "bench.json").read_text())
    assert "bench-scale 1/128: submit" in capsys.readouterr().out
    assert redone["submit"] != records[128]["submit"]  # measured anew, the rest kept
    assert {k: v for k, v in redone.items() if k != "submit"} == {
        k: v for k, v in records[128].items() if k != "submit"
    }
    # the cache size the Kaggle projection computes is the bytes `make features` wrote
    from deepsync.config import load_config
    from deepsync.features.cache import cache_folder

    sets = [value for key, value in zip(args[::2], args[1::2], strict=True) if key == "--set"]
    config = load_config(
        scale.PROFILE, overrides=[*scale.settings(tmp_path / "1-128", 128, "band"), *sets]
    )
    arrays = cache_folder(config.features).glob("*.npy")
    written = sum(np.load(p, mmap_mode="r").nbytes for p in arrays)
    assert written == scale.cache_bytes(config.features, large, seconds=20)
    other = [*args, "--scenario", "spikes"]  # a size measured with other settings
    assert scale.main(other) == 2
    assert "measured with other settings" in capsys.readouterr().err
    assert scale.main([*args[:1], "0,8", *args[2:]]) == 2  # sizes are denominators >= 1
    assert scale.main([*args[:1], "", *args[2:]]) == 2
    assert capsys.readouterr().err.count("bench-scale: --sizes") == 2


def test_the_kernel_projection_follows_the_measured_cnn_speed(tmp_path):
    """A run at some size: two folds of patient 1 logged at 100 training images/s, each
    epoch twice its training time; the `gpu` profile's time per patient from them."""
    from deepsync.config import load_config

    run = tmp_path / "1-8" / "runs" / load_config(scale.PROFILE).train.run
    run.mkdir(parents=True)
    folds = [f"1_{i}.mat,1,0,h{i % 4},{i},{i % 2}" for i in range(40)]  # 20 per fold
    (run / "folds.csv").write_text("segment,patient,label,hour,row,fold\n" + "\n".join(folds))
    for fold in (0, 1):
        log = run / "cnn" / "patient1" / f"fold{fold}" / "log.csv"
        log.parent.mkdir(parents=True)
        rows = [f"{e},0.5,0.5,0.5,0.001,0.4,100,0.0" for e in (1, 2, 3)]  # 20 images: 0.2 s
        header = "epoch,train_loss,valid_auc,best_auc,lr,seconds,images_per_s,data_wait"
        log.write_text(header + "\n" + "\n".join(rows))
    assert scale.cnn_rates(run) == pytest.approx((100.0, 2.0))
    gpu, measured = load_config(scale.KERNEL_PROFILE), load_config(scale.PROFILE)
    lines = scale.kernel_lines(tmp_path / "1-8", rate=500.0)
    ratio = (gpu.features.bands * gpu.features.frames) / (
        measured.features.bands * measured.features.frames
    )
    files = scale.training_files()[2]
    images = gpu.cnn.epochs * (gpu.train.folds - 1) * files
    here, given = images * 2.0 / (100.0 / ratio) / 3600, images * 2.0 / 500.0 / 3600
    assert f"patient 2: {files} files" in lines[3]
    assert f"{here:.1f} h / {given:.1f} h" in lines[3]
    assert "GB" in lines[0] and len(lines) == 5  # the cache, the speed, three patients
    assert scale.kernel_lines(tmp_path / "nothing") == lines[:1]  # no CNN measured: the cache
