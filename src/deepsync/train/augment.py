"""Augmentations that make sense for normalised 16-electrode log-spectrogram stacks.

Stacks reach the transforms as float32 (bands, frames, electrodes) = (H, W, 16) arrays,
already normalised (0 is the training mean). Kept: SpecAugment-style time and frequency
masks (filled with 0, the mean), a time shift that wraps around (a 10-minute segment
has no privileged start), and a small per-electrode gain (an offset in log power).
Left out on purpose: anything that clips to [0, 1] (noise, brightness, blur), colour
transforms, gamma (NaN on negatives) and flips (time and frequency have a direction).
"""

from __future__ import annotations

import albumentations as A
import numpy as np


class TimeShift(A.ImageOnlyTransform):
    """Rolls the stack along time by up to ``limit`` frames either way, wrapping around.

    An exact shift (no interpolation): 30x faster than ``A.Affine`` with ``BORDER_WRAP``
    on 16 channels, which OpenCV handles four at a time.
    """

    def __init__(self, limit: int = 18, p: float = 0.5):
        super().__init__(p=p)
        self.limit = limit

    def get_params_dependent_on_data(self, params, data):
        return {"shift": int(self.random_generator.integers(-self.limit, self.limit + 1))}

    def apply(self, img, shift=0, **params):
        return np.roll(img, shift, axis=1)

    def get_transform_init_args_names(self):
        return ("limit",)


class ElectrodeGain(A.ImageOnlyTransform):
    """Adds one offset per electrode, uniform in ``[-limit, limit]`` (normalised units).

    A gain g on an electrode adds log(g**2) to its log power: a recording's amplifier or
    contact impedance differs a little from day to day.
    """

    def __init__(self, limit: float = 0.2, p: float = 0.5):
        super().__init__(p=p)
        self.limit = limit

    def get_params_dependent_on_data(self, params, data):
        channels = data["image"].shape[-1]
        return {"offsets": self.random_generator.uniform(-self.limit, self.limit, channels)}

    def apply(self, img, offsets=None, **params):
        return (img + offsets.astype(img.dtype)).astype(np.float32)

    def get_transform_init_args_names(self):
        return ("limit",)


def stack_augmentations(height: int, width: int, seed: int) -> A.Compose:
    """The training transforms for (height, width, electrodes) stacks, seeded."""
    return A.Compose(
        [
            TimeShift(limit=max(1, width // 8), p=0.5),
            A.XYMasking(
                num_masks_x=(1, 2),
                num_masks_y=(1, 2),
                mask_x_length=(1, max(1, width // 10)),
                mask_y_length=(1, max(1, height // 10)),
                fill=0.0,
                p=0.5,
            ),
            ElectrodeGain(limit=0.2, p=0.5),
        ],
        seed=seed,
    )
