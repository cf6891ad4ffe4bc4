"""The run folder module: what a run holds, and runs it cannot trust said in one line."""

import json

import pytest

from deepsync.config import Config
from deepsync.errors import DeepSyncError
from deepsync.runs import claim, run_settings, trained_models


def test_a_run_without_its_list_of_models_is_a_one_line_error(tmp_path):
    assert trained_models(tmp_path / "not-started") == {}
    run = tmp_path / "old"
    (run / "baseline").mkdir(parents=True)
    for text in (json.dumps({"settings": {}}), "[]"):  # an older kit's, or not an object
        (run / "config.json").write_text(text)
        with pytest.raises(DeepSyncError, match="lists no trained models") as error:
            trained_models(run)
        assert "\n" not in str(error.value) and "train.run" in str(error.value)


def test_a_setting_the_kit_no_longer_records_is_named_when_a_run_is_refused(tmp_path):
    config = Config()
    claim(tmp_path, config)  # a new run: config.json written
    claim(tmp_path, config)  # the same settings: accepted
    described = json.loads((tmp_path / "config.json").read_text())
    described["settings"]["train"]["models"] = "baseline"  # as older kits recorded it
    (tmp_path / "config.json").write_text(json.dumps(described))
    with pytest.raises(DeepSyncError, match=r"other settings \(train\.models\)"):
        claim(tmp_path, config)
    assert "models" not in run_settings(config)["train"]
