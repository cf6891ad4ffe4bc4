"""Augmentations of (N, 16, bands, frames) normalised stacks: exact ops, limits, seeding."""

import numpy as np
import pytest
import torch

from deepsync.train.augment import (
    BAND_MASKS,
    GAINS,
    PARAMS,
    SHIFT,
    TIME_MASKS,
    AugmentLimits,
    apply,
    apply_batched,
    apply_per_stack,
    draw,
)

N, C, H, W = 3, 16, 80, 144
LIMITS = AugmentLimits.for_stack(H, W)


@pytest.fixture
def stacks():
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.normal(-2.0, 1.5, (N, C, H, W)).astype(np.float32))


def only(**values) -> torch.Tensor:
    """(N, PARAMS) parameters with just the given entries set, the same for every stack."""
    params = torch.zeros(N, PARAMS)
    for index, value in values.items():
        params[:, int(index.lstrip("p"))] = value
    return params


def test_no_augmentation_is_the_identity(stacks):
    assert torch.equal(apply(stacks.clone(), torch.zeros(N, PARAMS)), stacks)


def test_the_gpus_batched_way_and_the_cpus_per_stack_way_agree_exactly(stacks):
    rng = np.random.default_rng(5)
    for _ in range(5):
        params = torch.from_numpy(np.stack([draw(rng, H, W, LIMITS) for _ in range(N)]))
        batched = apply_batched(stacks, params)
        assert torch.equal(apply_per_stack(stacks.clone(), params), batched)
        assert not torch.equal(batched, stacks)


def test_the_shift_is_an_exact_wrap_around_roll(stacks):
    for shift in (5, -7, W // 8):
        out = apply(stacks.clone(), only(**{f"p{SHIFT}": shift}))
        assert torch.equal(out, torch.roll(stacks, shift, dims=-1))
    assert torch.equal(
        torch.from_numpy(np.roll(stacks.numpy(), 5, axis=-1)),
        apply(stacks.clone(), only(**{f"p{SHIFT}": 5})),
    )  # np.roll's direction


def test_masks_fill_whole_frames_and_bands_with_the_mean(stacks):
    params = only(
        **{
            f"p{TIME_MASKS}": 10,
            f"p{TIME_MASKS + 1}": 4,
            f"p{BAND_MASKS}": 70,
            f"p{BAND_MASKS + 1}": 10,
        }
    )
    out = apply(stacks.clone(), params)
    assert torch.all(out[..., 10:14] == 0) and torch.all(out[..., 70:80, :] == 0)
    keep = torch.ones(H, W, dtype=torch.bool)
    keep[:, 10:14] = keep[70:80, :] = False
    assert torch.equal(out[..., keep], stacks[..., keep])


def test_gain_adds_one_offset_per_electrode(stacks):
    gains = torch.linspace(-0.2, 0.2, C)
    params = torch.zeros(N, PARAMS)
    params[:, GAINS:] = gains
    offsets = apply(stacks.clone(), params) - stacks
    assert torch.allclose(offsets, gains[None, :, None, None].expand_as(offsets), atol=1e-6)


def test_each_stack_in_a_batch_gets_its_own_augmentation(stacks):
    params = torch.zeros(N, PARAMS)
    params[1, SHIFT] = 3
    params[2, GAINS:] = 0.1
    out = apply(stacks.clone(), params)
    assert torch.equal(out[0], stacks[0])
    assert torch.equal(out[1], torch.roll(stacks[1], 3, dims=-1))
    assert torch.allclose(out[2], stacks[2] + 0.1)


def test_draws_stay_within_their_limits_and_are_seeded():
    rng = np.random.default_rng(1)
    drawn = np.stack([draw(rng, H, W, LIMITS) for _ in range(2000)])
    assert drawn.shape == (2000, PARAMS) and drawn.dtype == np.float32
    assert np.abs(drawn[:, SHIFT]).max() <= LIMITS.shift
    for share in ((drawn[:, SHIFT] != 0).mean(), (drawn[:, GAINS:] != 0).any(1).mean()):
        assert 0.4 < share < 0.6  # each augmentation on about half of the stacks
    for first, size, longest in (
        (TIME_MASKS, W, LIMITS.time_mask),
        (BAND_MASKS, H, LIMITS.band_mask),
    ):
        starts, lengths = drawn[:, first : first + 4 : 2], drawn[:, first + 1 : first + 4 : 2]
        assert lengths.max() == longest and np.all(starts + lengths <= size)
        masked = (lengths > 0).sum(1)
        assert set(np.unique(masked)) == {0, 1, 2}  # none, one or two masks
    assert np.abs(drawn[:, GAINS:]).max() <= LIMITS.gain
    again = [draw(np.random.default_rng(1), H, W, LIMITS) for _ in range(2)]
    assert np.array_equal(again[0], again[1]) and np.array_equal(again[0], drawn[0])


def test_augmented_values_stay_finite_and_unclipped(stacks):
    rng = np.random.default_rng(2)
    params = torch.from_numpy(np.stack([draw(rng, H, W, LIMITS) for _ in range(N)]))
    out = apply(stacks.clone(), params)
    assert out.shape == stacks.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() < -3.0 and out.max() > 2.0
