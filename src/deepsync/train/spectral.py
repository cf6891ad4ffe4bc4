"""Compact CNNs made for 16-electrode log-spectrogram stacks, sized for ~1,000 stacks.

An ImageNet backbone sees the 16 electrodes as 16 colours of one picture and has tens of
millions of weights to fit on a few hundred stacks. `ElectrodeNet` instead runs one small
2-D convolution stack on each electrode's spectrogram with weights shared by all
electrodes (16 times the examples for the same weights), averages its feature maps over
time (a band's power over the segment or window is what carries the preictal signal),
keeps the frequency axis at a coarse resolution (which band changed matters), and reads
every electrode's features with one linear head, so electrodes keep their identity.
Tens of thousands of weights; a CPU trains it in seconds per epoch.

The models are registered by name in `deepsync.train.model` (``cnn.model=electrodenet``)
beside timm's; they expose timm's ``get_classifier`` so freezing strategies apply.
"""

from __future__ import annotations

import torch
from torch import nn


class _CompactNet(nn.Module):
    """What the compact nets share: timm's constructor arguments (``in_chans``,
    ``num_classes``, ``drop_rate``), their own sizes, dropout and one linear head read
    by timm's ``get_classifier``. A subclass builds its body (`_body`: the number of
    features the head reads) before the head, so the weights draw in that order."""

    DEPTH = 2  # blocks, when ``depth`` is not given

    def __init__(
        self,
        in_chans: int = 16,
        num_classes: int = 1,
        *,
        width: int = 8,
        depth: int | None = None,
        bands_out: int = 8,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        self.in_chans, self.width, self.bands_out = in_chans, width, bands_out
        self.depth = self.DEPTH if depth is None else depth
        self.features = self._body()
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.features, num_classes)

    def _body(self) -> int:
        raise NotImplementedError

    def get_classifier(self) -> nn.Module:
        return self.head


class ElectrodeNet(_CompactNet):
    """(N, C, bands, frames) -> (N, 1) logit.

    ``width``: channels of the first convolution, doubled at each of ``depth`` blocks
    (conv 3x3, batch norm, ReLU, 2x2 max pool). ``bands_out``: frequency cells kept per
    electrode after pooling over time. ``drop_rate``: dropout before the head.
    """

    DEPTH = 3

    def _body(self) -> int:
        layers, channels = _conv_blocks(2, 1, self.width, self.depth, kernel=3)
        self.electrode = nn.Sequential(*layers)  # one electrode: (1, bands, frames) in
        self.pool = nn.AdaptiveAvgPool2d((self.bands_out, 1))  # time averaged, bands coarse
        return self.in_chans * channels * self.bands_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, bands, frames = x.shape
        maps = self.electrode(x.reshape(n * c, 1, bands, frames))
        per_electrode = self.pool(maps).reshape(n, -1)
        return self.head(self.drop(per_electrode))


class SpectrumNet(_CompactNet):
    """(N, C, bands, frames) -> (N, 1) logit, from each electrode's spectrum over time.

    Per electrode, the mean and the standard deviation over time of every band (two
    1-D signals over frequency) go through ``depth`` shared 1-D convolution blocks over
    the frequency axis (conv 5, batch norm, ReLU, pool 2), which learn which bands and
    which band contrasts matter; their maps, pooled to ``bands_out`` cells, are averaged
    and max-pooled over electrodes (a signature anywhere counts, and any electrode
    order works), and one linear head reads them. A few thousand weights: it fits a
    few dozen segments per fold without memorising them.
    """

    def _body(self) -> int:
        self.spectrum, channels = _frequency_blocks(self.width, self.depth, self.bands_out)
        return 2 * channels * self.bands_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.electrodes(x.float())))

    def electrodes(self, x: torch.Tensor) -> torch.Tensor:
        """(N, features): each electrode's spectrum profile, pooled over electrodes."""
        n, c, bands, _ = x.shape
        profile = torch.stack((x.mean(dim=-1), x.std(dim=-1)), dim=2)  # (N, C, 2, bands)
        maps = self.spectrum(profile.reshape(n * c, 2, bands)).reshape(n, c, -1)
        return torch.cat((maps.mean(dim=1), maps.amax(dim=1)), dim=1)


class CrossSpectrumNet(SpectrumNet):
    """SpectrumNet, and how the electrodes' band powers move together over time.

    Per band, the correlation over the stack's frames of every pair of electrodes' log
    power: its mean over all pairs and the mean of the ``top`` most correlated pairs
    (sorted values: any electrode order works), two 1-D signals over frequency through
    their own shared convolution blocks, read by the head beside the electrodes'
    profiles. A group of electrodes that shares a rhythm (synchrony at unchanged power)
    moves together in its band while each electrode's spectrum stays the same: the
    electrode branch alone cannot see it. Per-electrode-and-band normalisation leaves the
    correlations as they are.
    """

    def __init__(self, in_chans: int = 16, num_classes: int = 1, *, top: int = 15, **sizes):
        """``sizes``: SpectrumNet's (width, depth, bands_out, drop_rate)."""
        super().__init__(in_chans, num_classes, **sizes)
        # built after SpectrumNet's head (the weights draw in this order), then a new head
        self.cross, channels = _frequency_blocks(self.width, self.depth, self.bands_out)
        self.top = top
        self.features += channels * self.bands_out
        self.head = nn.Linear(self.features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return self.head(self.drop(torch.cat((self.electrodes(x), self.together(x)), dim=1)))

    def together(self, x: torch.Tensor) -> torch.Tensor:
        """(N, features): per band, the mean and top pair correlations of log power."""
        n, c, bands, _ = x.shape
        z = x - x.mean(dim=-1, keepdim=True)
        z = z / (z.norm(dim=-1, keepdim=True) + 1e-6)
        upper = torch.triu_indices(c, c, 1, device=x.device)
        pairs = torch.einsum("nibt,njbt->nbij", z, z)[:, :, upper[0], upper[1]]  # (N, B, P)
        top = pairs.topk(min(self.top, pairs.shape[-1]), dim=-1).values.mean(dim=-1)
        profile = torch.stack((pairs.mean(dim=-1), top), dim=1)  # (N, 2, bands)
        return self.cross(profile).reshape(n, -1)


def _frequency_blocks(width: int, depth: int, bands_out: int) -> tuple[nn.Sequential, int]:
    """``depth`` 1-D blocks over frequency (conv 5, batch norm, ReLU, pool 2) from 2
    signals, pooled to ``bands_out`` cells; and their output channels."""
    layers, channels = _conv_blocks(1, 2, width, depth, kernel=5)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(bands_out)), channels


def _conv_blocks(
    dims: int, channels: int, width: int, depth: int, *, kernel: int
) -> tuple[list[nn.Module], int]:
    """``depth`` blocks (conv, batch norm, ReLU, max pool 2) in 1 or 2 dimensions from
    ``channels``, ``width`` channels doubled at each; and their output channels."""
    conv, norm, pool = {
        1: (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d),
        2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d),
    }[dims]
    layers: list[nn.Module] = []
    for block in range(depth):
        out = width * 2**block
        layers += [
            conv(channels, out, kernel, padding=kernel // 2, bias=False),
            norm(out),
            nn.ReLU(inplace=True),
            pool(2, ceil_mode=True),
        ]
        channels = out
    return layers, channels
