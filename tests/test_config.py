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
