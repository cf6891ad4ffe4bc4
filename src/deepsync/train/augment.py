"""Augmentations of normalised 16-electrode log-spectrogram stacks: drawn per stack, run per batch.

Each training stack's augmentation is drawn on the CPU from that stack's own seed
(`draw`: PARAMS numbers, microseconds), and `apply` runs it on the whole batch on the
training device, after normalisation. The loader workers then only copy float16 stacks
out of the memory-mapped cache, and a GPU does the arithmetic in a fraction of a step.
The order: time shift, electrode gain, then masks.

Kept: SpecAugment-style time and frequency masks (filled with 0, the training mean; one
or two of each, as albumentations' ``XYMasking(num_masks_x=(1, 2), ...)``), a time shift
that wraps around (a 10-minute segment has no privileged start) and a small
per-electrode gain (an offset in log power: amplifier gain or contact impedance differs a
little from day to day). Each of the three is applied to half of the stacks. Left out on
purpose: anything that clips to [0, 1] (noise, brightness, blur), colour transforms,
gamma (NaN on negatives) and flips (time and frequency have a direction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepsync.train.model import CHANNELS

MASKS = 2  # at most this many time masks, and this many frequency masks, per stack
SHIFT, TIME_MASKS, BAND_MASKS, GAINS = 0, 1, 1 + 2 * MASKS, 1 + 4 * MASKS
PARAMS = GAINS + CHANNELS  # shift; (start, length) per time mask, then per band mask; gains


@dataclass(frozen=True)
class AugmentLimits:
    """How far each augmentation may go on (bands, frames) stacks."""

    shift: int  # frames, either way
    time_mask: int  # longest time mask, frames
    band_mask: int  # longest frequency mask, bands
    gain: float = 0.2  # per-electrode offset, normalised units, either way
    p: float = 0.5  # each augmentation's probability

    @classmethod
    def for_stack(cls, bands: int, frames: int) -> AugmentLimits:
        return cls(
            shift=max(1, frames // 8), time_mask=max(1, frames // 10), band_mask=max(1, bands // 10)
        )


def draw(rng: np.random.Generator, bands: int, frames: int, limits: AugmentLimits) -> np.ndarray:
    """One stack's augmentation: float32 (PARAMS,), zeros where an augmentation is off."""
    params = np.zeros(PARAMS, np.float32)
    if rng.random() < limits.p:
        params[SHIFT] = rng.integers(-limits.shift, limits.shift + 1)
    if rng.random() < limits.p:
        for first, size, longest in (
            (TIME_MASKS, frames, limits.time_mask),
            (BAND_MASKS, bands, limits.band_mask),
        ):
            for k in range(int(rng.integers(1, MASKS + 1))):
                length = int(rng.integers(1, min(longest, size) + 1))
                params[first + 2 * k : first + 2 * k + 2] = (
                    rng.integers(0, size - length + 1),
                    length,
                )
    if rng.random() < limits.p:
        params[GAINS:] = rng.uniform(-limits.gain, limits.gain, CHANNELS)
    return params


def apply(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Batch ``x`` (N, C, bands, frames), normalised float, augmented by ``params`` (N, PARAMS).

    Exact operations, no interpolation: the shift is ``np.roll`` along time (a frame
    moves from t to t + shift), gains add per electrode, masked cells become 0 (the
    training mean). On a GPU, a few whole-batch kernels; on the CPU, `apply_per_stack`
    (the same result, several times faster there), in place.
    """
    if x.device.type == "cpu":
        return apply_per_stack(x, params)
    return apply_batched(x, params)


def apply_batched(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """`apply` as whole-batch tensor operations (a new tensor): the GPU's way."""
    n, channels, bands, frames = x.shape
    params = params.to(x.device, torch.float32, non_blocking=True)  # pinned: no wait
    time = torch.arange(frames, device=x.device)
    source = (time[None, :] - params[:, SHIFT, None].long()) % frames  # (N, frames)
    x = x.gather(3, source[:, None, None, :].expand(n, channels, bands, frames))
    x = x + params[:, GAINS : GAINS + channels, None, None].to(x.dtype)
    masked_time = _covered(time, params[:, TIME_MASKS:BAND_MASKS])  # (N, frames)
    masked_bands = _covered(torch.arange(bands, device=x.device), params[:, BAND_MASKS:GAINS])
    return x.masked_fill(masked_time[:, None, None, :] | masked_bands[:, None, :, None], 0.0)


def apply_per_stack(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """`apply`, one stack at a time and in place: slices instead of index arithmetic."""
    channels, frames = x.shape[1], x.shape[-1]
    for stack, p in zip(x, params.tolist(), strict=True):
        shift = int(p[SHIFT]) % frames
        if shift:
            moved = stack.clone()
            stack[..., shift:] = moved[..., : frames - shift]
            stack[..., :shift] = moved[..., frames - shift :]
        gains = p[GAINS : GAINS + channels]
        if any(gains):
            stack.add_(torch.tensor(gains, dtype=x.dtype)[:, None, None])
        for k in range(MASKS):
            start, length = int(p[TIME_MASKS + 2 * k]), int(p[TIME_MASKS + 2 * k + 1])
            stack[..., start : start + length] = 0.0
            start, length = int(p[BAND_MASKS + 2 * k]), int(p[BAND_MASKS + 2 * k + 1])
            stack[:, start : start + length, :] = 0.0
    return x


def _covered(positions: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """(N, len(positions)) bool: inside any of each row's (start, length) spans."""
    starts, ends = spans[:, 0::2, None], spans[:, 0::2, None] + spans[:, 1::2, None]
    where = positions[None, None, :]
    return ((where >= starts) & (where < ends)).any(dim=1)
