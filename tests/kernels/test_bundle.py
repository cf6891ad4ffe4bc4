"""Rendered bundles: the metadata Kaggle reads, a script that carries the package, no secrets."""

import ast
import base64
import dataclasses
import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from deepsync.config import load_config
from deepsync.errors import DeepSyncError
from deepsync.kernels import bundle
from tests.conftest import KEY


def configured(tmp_path, *extra):
    return load_config(
        "gpu",
        [
            f"kernels.folder={tmp_path}/kernels",
            f"data.root={tmp_path}/data",
            f"data.data_dir={tmp_path}/somewhere",
            "cnn.model=inception_resnet_v2",  # the pretrained path, as gpu-inception has it
            "cnn.input_height=299",
            "cnn.input_width=299",
            f"cnn.pretrained_file={tmp_path}/weights/inception_resnet_v2.safetensors",
            "kernels.weights_dataset=someone/irv2-weights",
            *extra,
        ],
    )


@pytest.fixture
def three(tmp_path):
    config = configured(tmp_path, "kernels.patients=1,2,3")
    return config, bundle.render(config, "tester")


def payload_files(script: str) -> dict[str, bytes]:
    lines = re.search(r"PAYLOAD = \(\n(.*?)\n\)", script, re.S).group(1)
    data = base64.b64decode("".join(re.findall(r'"([^"]*)"', lines)))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}


def script_constant(script: str, name: str):
    """The value expression assigned to ``name`` at the script's top level."""
    for node in ast.parse(script).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == name:
            return node.value
    raise AssertionError(f"{name} not in the script")


def test_one_bundle_per_patient_with_kaggle_s_metadata(three):
    config, bundles = three
    assert [b.patients for b in bundles] == [[1], [2], [3]]
    from slugify import slugify  # the kaggle client's own, which push checks the id against

    for made in bundles:
        meta = json.loads((made.folder / bundle.METADATA).read_text())
        assert meta["id"] == made.kernel and meta["id"].startswith("tester/")
        assert slugify(meta["title"]) == made.slug and len(meta["title"]) >= 5
        assert (made.folder / meta["code_file"]).is_file()
        assert meta["language"] == "python" and meta["kernel_type"] == "script"
        assert meta["is_private"] is True and meta["enable_internet"] is False
        assert meta["enable_gpu"] is True and meta["machine_shape"] == "NvidiaTeslaT4"
        assert meta["dataset_sources"] == ["tester/deepsync-gpu-input", "someone/irv2-weights"]
        assert meta["competition_sources"] == ["melbourne-university-seizure-prediction"]
    listed = json.loads((Path(config.kernels.folder) / bundle.MANIFEST).read_text())
    assert [e["kernel"] for e in listed["bundles"]] == [b.kernel for b in bundles]
    assert bundle.load(config) == bundles
    other = dataclasses.replace(config, train=dataclasses.replace(config.train, run="other"))
    with pytest.raises(DeepSyncError, match="give the same PROFILE and SET"):
        bundle.load(other)


def test_the_script_carries_the_package_and_the_settings(three):
    _, bundles = three
    script = (bundles[0].folder / f"{bundles[0].slug}.py").read_text()
    files = payload_files(script)
    assert "deepsync/kernels/entry.py" in files and "deepsync/train/cnn.py" in files
    assert "deepsync/profiles/gpu.toml" in files
    assert "deepsync/data/reference/sample_submission.csv" in files
    assert not any("__pycache__" in name or name.endswith(".tsv") for name in files)
    assert "deepsync/pipeline.py" in files  # what entry.py runs
    assert not any(name.startswith("deepsync/bench/") for name in files)  # never run there
    settings = json.loads(
        re.search(r"SETTINGS = json.loads\(\n    (.*)\n\)", script).group(1)[1:-1]
    )
    assert settings["cnn"]["input_height"] == 299  # the gpu profile it was rendered with
    assert settings["cnn"]["pretrained_file"] == "inception_resnet_v2.safetensors"  # a name only
    assert "data" not in settings and "kernels" not in settings
    assert "PATIENTS = [1]" in script


def test_no_credential_or_local_path_in_any_bundle(three, tmp_path, monkeypatch):
    _, bundles = three
    here = str(Path(__file__).resolve().parents[2])
    for made in bundles:
        for path in made.folder.iterdir():
            text = path.read_text()
            texts = [text] + (
                [b.decode("utf-8", "replace") for b in payload_files(text).values()]
                if path.suffix == ".py"
                else []
            )
            for content in texts:
                for secret in (KEY, str(tmp_path), here, str(Path.home()), '"key": "'):
                    assert secret not in content, (path.name, secret)


def test_rendering_is_reproducible(tmp_path):
    config = configured(tmp_path)
    (first,) = bundle.render(config, "tester")
    before = (first.folder / f"{first.slug}.py").read_bytes()
    (again,) = bundle.render(config, "tester")
    assert (again.folder / f"{again.slug}.py").read_bytes() == before
    assert again.patients is None and again.slug == "deepsync-gpu"


def test_a_missing_user_name_says_how_to_give_it(tmp_path):
    with pytest.raises(DeepSyncError, match="kernels.user=NAME or KAGGLE_USERNAME"):
        bundle.render(configured(tmp_path), "")
    with pytest.raises(DeepSyncError, match="run `make kernel` first"):
        bundle.load(configured(tmp_path))
