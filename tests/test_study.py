"""`deepsync study`: a grid of variants on the same folds, one table, resumable."""

import json
import math
import os
import warnings
from pathlib import Path

import pandas as pd
import pytest

from deepsync.config import load_config
from deepsync.errors import DeepSyncError
from deepsync.study import (
    Grid,
    Variant,
    load_grid,
    pick,
    report_folder,
    run_configs,
    run_study,
    summarise,
)
from deepsync.submit.blend import rank_average
from deepsync.train.metrics import auc
from tests.conftest import tiny_overrides

SPECTRUM = (
    "cnn.model=spectrumnet",
    "cnn.epochs=2",
    "cnn.batch_size=8",
    "cnn.select=last",
    "train.models=baseline,cnn",
)


def write_grid(path, text):
    path.write_text(text)
    return path


def test_a_grid_file_becomes_named_variants_of_overrides(tmp_path):
    grid = load_grid(
        write_grid(
            tmp_path / "g.toml",
            'seeds = [3, 1, 3]\n[variants.small]\n"cnn.model" = "spectrumnet"\n'
            '"cnn.augment" = false\n"cnn.lr" = 0.001\n[variants.plain]\n'
            "[variants.costly]\nseeds = [4]\n",
        )
    )
    assert grid.seeds == (3, 1) and grid.name == "g"  # repeats dropped, order kept
    assert grid.variants == (
        Variant("small", ("cnn.model=spectrumnet", "cnn.augment=false", "cnn.lr=0.001")),
        Variant("plain", ()),
        Variant("costly", (), (4,)),
    )
    assert pick(grid, "costly,plain", "5,6") == Grid(
        (Variant("costly", ()), Variant("plain", ())), (5, 6), "g"
    )
    runs = run_configs(pick(grid, "costly,plain"), None, [])
    assert [(v.name, seed) for v, seed, _ in runs] == [("costly", 4), ("plain", 3), ("plain", 1)]
    with pytest.raises(DeepSyncError, match="no variant big in the grid; it has small, plain, c"):
        pick(grid, "big")


@pytest.mark.parametrize(
    "text, message",
    [
        ('[variants.a]\n"synthetic.seconds" = 60\n', "share one data set"),
        ("seeds = []\n[variants.a]\n", "seeds must be a list of integers"),
        ('[variants.a]\nseeds = ["1"]\n', "seeds must be a list of integers"),
        ('seeds = [1]\n[variants."a b"]\n', "plain name"),
        ("seeds = [1]\n", r"no \[variants.NAME\] tables"),
        ("seeds = [\n", "not valid TOML"),
    ],
)
def test_a_bad_grid_is_a_one_line_error(tmp_path, text, message):
    with pytest.raises(DeepSyncError, match=message):
        load_grid(write_grid(tmp_path / "g.toml", text))


def test_the_kit_grids_load_and_every_variant_is_a_valid_config(tmp_path):
    with pytest.raises(DeepSyncError, match="named grids: default, families, scenarios, winners"):
        load_grid(tmp_path / "missing.toml")
    grid = load_grid()
    runs = run_configs(grid, "study", [])
    assert len(runs) == sum(len(v.seeds or grid.seeds) for v in grid.variants) >= 4
    assert {"baseline", "inception_resnet_v2"} <= {v.name for v in grid.variants}
    assert len({config.train.run for _, _, config in runs}) == len(runs)
    assert report_folder(grid, runs[0][2]) == Path("reports/study/study")
    families = run_configs(load_grid("families"), "study", [])
    assert report_folder(load_grid("families"), families[0][2]).name == "study-families"
    models = {config.train.models for _, _, config in families}
    assert len(models) == len(families) == 9 and all("cnn" not in m for m in models)
    winners = {v.name: config for v, _, config in run_configs(load_grid("winners"), "demo", [])}
    assert winners["winners"].features.families == "all,winners"  # their own cache
    assert winners["kit"].train.models == load_config("demo").train.models  # the defaults
    scenarios = load_grid("scenarios")
    assert len(scenarios.scenarios) >= 6 and scenarios.seeds == (1, 2)
    runs = run_configs(scenarios, "scenarios", [])
    assert {c.synthetic.interictal_hours for _, _, c in runs} == {12}  # hour effects matter
    assert {c.synthetic.preictal_hours for _, _, c in runs} == {6}
    bad = Grid((Variant("typo", ("cnn.epoch=3",)),), (1,))
    with pytest.raises(DeepSyncError, match="study variant typo: unknown setting cnn.epoch"):
        run_configs(bad, None, [])


