"""From the memory-mapped feature cache to batches, without decoding anything.

`Normaliser` holds per-electrode (or per electrode and band) mean and std of the
training fold's stacks; `GroupNormaliser` one such per patient, for a model of all
patients. `StackDataset` serves float16 (16, bands, frames) stacks as they
are cached, or at window level crops of ``window_frames`` frames: a random crop for
training, every non-overlapping crop (the last one flush with the end) for prediction;
training items also carry their augmentation's parameters. Normalising and augmenting
happen per batch on the training device (`deepsync.train.cnn.ModelInput`), so a loader
worker only copies bytes. `EpochSampler` orders an epoch and gives each item its own
seed, so crops and augmentations follow from (seed, epoch) alone, however many loader
workers serve them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from deepsync.train.augment import PARAMS, AugmentLimits, draw

STATS_SAMPLE = 256  # stacks read to estimate the normalisation: plenty for 16-48 numbers


@dataclass(frozen=True)
class Normaliser:
    """Shift and scale of shape (C, 1, 1) or (C, B, 1), from training stacks only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, stacks: np.ndarray, rows: np.ndarray, kind: str, seed: int) -> Normaliser:
        """Statistics of up to STATS_SAMPLE of ``rows`` of ``stacks`` (N, C, B, T)."""
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.permutation(rows)[:STATS_SAMPLE])
        sample = np.asarray(stacks[chosen], dtype=np.float64)  # (n, C, B, T)
        axes = (0, 2, 3) if kind == "channel" else (0, 3)
        mean = sample.mean(axis=axes)
        std = sample.std(axis=axes)
        shape = (-1, 1, 1) if kind == "channel" else (*mean.shape, 1)
        return cls(
            mean.reshape(shape).astype(np.float32),
            np.maximum(std, 1e-3).reshape(shape).astype(np.float32),
        )

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> Normaliser:
        return cls(np.asarray(values["mean"], np.float32), np.asarray(values["std"], np.float32))


