from pathlib import Path

import pytest

from deepsync.config import Config, load_config
from deepsync.errors import DeepSyncError


def test_defaults_are_the_synthetic_source():
    config = load_config()
    assert config == Config()
    assert config.data.source == "synthetic"


def test_overrides_are_typed():
    config = load_config(
        overrides=[
            "synthetic.seconds=30",
            "data.root=/tmp/x",
            "data.source=dir",
            "data.data_dir=/d",
        ]
    )
    assert config.synthetic.seconds == 30
    assert config.data.root == Path("/tmp/x")
    assert config.data.data_dir == Path("/d")


def test_profile_then_overrides(tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_text("[synthetic]\nseed = 11\nseconds = 60\n")
    config = load_config(profile, ["synthetic.seconds=90"])
    assert (config.synthetic.seed, config.synthetic.seconds) == (11, 90)


@pytest.mark.parametrize(
    "override, message",
    [
        ("synthetic.secs=3", "valid: synthetic.seed"),
        ("nosuch.key=3", "valid sections: data, synthetic, features, train, baseline, cnn"),
        ("synthetic.seconds=ten", "not a valid int"),
        ("synthetic.seconds=2.5", "not a valid int"),
        ("synthetic.seconds=601", "between 1 and 600"),
        ("data.source=ftp", "not one of synthetic, kaggle, dir"),
        ("data.source=dir", "DATA_DIR"),
        ("data.kaggle_dataset=noslash", "owner/slug"),
        ("seconds", "section.key=value"),
        ("train.models=baseline,rnn", "baseline | cnn"),
        ("train.folds=1", "at least 2"),
        ("train.patients=one", "1,3"),
        ("train.patients=1,-3", "train.patients='1,-3' must look like 1,3"),
        ("kernels.patients=2,x", "kernels.patients='2,x' must look like 1,3"),
        ("submit.blend_weights=2,-1", "must look like 2,1,1"),
        ("submit.blend_weights=a,b", "must look like 2,1,1"),
        ("submit.blend=baseline,rnn", "entry 'rnn'"),
        ("features.families=power,colour", "features.families='power,colour': use all"),
        ("train.patients=1,,3", "train.patients='1,,3' must look like 1,3"),
        ("train.patients=²", "must look like 1,3"),
        ("submit.blend_weights=2,,1", "must look like 2,1,1"),
        ("train.models=baseline,,cnn", "entry '': use baseline"),
        ("cnn.freeze=all", "none | backbone | first_and_head"),
        ("cnn.combine=median", "max | mean | std"),
        ("cnn.window_frames=500", "exceeds features.frames"),
        ("cnn.lr=0", "lr must be positive"),
        ("baseline.estimator=gbm", "unknown setting baseline.estimator; valid: baseline."),
    ],
)
def test_bad_settings_say_what_is_valid(override, message):
    with pytest.raises(DeepSyncError, match=message):
        load_config(overrides=[override])


def test_profile_type_checked(tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_text('[synthetic]\nseed = "x"\n')
    with pytest.raises(DeepSyncError, match="synthetic.seed"):
        load_config(profile)
    with pytest.raises(DeepSyncError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    "name",
    [
        "demo",
        "demo-inception",
        "gpu",
        "gpu-inception",
        "nuisance",
        "nuisance-long",
        "scenarios",
        "study",
        "winners",
    ],
)
def test_named_profiles_load_and_name_their_run(name):
    config = load_config(name)
    assert config.train.run == name
    assert load_config(name, [f"train.run={name}2"]).train.run == f"{name}2"


def test_an_unknown_profile_lists_the_named_ones():
    with pytest.raises(
        DeepSyncError,
        match="named profiles: demo, demo-inception, gpu, gpu-inception, nuisance, "
        "nuisance-long, scenarios, study, winners",
    ):
        load_config("nosuch")


def test_to_dict_is_plain():
    assert load_config().to_dict()["data"]["root"] == "data"


def test_list_settings_are_parsed_once_into_typed_values():
    """Comma lists stay as written (what config.json and the cache's key record) and are
    read through typed views, parsed and checked in config.py alone."""
    config = load_config(
        overrides=[
            "train.models=baseline, knn ,gbm:power+corr",
            "train.patients=3,1",
            "features.families=winners,power",
            "submit.blend=baseline,knn",
            "submit.blend_weights=2,0.5",
            "kernels.patients=2",
        ]
    )
    specs = config.train.model_specs
    assert [(m.name, m.estimator, m.families) for m in specs] == [
        ("baseline", "ag_rlp_xgb", ("rlp",)),
        ("knn:share", "knn", ("share",)),
        ("gbm:power+corr", "gbm", ("power", "corr")),
    ]
    assert config.train.patient_numbers == (3, 1) and config.kernels.patient_numbers == (2,)
    assert config.features.family_names == ("power", "rlp", "xfcoh", "feng", "fengmore")
    assert [m.name for m in config.submit.blend_specs] == ["baseline", "knn:share"]
    assert config.submit.weights == (2.0, 0.5)
    assert config.train.model_specs is specs  # parsed once
    assert config.to_dict()["train"]["models"] == "baseline, knn ,gbm:power+corr"
    empty = load_config(overrides=["train.patients=", "submit.blend_weights="])
    assert empty.train.patient_numbers == () and empty.submit.weights == ()


def test_each_section_checks_itself():
    import dataclasses

    config = Config()
    for f in dataclasses.fields(config):
        getattr(config, f.name).check()  # every default is valid on its own
    bad = {
        "train": {"folds": 1},
        "cnn": {"combine": "median"},
        "submit": {"tta": 17},
        "kernels": {"dataset": "noslash"},
        "features": {"families": "colour"},
        "baseline": {"neighbours": 0},
    }
    for section, change in bad.items():
        with pytest.raises(DeepSyncError, match=f"{section}\\."):
            dataclasses.replace(getattr(config, section), **change).check()
