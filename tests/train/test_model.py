"""The timm CNN: 16 channels in, one logit out; weights from a file; freezing strategies."""

import dataclasses

import pytest
import torch
from torch import nn

from deepsync.config import CnnConfig
from deepsync.errors import DeepSyncError
from deepsync.train.model import PretrainedWeightsWarning, build_model, trainable

pytestmark = pytest.mark.filterwarnings("ignore::deepsync.train.model.PretrainedWeightsWarning")


def test_inception_resnet_v2_takes_16_channel_stacks():
    with pytest.warns(PretrainedWeightsWarning, match="random init"):
        model = build_model(CnnConfig())
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 16, 80, 144))
    assert out.shape == (2,)
    assert type(model.backbone).__name__ == "InceptionResnetV2"


def test_resize_to_the_configured_input():
    seen = []
    model = build_model(CnnConfig(model="test_resnet"), size=(96, 96))
    model.backbone.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    model(torch.randn(1, 16, 80, 144))
    assert seen[0] == (1, 16, 96, 96)


def first_conv(module):
    return next(m for m in module.modules() if isinstance(m, nn.Conv2d))


def test_freezing_strategies():
    sizes = {}
    for strategy in ("none", "backbone", "first_and_head"):
        model = build_model(CnnConfig(model="test_resnet", freeze=strategy))
        sizes[strategy] = trainable(model)
        head = model.backbone.get_classifier()
        assert all(p.requires_grad for p in head.parameters())
        conv = first_conv(model.backbone)
        assert conv.weight.requires_grad == (strategy != "backbone")
    total = sizes["none"]
    assert sizes["backbone"] < sizes["first_and_head"] < total


def test_pretrained_weights_from_a_local_file_adapted_to_16_channels(tmp_path):
    import timm

    imagenet = timm.create_model("test_resnet", num_classes=1000)  # 3 channels, like the hub file
    path = tmp_path / "weights.pth"
    torch.save(imagenet.state_dict(), path)
    model = build_model(CnnConfig(model="test_resnet", pretrained_file=path))
    rgb = first_conv(imagenet).weight.detach()
    adapted = first_conv(model.backbone).weight.detach()
    assert adapted.shape[1] == 16
    expected = rgb.repeat(1, 6, 1, 1)[:, :16] * (3 / 16)  # timm repeats RGB and rescales
    assert torch.allclose(adapted, expected)
    conv = first_conv(imagenet)
    later = [m for m in imagenet.modules() if isinstance(m, nn.Conv2d)][-1]
    mine = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)][-1]
    assert conv is not later and torch.equal(later.weight, mine.weight)


def test_unknown_model_and_missing_weights_are_one_line_errors(tmp_path):
    with pytest.raises(DeepSyncError, match="not a timm model"):
        build_model(CnnConfig(model="inception_resnet_v9"))
    cfg = dataclasses.replace(CnnConfig(), pretrained_file=tmp_path / "nope.safetensors")
    with pytest.raises(DeepSyncError, match="does not exist"):
        build_model(cfg)


def test_unusable_weights_are_one_line_errors(tmp_path, monkeypatch):
    garbage = tmp_path / "weights.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(DeepSyncError, match="with weights from file .*weights.pth"):
        build_model(CnnConfig(model="test_resnet", pretrained_file=garbage))

    import timm

    def offline(*args, **kwargs):  # what the hub client raises with no cache and no network
        assert kwargs.get("pretrained") is True
        raise OSError("We couldn't connect to 'https://huggingface.co'\nmore lines")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(DeepSyncError, match=r"Hugging Face cache \(HF_HOME\): We couldn't connect"):
        build_model(CnnConfig(model="test_resnet", pretrained_hub=True))


@pytest.mark.parametrize("name", ["spectrumnet", "spectrumnet_wide", "electrodenet", "crossnet"])
def test_the_kits_compact_models_take_stacks_of_any_size(name):
    model = build_model(CnnConfig(model=name))
    model.eval()
    with torch.no_grad():
        for shape in ((3, 16, 80, 144), (2, 16, 128, 36)):
            assert model(torch.randn(*shape)).shape == (shape[0],)
    assert trainable(model) < 200_000  # sized for a few hundred stacks, not ImageNet


def test_spectrumnet_ignores_electrode_order_and_time_order():
    torch.manual_seed(0)
    model = build_model(CnnConfig(model="spectrumnet")).eval()
    x = torch.randn(2, 16, 80, 144)
    with torch.no_grad():
        out = model(x)
        shuffled = model(x[:, torch.randperm(16)][..., torch.randperm(144)])
        changed = model(x + torch.linspace(0, 2, 80)[:, None])  # a different spectrum
    assert torch.allclose(out, shuffled, atol=1e-5)
    assert not torch.allclose(out, changed, atol=1e-3)


def test_crossnet_sees_electrodes_moving_together_that_spectrumnet_cannot():
    torch.manual_seed(0)
    cross = build_model(CnnConfig(model="crossnet")).eval()
    alone = build_model(CnnConfig(model="spectrumnet_wide")).eval()
    own, common = torch.randn(2, 16, 80, 144), torch.randn(2, 1, 80, 144)
    together = own.clone()  # six electrodes share a part, each one's mean and spread as before
    together[:, :6] = 0.6 * own[:, :6] + 0.8 * common
    together[:, :6] = (together[:, :6] - together[:, :6].mean(-1, keepdim=True)) / together[
        :, :6
    ].std(-1, keepdim=True) * own[:, :6].std(-1, keepdim=True) + own[:, :6].mean(-1, keepdim=True)
    with torch.no_grad():
        assert torch.allclose(alone(own), alone(together), atol=1e-4)  # blind to it
        mean_pair = [cross.backbone.together(x)[0].abs().sum() for x in (own, together)]
        assert not torch.allclose(cross(own), cross(together), atol=1e-3)
        assert mean_pair[0] != mean_pair[1]
        shuffled = cross(together[:, torch.randperm(16)][..., torch.randperm(144)])
    assert torch.allclose(cross(together), shuffled, atol=1e-4)  # any order of both


def test_kit_models_are_registered_and_freeze_like_timms(tmp_path):
    from deepsync.train.model import KIT_MODELS, check_model_name

    for name in KIT_MODELS:
        check_model_name(name)
    with pytest.raises(DeepSyncError, match="close names: spectrumnet"):
        check_model_name("spectrumnet_huge")
    head_only = build_model(CnnConfig(model="spectrumnet", freeze="backbone"))
    assert trainable(head_only) == sum(
        p.numel() for p in head_only.backbone.get_classifier().parameters()
    )
    with pytest.raises(DeepSyncError, match="kit's own model and has no ImageNet weights"):
        build_model(CnnConfig(model="spectrumnet", pretrained_file=tmp_path / "w.pth"))


def test_drop_rate_reaches_the_model_and_is_checked():
    from deepsync.config import load_config

    dropped = build_model(CnnConfig(model="spectrumnet", drop_rate=0.3))
    assert [m.p for m in dropped.modules() if isinstance(m, nn.Dropout)] == [0.3]
    timm_model = build_model(CnnConfig(model="test_resnet", drop_rate=0.3))
    assert timm_model.backbone.drop_rate == 0.3
    with pytest.raises(DeepSyncError, match="cnn.drop_rate=1.0 must be in"):
        load_config(overrides=["cnn.drop_rate=1"])