@dataclass(frozen=True)
class GroupNormaliser:
    """One `Normaliser` per group of rows (a patient): for a model trained on all patients.

    ``groups``: the group of every cache row (-1: none); ``mean``/``std``: (G, C, B or 1, 1).
    Applied in the dataset, so a batch leaves the loader already normalised (float16) and
    the training device's own normaliser is the identity.
    """

    groups: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(
        cls, stacks: np.ndarray, rows: np.ndarray, groups: np.ndarray, kind: str, seed: int
    ) -> GroupNormaliser:
        """Each group's statistics from its own ``rows`` (training rows) only."""
        groups = np.asarray(groups, dtype=np.int64)
        rows = np.asarray(rows)
        count = int(groups.max()) + 1
        fitted = []
        for group in range(count):
            mine = rows[groups[rows] == group]
            if len(mine) == 0:
                raise ValueError(f"group {group} has no training rows to normalise with")
            fitted.append(Normaliser.fit(stacks, mine, kind, seed + group))
        return cls(groups, np.stack([f.mean for f in fitted]), np.stack([f.std for f in fitted]))

    def __call__(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        g = self.groups[rows]
        if (g < 0).any():
            raise ValueError("rows outside every group cannot be normalised")
        return ((x.astype(np.float32) - self.mean[g]) / self.std[g]).astype(np.float16)

    def identity(self) -> Normaliser:
        """What the device applies after this: nothing."""
        shape = self.mean.shape[1:]
        return Normaliser(np.zeros(shape, np.float32), np.ones(shape, np.float32))

    def to_dict(self) -> dict:
        return {
            "groups": self.groups.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    @classmethod
    def from_dict(cls, values: dict) -> GroupNormaliser:
        return cls(
            np.asarray(values["groups"], np.int64),
            np.asarray(values["mean"], np.float32),
            np.asarray(values["std"], np.float32),
        )


def window_starts(frames: int, width: int) -> np.ndarray:
    """Starts of the non-overlapping crops covering ``frames``; the last ends at the end."""
    if width >= frames:
        return np.zeros(1, int)
    starts = np.arange(0, frames - width + 1, width)
    if starts[-1] + width < frames:
        starts = np.append(starts, frames - width)
    return starts


class StackDataset(Dataset):
    """Cache rows as (float16 (C, H, W) stack, float label, float32 (PARAMS,) augmentation).

    ``width``: None for whole stacks; a crop width for window level. Training takes one
    random crop per segment per epoch; otherwise each item is one (segment, crop) pair and
    ``owner`` says which segment it belongs to. ``augment``: limits of the augmentations
    drawn for training items (None: none, the parameters are zeros). ``groups``: a
    per-patient normaliser applied here (a model of all patients), else none.
    """

    def __init__(
        self,
        stacks: np.ndarray,
        rows: np.ndarray,
        labels: np.ndarray,
        *,
        width: int | None = None,
        train: bool = False,
        augment: AugmentLimits | None = None,
        seed: int = 0,
        groups: GroupNormaliser | None = None,
    ):
        self.stacks, self.rows, self.labels = stacks, np.asarray(rows), np.asarray(labels)
        self.groups = groups
        self.width, self.train, self.augment = width, train, augment
        self.rng = np.random.default_rng(seed)
        frames = stacks.shape[-1]
        if width is None or train:
            self.items = [(i, 0) for i in range(len(self.rows))]
        else:
            self.items = [
                (i, s) for i in range(len(self.rows)) for s in window_starts(frames, width)
            ]
        self.owner = np.array([i for i, _ in self.items], dtype=int)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int | tuple[int, int]):
        """Item ``index``, or ``(item, seed)`` (from `EpochSampler`): its own randomness."""
        x, y, params = self.__getitems__([index])
        return x[0], y[0], params[0]

    def __getitems__(self, indices: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A whole batch at once: (N, C, H, W) float16, (N,) labels, (N, PARAMS) float32."""
        pairs = [index if isinstance(index, tuple) else (index, None) for index in indices]
        items = [self.items[item] for item, _ in pairs]
        rngs = [self.rng if seed is None else np.random.default_rng(seed) for _, seed in pairs]
        rows = self.rows[[i for i, _ in items]]
        frames = self.stacks.shape[-1]
        if self.width is None:
            x = np.asarray(self.stacks[rows])  # one gather out of the memmap: a copy
        else:
            starts = [
                int(rng.integers(0, frames - self.width + 1)) if self.train else start
                for (_, start), rng in zip(items, rngs, strict=True)
            ]
            x = np.stack(
                [self.stacks[r, ..., s : s + self.width] for r, s in zip(rows, starts, strict=True)]
            )
        if self.groups is not None:
            x = self.groups(x, rows)
        params = np.zeros((len(items), PARAMS), np.float32)
        if self.train and self.augment is not None:
            for k, rng in enumerate(rngs):
                params[k] = draw(rng, x.shape[-2], x.shape[-1], self.augment)
        labels = self.labels[[i for i, _ in items]].astype(np.float32)
        return torch.from_numpy(x), torch.from_numpy(labels), torch.from_numpy(params)


def as_batch(batch):
    """The loader's collate function: `StackDataset.__getitems__` already made the batch."""
    return batch


class EpochSampler(Sampler):
    """One epoch's ``(item, seed)`` pairs over ``size`` items, all from ``set_epoch``'s seed.

    Order: a permutation, or draws with replacement that give both classes the same
    weight (``labels`` given: balanced batches); ``limit`` keeps the first items only. The
    sampler runs in the training process, so a new epoch seed reaches persistent loader
    workers through the indices, and every item's crop and augmentation are the same
    whichever worker serves it.
    """

    def __init__(
        self,
        size: int,
        *,
        labels: np.ndarray | None = None,
        limit: int | None = None,
        seed: int = 0,
    ):
        self.size, self.seed = size, seed
        self.labels = None if labels is None else np.asarray(labels).astype(int)
        self.limit = size if limit is None else min(limit, size)

    def set_epoch(self, seed: int) -> None:
        self.seed = seed

    def __len__(self) -> int:
        return self.limit

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        if self.labels is not None:
            weights = 1.0 / np.bincount(self.labels, minlength=2)[self.labels]
            order = rng.choice(self.size, self.size, p=weights / weights.sum())
        else:
            order = rng.permutation(self.size)
        order = order[: self.limit]
        seeds = rng.integers(0, 2**63 - 1, len(order))
        return iter(zip(order.tolist(), seeds.tolist(), strict=True))
