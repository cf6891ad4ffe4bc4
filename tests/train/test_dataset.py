"""From the memory-mapped cache to batches: normalisation, crops, window items, epochs."""

import numpy as np
import pytest
import torch

from deepsync.train.dataset import EpochSampler, Normaliser, StackDataset, window_starts


@pytest.fixture
def stacks(tmp_path):
    """A memory-mapped float16 (N, C, B, T) array like the cache's stacks.npy."""
    rng = np.random.default_rng(0)
    offsets = rng.normal(0, 3, (1, 16, 1, 1))
    array = (rng.normal(0, 2, (12, 16, 20, 30)) + offsets).astype(np.float16)
    np.save(tmp_path / "stacks.npy", array)
    return np.load(tmp_path / "stacks.npy", mmap_mode="r")


@pytest.mark.parametrize("kind", ["channel", "channel_band"])
def test_normaliser_uses_training_rows_only(stacks, kind):
    train = np.array([0, 2, 4, 6, 8])
    norm = Normaliser.fit(stacks, train, kind, seed=0)
    out = (np.asarray(stacks[train], np.float32) - norm.mean) / norm.std  # (n, C, B, T)
    axes = (0, 2, 3) if kind == "channel" else (0, 3)
    assert np.allclose(out.mean(axis=axes), 0, atol=1e-3)
    assert np.allclose(out.std(axis=axes), 1, atol=1e-3)
    other = Normaliser.fit(stacks, np.array([1, 3, 5]), kind, seed=0)
    assert not np.allclose(norm.mean, other.mean)
    again = Normaliser.from_dict(norm.to_dict())
    assert np.array_equal(again.mean, norm.mean) and np.array_equal(again.std, norm.std)


def test_window_starts_cover_every_frame_without_overlap_but_the_last():
    assert window_starts(30, 10).tolist() == [0, 10, 20]
    assert window_starts(32, 10).tolist() == [0, 10, 20, 22]
    assert window_starts(8, 10).tolist() == [0]


def test_segment_items_are_whole_stacks_as_cached(stacks):
    data = StackDataset(stacks, np.array([3, 5]), np.array([0, 1]))
    x, y, params = data[1]
    assert x.dtype == torch.float16 and x.shape == (16, 20, 30) and y.item() == 1.0
    assert np.array_equal(x.numpy(), stacks[5]) and not params.any()  # no augmentation
    batch, labels, _ = data.__getitems__([1, 0, 1])  # the loader's one gather per batch
    assert np.array_equal(batch.numpy(), stacks[[5, 3, 5]]) and labels.tolist() == [1, 0, 1]


def test_window_level_training_crops_at_random_and_prediction_covers_all(stacks):
    train = StackDataset(stacks, np.array([0, 1]), np.array([0, 1]), width=8, train=True)
    assert len(train) == 2
    crops = {tuple(train[0][0][0, 0, :3].tolist()) for _ in range(10)}
    assert len(crops) > 1 and train[0][0].shape == (16, 20, 8)
    scoring = StackDataset(stacks, np.array([0, 1]), np.array([0, 1]), width=8)
    assert len(scoring) == 2 * 4 and scoring.owner.tolist() == [0] * 4 + [1] * 4
    assert np.array_equal(scoring[3][0].numpy(), stacks[0][..., 22:30])


def test_training_items_carry_their_augmentation(stacks):
    from deepsync.train.augment import PARAMS, AugmentLimits

    limits = AugmentLimits.for_stack(20, 30)
    train = StackDataset(stacks, np.arange(12), np.zeros(12), train=True, augment=limits)
    params = torch.stack([train[(i, i)][2] for i in range(12)])
    assert params.shape == (12, PARAMS) and params.any(1).sum() > 6  # most stacks augmented
    assert torch.equal(train[(3, 3)][2], params[3])  # the item's seed fixes it
    held = StackDataset(stacks, np.arange(12), np.zeros(12), augment=limits)
    assert not held[(3, 3)][2].any()  # never for prediction


def test_epoch_sampler_orders_and_seeds_from_its_epoch_alone():
    sampler = EpochSampler(10, seed=3)
    first = list(sampler)
    assert sorted(i for i, _ in first) == list(range(10)) and len(sampler) == 10
    assert list(sampler) == first  # the same epoch: the same order and seeds
    sampler.set_epoch(4)
    assert list(sampler) != first
    assert len(list(EpochSampler(10, limit=4))) == 4 == len(EpochSampler(10, limit=4))


def test_balanced_epochs_draw_both_classes_equally_often():
    labels = np.array([1] + [0] * 99)
    drawn = [i for e in range(20) for i, _ in _epoch(labels, e)]
    share = np.mean(labels[drawn])
    assert 0.4 < share < 0.6  # 1% of the stacks, half of the draws


def _epoch(labels, seed):
    sampler = EpochSampler(len(labels), labels=labels)
    sampler.set_epoch(seed)
    return list(sampler)


def test_an_items_seed_fixes_its_crop(stacks):
    train = StackDataset(stacks, np.array([0, 1]), np.array([0, 1]), width=8, train=True)
    assert torch.equal(train[(0, 7)][0], train[(0, 7)][0])
    crops = {tuple(train[(0, seed)][0][0, 0, :3].tolist()) for seed in range(10)}
    assert len(crops) > 1
