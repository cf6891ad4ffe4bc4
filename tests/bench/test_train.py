"""`make bench-train` on the CPU: every variant measured, failures and NaNs kept out of the pick."""

import math

import pytest
import torch

from deepsync.bench import train as bench
from deepsync.bench.train import VARIANTS, bench_dataset, run_bench
from tests.conftest import tiny_config

SMALL = ["cnn.model=test_resnet", "cnn.loader_workers=1", "cnn.loader_prefetch=1"]


@pytest.fixture
def config(tiny_cache, tiny_set):
    base, _ = tiny_cache
    return tiny_config(tiny_set, base, *SMALL)


def test_every_variant_the_loader_and_the_fed_model_are_measured(config, capsys):
    figures = run_bench(
        config, steps=2, warmup=1, batch_size=4, variants=["fp32", "bf16", "bf16-cl"]
    )
    out = capsys.readouterr().out
    assert [f.variant.key for f in figures] == ["fp32", "bf16", "bf16-cl"]
    assert all(f.stable and f.images_per_s > 0 and f.step_ms > 0 for f in figures)
    assert all(math.isnan(f.peak_mib) for f in figures)  # no GPU memory on a CPU
    for variant in figures:
        assert variant.variant.name in out
    assert "fp32 eager" in out and " 1.00x " in out
    assert "0 workers:" in out and "1 workers:" in out and "samples/s" in out
    assert "with the loader (1 workers, prefetch 1)" in out and "waiting for data" in out
    assert "timm publishes no training figure for test_resnet" in out
    best = max(figures, key=lambda f: f.images_per_s)
    assert f"fastest stable: {best.variant.name} " in out


def test_sweeps_alternate_the_variants_and_report_medians(config, capsys, monkeypatch):
    order, real = [], bench.measure_model

    def recorded(variant, *args):
        order.append(variant.key)
        return real(variant, *args)

    monkeypatch.setattr(bench, "measure_model", recorded)
    figures = run_bench(config, steps=1, warmup=0, reps=3, batch_size=4, variants=["fp32", "bf16"])
    assert order == ["fp32", "bf16"] * 3 and len(figures) == 2
    assert "x 3 sweeps (medians)" in capsys.readouterr().out
    runs = [
        bench.Figures(VARIANTS["fp32"], speed, 1.0, first, peak, 0.5)
        for speed, first, peak in ((1.0, 9.0, 5.0), (5.0, 1.0, 7.0), (3.0, 1.0, 6.0))
    ]
    merged = bench._median(runs)
    assert (merged.images_per_s, merged.first_s, merged.peak_mib) == (3.0, 9.0, 7.0)
    runs[1].loss = math.nan
    assert not bench._median(runs).stable  # one unstable sweep marks the variant


@pytest.fixture
def timm_has_test_resnet(monkeypatch):
    published = {"nchw": 100.0, "nhwc": 200.0, "batch": 6, "size": 299}
    monkeypatch.setitem(bench.TIMM_TRAIN, "test_resnet", published)
    calls, real = [], bench.measure_model

    def recorded(variant, cfg, *args):
        calls.append((variant.key, cfg.batch_size))
        return real(variant, cfg, *args)

    monkeypatch.setattr(bench, "measure_model", recorded)
    return calls


def test_half_precision_variants_are_measured_again_at_timms_batch(
    config, capsys, timm_has_test_resnet
):
    keys = ["fp32", "bf16", "bf16-cl"]
    run_bench(config, steps=1, warmup=0, batch_size=4, variants=keys, timm_batch=6)
    out = capsys.readouterr().out
    assert timm_has_test_resnet == [(k, 4) for k in keys] + [("bf16", 6), ("bf16-cl", 6)]
    assert "RTX 3090, AMP, batch 6, 299x299, 3 channels): 100.0 images/s NCHW, 200.0 NHWC" in out
    lines = [line for line in out.splitlines() if line.startswith("  ours, ")]
    assert [line.split(",")[1].strip() for line in lines] == [
        "bf16 autocast",
        "bf16 autocast + channels_last",
    ]
    for line, published in zip(lines, (100.0, 200.0), strict=True):
        assert "batch 6, " in line and "16 channels" in line
        speed = float(line.split(": ")[1].split(" images/s")[0])
        ratio, layout = line.rsplit(", ", 1)[1].split("x timm's ")
        assert layout == ("NHWC" if published == 200 else "NCHW")
        # both printed figures are rounded: speed to 0.1 images/s, the ratio to 0.01
        assert abs(float(ratio) - speed / published) <= 0.05 / published + 0.005 + 1e-9


@pytest.mark.parametrize("timm_batch", [0, 4, 10_000])
def test_timms_batch_falls_back_to_the_benchs_own(config, capsys, timm_has_test_resnet, timm_batch):
    run_bench(config, steps=1, warmup=0, batch_size=4, variants=["bf16"], timm_batch=timm_batch)
    out = capsys.readouterr().out
    assert timm_has_test_resnet == [("bf16", 4)]  # measured once, at the bench's batch
    assert "  ours, bf16 autocast, batch 4, " in out
    assert ("more than the" in out) == (timm_batch == 10_000)


def test_a_failing_variant_is_reported_and_the_rest_still_run(config, capsys, monkeypatch):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no working C++ compiler\nsecond line")

    monkeypatch.setattr(torch, "compile", no_compiler)
    figures = run_bench(
        config, steps=1, warmup=0, batch_size=4, variants=["fp32", "bf16-cl-compile"]
    )
    out = capsys.readouterr().out
    assert not figures[1].stable and figures[0].stable
    assert "failed: RuntimeError: no working C++ compiler" in out and "second line" not in out
    assert "fastest stable: fp32 eager " in out


def test_a_variant_whose_loss_is_not_finite_is_never_picked(config, capsys, monkeypatch):
    real_step = bench.Optimisation.step

    def nan_in_bf16(self, runner, x, y, rt):
        loss = real_step(self, runner, x, y, rt)
        return loss * math.nan if rt.dtype == torch.bfloat16 else loss

    monkeypatch.setattr(bench.Optimisation, "step", nan_in_bf16)
    figures = run_bench(config, steps=1, warmup=0, batch_size=4, variants=["bf16", "fp32"])
    out = capsys.readouterr().out
    assert not figures[0].stable and "UNSTABLE" in out
    assert "fastest stable: fp32 eager " in out


def test_the_bench_builds_a_missing_cache_first(tiny_set, tmp_path, capsys):
    config = tiny_config(tiny_set, tmp_path, *SMALL)
    dataset, _ = bench_dataset(config)
    out = capsys.readouterr().out
    assert "building it (make data features)" in out
    # the same summaries as `make data` and `make features` print
    assert "data: dir source, " in out and "problems: none" in out
    assert "features: " in out and " computed, 0 already cached, 0 failed" in out
    assert (tmp_path / "cache").is_dir() and len(dataset) > 0
    assert set(dataset.labels.tolist()) == {0, 1}


def test_bad_arguments_are_one_line_errors(capsys):
    assert bench.main(["--variants", "fp32,fp64"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench-train: unknown variant 'fp64'") and "\n" not in err
    assert all(key in err for key in VARIANTS)
    assert bench.main(["--workers", "two"]) == 2
    assert "--workers 'two': give numbers like 0,4" in capsys.readouterr().err
    assert bench.main(["--timm-batch", "-1"]) == 2
    assert "--timm-batch >= 0" in capsys.readouterr().err
