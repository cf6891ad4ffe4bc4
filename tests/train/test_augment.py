"""Every augmentation on (H, W, 16) float32 log-power stacks: shape, values, seeding."""

import albumentations as A
import numpy as np
import pytest

from deepsync.train.augment import ElectrodeGain, stack_augmentations

H, W, C = 80, 144, 16


@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    return rng.normal(-2.0, 1.5, (H, W, C)).astype(np.float32)  # normalised: negatives too


def only(name, seed=1):
    """One transform of the training pipeline, forced on."""
    transform = next(
        t for t in stack_augmentations(H, W, seed).transforms if type(t).__name__ == name
    )
    transform.p = 1.0
    return A.Compose([transform], seed=seed)


@pytest.mark.parametrize("name", ["TimeShift", "XYMasking", "ElectrodeGain"])
def test_each_transform_keeps_shape_dtype_and_range(stack, name):
    out = only(name)(image=stack.copy())["image"]
    assert out.shape == (H, W, C) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert out.min() < -3.0 and out.max() > 2.0  # nothing clipped to [0, 1]
    assert not np.array_equal(out, stack)


def test_time_shift_is_an_exact_wrap_around_roll(stack):
    out = only("TimeShift", seed=5)(image=stack.copy())["image"]
    shifts = [
        s for s in range(-W // 8, W // 8 + 1) if np.array_equal(np.roll(stack, s, axis=1), out)
    ]
    assert len(shifts) == 1 and shifts[0] != 0


def test_masks_fill_whole_bands_or_frames_with_the_mean(stack):
    out = only("XYMasking", seed=2)(image=stack.copy())["image"]
    changed = out != stack
    assert changed.any()
    assert np.all(out[changed] == 0.0)
    rows, cols = changed.all(axis=(1, 2)), changed.all(axis=(0, 2))
    stripes = np.broadcast_to(rows[:, None, None] | cols[None, :, None], changed.shape)
    assert rows.any() and cols.any() and np.array_equal(changed, stripes)  # full stripes


def test_gain_is_one_offset_per_electrode_within_the_limit(stack):
    out = A.Compose([ElectrodeGain(limit=0.2, p=1.0)], seed=3)(image=stack.copy())["image"]
    offsets = (out - stack).reshape(-1, C)
    assert np.allclose(offsets, offsets[0], atol=1e-5)
    assert np.all(np.abs(offsets[0]) <= 0.2) and np.ptp(offsets[0]) > 0


def test_seeded_pipelines_repeat_and_seeds_differ(stack):
    a = stack_augmentations(H, W, 7)(image=stack.copy())["image"]
    b = stack_augmentations(H, W, 7)(image=stack.copy())["image"]
    assert np.array_equal(a, b)
    outs = [stack_augmentations(H, W, s)(image=stack.copy())["image"] for s in range(8, 14)]
    assert any(not np.array_equal(a, o) for o in outs)