def test_summarise_gives_the_mean_and_spread_over_seeds():
    runs = pd.DataFrame(
        {
            "variant": ["b", "b", "a", "a"],
            "seed": [1, 2, 1, 2],
            "model": ["cnn", "cnn", "baseline", "baseline"],
            "pooled": [0.6, 0.8, 0.7, 0.7],
            "calibrated": [0.5, 0.9, 0.75, 0.75],
            "calibration": ["none"] * 4,
            "seconds": [10.0, 20.0, 1.0, 3.0],
        }
    )
    table = summarise(runs, ["a", "b"])
    assert list(table["variant"]) == ["a", "b"]  # the grid's order
    b = table.iloc[1]
    assert b["seeds"] == 2 and b["pooled"] == pytest.approx(0.7)
    assert b["pooled sd"] == pytest.approx(0.1) and b["calibrated sd"] == pytest.approx(0.2)
    assert b["seconds"] == pytest.approx(15.0) and table.iloc[0]["pooled sd"] == 0


def test_a_two_variant_grid_on_the_tiny_set(tiny_cache, tiny_set, tmp_path):
    base, _ = tiny_cache
    grid_file = write_grid(
        tmp_path / "g.toml",
        'seeds = [1, 2]\n[variants.logistic]\n"train.models" = "baseline"\n'
        "[variants.spectrum]\n"
        + "".join(f'"{k}" = "{v}"\n' for k, v in (o.split("=") for o in SPECTRUM)),
    )
    grid = load_grid(grid_file)
    overrides = tiny_overrides(tiny_set, base, "train.run=tiny")
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = run_study(grid, None, overrides, out, progress=False)
    table = report.table
    assert list(zip(table["variant"], table["model"], strict=True)) == [
        ("logistic", "baseline"),
        ("spectrum", "baseline"),
        ("spectrum", "cnn"),
        ("spectrum", "blend"),
    ]
    assert (table["seeds"] == 2).all()
    runs_root = base / "runs" / "study" / "tiny"
    folds = [
        (runs_root / f"{v}-seed{s}" / "folds.csv").read_text()
        for v in grid_names(grid)
        for s in (1, 2)
    ]
    assert len(set(folds)) == 1  # every variant and seed on the same folds
    for s in (1, 2):  # the same baseline in both variants: trained once, linked once
        linked = runs_root / f"spectrum-seed{s}" / "baseline" / "oof.csv"
        assert os.path.samefile(linked, runs_root / f"logistic-seed{s}" / "baseline" / "oof.csv")
    cnn = [
        json.loads((runs_root / f"spectrum-seed{s}/cnn/metrics.json").read_text()) for s in (1, 2)
    ]
    row = table[table["model"] == "cnn"].iloc[0]
    assert row["pooled"] == pytest.approx((cnn[0]["pooled_auc"] + cnn[1]["pooled_auc"]) / 2)
    assert row["patient 1"] == pytest.approx(
        (cnn[0]["patients"]["1"]["auc"] + cnn[1]["patients"]["1"]["auc"]) / 2
    )
    configs = [
        json.loads((runs_root / f"spectrum-seed{s}/config.json").read_text()) for s in (1, 2)
    ]
    assert [c["settings"]["train"]["seed"] for c in configs] == [1, 2]
    assert configs[0]["settings"]["cnn"]["model"] == "spectrumnet"
    assert row["images/s"] > 0 and row["seconds"] > 0
    assert math.isnan(table[table["model"] == "baseline"].iloc[0]["images/s"])
    blends = []  # the blend's pooled figure: equal-weight rank average of the raw scores
    for s in (1, 2):
        oof = [
            pd.read_csv(runs_root / f"spectrum-seed{s}" / m / "oof.csv").set_index("segment")
            for m in ("baseline", "cnn")
        ]
        mean = rank_average([oof[0]["score"], oof[1]["score"].reindex(oof[0].index)])
        blends.append(auc(oof[0]["label"], mean))
    blend = table[table["model"] == "blend"].iloc[0]
    assert blend["pooled"] == pytest.approx(sum(blends) / 2)
    assert 0 <= blend["patient 1"] <= 1 and 0 <= blend["calibrated"] <= 1
    saved = pd.read_csv(out / "table.csv")
    assert list(saved["variant"]) == list(table["variant"])
    markdown = (out / "table.md").read_text()
    assert markdown.startswith("| variant | model | seeds |") and "| spectrum | blend |" in markdown
    page = (out / "index.html").read_text()
    assert "data:image/png;base64," in page and (out / "study.png").stat().st_size > 1000

    stamps = {p: p.stat().st_mtime_ns for p in runs_root.rglob("result.json")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = run_study(grid, None, overrides, out, progress=False)  # resumes: trains nothing
    assert stamps == {p: p.stat().st_mtime_ns for p in runs_root.rglob("result.json")}
    pd.testing.assert_frame_equal(again.table, table)

    wider = load_grid(  # the same variant with one more model: that model alone trains
        write_grid(
            tmp_path / "wider.toml",
            "seeds = [1, 2]\n[variants.spectrum]\n"
            + "".join(f'"{k}" = "{v}"\n' for k, v in (o.split("=") for o in SPECTRUM[:-1]))
            + '"train.models" = "baseline,cnn,logistic:stats"\n',
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grown_report = run_study(wider, None, overrides, out, progress=False)
    grown = grown_report.table
    assert stamps == {p: p.stat().st_mtime_ns for p in runs_root.rglob("result.json")}
    assert list(grown["model"]) == ["baseline", "cnn", "logistic:stats", "blend"]
    cnn_rows = [t[t["model"] == "cnn"].iloc[0] for t in (table, grown)]
    assert cnn_rows[0]["pooled"] == cnn_rows[1]["pooled"]
    run = runs_root / "spectrum-seed1"  # a run's seconds: its models' fitting times
    parts = [
        json.loads((run / m / "metrics.json").read_text())["seconds"]
        for m in ("baseline", "cnn", "logistic-stats")
    ]
    rows = grown_report.runs
    assert rows.loc[rows["seed"] == 1, "seconds"].iloc[0] == pytest.approx(sum(parts))
    assert min(parts) > 0


def grid_names(grid):
    return [v.name for v in grid.variants]


def test_a_scenario_grid_makes_a_set_per_scenario_and_one_table(tmp_path):
    grid = load_grid(
        write_grid(
            tmp_path / "s.toml",
            'scenarios = ["synchrony", "spikes"]\nseeds = [1]\n'
            '[variants.kit]\n"train.models" = "baseline,logistic:share"\n',
        )
    )
    assert grid.scenarios == ("synchrony", "spikes")
    overrides = [
        f"data.root={tmp_path}/data",
        f"features.cache_root={tmp_path}/cache",
        f"train.runs_root={tmp_path}/runs",
        f"submit.folder={tmp_path}/submissions",
        "train.folds=2",
        "train.run=tiny",
        *(
            f"synthetic.{k}={v}"
            for k, v in dict(
                seed=5,
                patients=2,
                interictal_hours=3,
                preictal_hours=2,
                test_hours=1,
                extra_preictal=1,
                seconds=20,
            ).items()
        ),
    ]
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = run_study(grid, None, overrides, out, workers=1, progress=False)
    for scenario in grid.scenarios:  # each set its own, made by the study itself
        made = json.loads(
            (tmp_path / f"data/tiny/{scenario}-1/synthetic/SYNTHETIC.json").read_text()
        )
        assert made["settings"]["scenario"] == scenario and made["settings"]["seed"] == 6
        assert (tmp_path / f"cache/tiny/{scenario}-1").is_dir()
    table = report.table.set_index(["variant", "model"])
    assert list(table.index) == [
        ("kit", m) for m in ("baseline", "logistic:share", "blend", "submission")
    ]
    assert list(table.columns[:3]) == ["seeds", "synchrony", "spikes"]
    runs = report.runs
    for scenario in grid.scenarios:
        metrics = json.loads(
            (tmp_path / f"runs/study/tiny-{scenario}-1/kit-seed1/baseline/metrics.json").read_text()
        )
        row = runs[(runs["scenario"] == scenario) & (runs["model"] == "baseline")].iloc[0]
        assert row["pooled"] == pytest.approx(metrics["pooled_auc"])
        assert table.loc[("kit", "baseline"), scenario] == pytest.approx(row["calibrated"])
        sent = runs[runs["scenario"] == scenario]["calibrated"].max()  # what submit would send
        assert table.loc[("kit", "submission"), scenario] == pytest.approx(sent)
    values = table[["synchrony", "spikes"]]
    assert (table["mean"] == values.mean(axis=1)).all()
    assert (table["worst"] == values.min(axis=1)).all()
    assert table.loc[("kit", "baseline"), "vs baseline, least"] == 0
    assert table.loc[("kit", "submission"), "vs baseline, least"] >= 0  # it may send baseline
    assert table.loc[("kit", "submission"), "sent"]
    assert "| kit | submission |" in (out / "table.md").read_text()

    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("result.json")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = run_study(grid, None, overrides, out, workers=1, progress=False)
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("result.json")}
    pd.testing.assert_frame_equal(again.table, report.table)
    with pytest.raises(DeepSyncError, match="no scenario bursts"):
        pick(grid, scenarios="bursts")
    assert pick(grid, scenarios="spikes").scenarios == ("spikes",)
    with pytest.raises(DeepSyncError, match="has no scenarios"):
        pick(load_grid(), scenarios="spikes")
