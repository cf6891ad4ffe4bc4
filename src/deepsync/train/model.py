"""The CNN: any timm model with 16 input channels and one logit, optionally pretrained.

ImageNet weights come from a local file (``cnn.pretrained_file``) or, with
``cnn.pretrained_hub``, from timm's Hugging Face cache (offline with ``HF_HUB_OFFLINE=1``);
timm adapts the first convolution from 3 to 16 channels. Without either the model starts
from random weights, with a warning. Freezing strategies let users compare: ``none``,
``backbone`` (only the classifier learns) and ``first_and_head`` (the 2020 project: first
convolution and classifier learn, everything between stays frozen).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from deepsync.config import CnnConfig
from deepsync.errors import DeepSyncError
from deepsync.train import spectral

CHANNELS = 16

# The kit's own models, by name, beside timm's: each takes in_chans, num_classes and
# drop_rate as timm's do. A new one is one line here.
KIT_MODELS: dict[str, Callable[..., nn.Module]] = {
    "electrodenet": functools.partial(spectral.ElectrodeNet, width=8),
    "electrodenet_wide": functools.partial(spectral.ElectrodeNet, width=16),
    "spectrumnet": functools.partial(spectral.SpectrumNet, width=8),
    "spectrumnet_wide": functools.partial(spectral.SpectrumNet, width=16),
    "crossnet": functools.partial(spectral.CrossSpectrumNet, width=16),
}


class PretrainedWeightsWarning(UserWarning):
    """No ImageNet weights given: the CNN starts from random initialisation."""


def check_model_name(name: str) -> None:
    """Fail at once, with close names, on a model neither the kit nor timm knows."""
    if name in KIT_MODELS:
        return
    import timm

    if not timm.is_model(name):
        stem = name.split("_")[0]
        close = [k for k in KIT_MODELS if stem in k] + timm.list_models(f"*{stem}*")[:8]
        raise DeepSyncError(
            f"cnn.model={name!r} is not a timm model nor one of the kit's "
            f"({', '.join(KIT_MODELS)})" + (f"; close names: {', '.join(close)}" if close else "")
        )


class StackClassifier(nn.Module):
    """Resize (when asked) then the timm model; returns one logit per stack."""

    def __init__(self, backbone: nn.Module, size: tuple[int, int] | None):
        super().__init__()
        self.backbone, self.size = backbone, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            x = nn.functional.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return self.backbone(x).squeeze(-1)


def build_model(cfg: CnnConfig, size: tuple[int, int] | None = None) -> StackClassifier:
    """The configured model (the kit's or timm's), weights loaded or randomly initialised,
    freezing applied."""
    check_model_name(cfg.model)
    kwargs: dict = {"in_chans": CHANNELS, "num_classes": 1}
    if cfg.drop_rate:
        kwargs["drop_rate"] = cfg.drop_rate
    if cfg.model in KIT_MODELS:
        if cfg.pretrained_file is not None or cfg.pretrained_hub:
            raise DeepSyncError(
                f"cnn.model={cfg.model} is the kit's own model and has no ImageNet weights; "
                "unset cnn.pretrained_file and cnn.pretrained_hub, or pick a timm model"
            )
        backbone = KIT_MODELS[cfg.model](**kwargs)
        freeze(backbone, cfg.freeze)
        return StackClassifier(backbone, size)
    import timm

    if cfg.pretrained_file is not None:
        path = Path(cfg.pretrained_file)
        if not path.is_file():
            raise DeepSyncError(
                f"cnn.pretrained_file={path} does not exist; give the path of the "
                f"ImageNet weights (.safetensors or .pth) or leave it unset for random init"
            )
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    elif cfg.pretrained_hub:
        kwargs["pretrained"] = True
    else:
        warnings.warn(
            f"no pretrained weights (cnn.pretrained_file or cnn.pretrained_hub): {cfg.model} "
            "starts from random init",
            PretrainedWeightsWarning,
            stacklevel=2,
        )
    try:
        backbone = timm.create_model(cfg.model, **kwargs)
    except Exception as error:  # hub: no cache and no network; file: not these weights
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        where = (
            f"file {cfg.pretrained_file}"
            if cfg.pretrained_file is not None
            else "the Hugging Face cache (HF_HOME)"
            if cfg.pretrained_hub
            else "timm"
        )
        raise DeepSyncError(
            f"cannot build {cfg.model} with weights from {where}: {first}; give "
            "cnn.pretrained_file=/path/to/weights or leave both unset for random init"
        ) from None
    freeze(backbone, cfg.freeze)
    return StackClassifier(backbone, size)


def freeze(backbone: nn.Module, strategy: str) -> None:
    """Turn off gradients by ``strategy``: none | backbone | first_and_head."""
    if strategy == "none":
        return
    learn = {id(p) for p in backbone.get_classifier().parameters()}
    if strategy == "first_and_head":
        first = next(m for m in backbone.modules() if isinstance(m, nn.Conv2d))
        learn |= {id(p) for p in first.parameters()}
    for parameter in backbone.parameters():
        parameter.requires_grad_(id(parameter) in learn)


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
