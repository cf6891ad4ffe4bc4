"""File names of both data layouts, and the hour a training segment belongs to.

Kaggle layout: ``train_I/I_J_K.mat`` (patient I, segment J, class K), old test
``test_I/I_J.mat``, final test ``test_I_new/new_I_J.mat``.
epilepsyecosystem.org re-release: ``PatITrain_J_K`` and ``PatITest_J_0`` (.mat or .csv),
where ``PatITest_J_0`` is ``new_I_J.mat``.

Six consecutive segments form one hour, counted separately per class:
``sequence == (J - 1) % 6 + 1`` and the hour is ``(J - 1) // 6``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

SEGMENTS_PER_HOUR = 6
CLASS_NAMES = {0: "interictal", 1: "preictal"}

_KAGGLE_TRAIN = re.compile(r"^(\d+)_(\d+)_([01])\.mat$")
_KAGGLE_OLD_TEST = re.compile(r"^(\d+)_(\d+)\.mat$")
_KAGGLE_NEW_TEST = re.compile(r"^new_(\d+)_(\d+)\.mat$")
_ECOSYSTEM = re.compile(r"^Pat(\d+)(Train|Test)_(\d+)_([01])\.(mat|csv)$", re.IGNORECASE)


@dataclass(frozen=True)
class SegmentName:
    """What a file's name says about its segment.

    ``name`` is the Kaggle name (``1_45_1.mat``, ``new_1_3.mat``): the key of the labels
    file and of a submission, whichever layout the file came from.
    """

    name: str
    patient: int
    number: int  # J in the name
    kind: str  # "train" | "old_test" | "test"
    label: int | None  # 0 interictal, 1 preictal; None where the name does not say
    layout: str  # "kaggle" | "ecosystem"


def parse_name(path: str | PurePath) -> SegmentName | None:
    """Parse a segment's file name in either layout; None for files that are not segments."""
    base = PurePath(path).name
    if m := _KAGGLE_TRAIN.match(base):
        patient, number, label = map(int, m.groups())
        return SegmentName(base, patient, number, "train", label, "kaggle")
    if m := _KAGGLE_NEW_TEST.match(base):
        patient, number = map(int, m.groups())
        return SegmentName(base, patient, number, "test", None, "kaggle")
    if m := _KAGGLE_OLD_TEST.match(base):
        patient, number = map(int, m.groups())
        return SegmentName(base, patient, number, "old_test", None, "kaggle")
    if m := _ECOSYSTEM.match(base):
        patient, kind, number, label = int(m[1]), m[2].lower(), int(m[3]), int(m[4])
        if kind == "test":
            return SegmentName(
                f"new_{patient}_{number}.mat", patient, number, "test", None, "ecosystem"
            )
        return SegmentName(
            f"{patient}_{number}_{label}.mat", patient, number, "train", label, "ecosystem"
        )
    return None


def sequence_of(number: int) -> int:
    """A training segment's place within its hour, 1..6."""
    return (number - 1) % SEGMENTS_PER_HOUR + 1


def hour_of(number: int) -> int:
    """A training segment's hour, counted from 0 within its patient and class."""
    return (number - 1) // SEGMENTS_PER_HOUR


def hour_group(segment: SegmentName) -> str:
    """The fold-grouping key: whole hours stay together, per (patient, class, hour).

    The labelled old-test preictal files have no hour id, so each is its own group.
    Test segments are each their own group too (their hours are unknown).
    """
    if segment.kind == "train":
        return f"{segment.patient}-{CLASS_NAMES[segment.label]}-{hour_of(segment.number):03d}"
    if segment.kind == "old_test":
        return f"{segment.patient}-extra-{segment.number:04d}"
    return f"{segment.patient}-test-{segment.number:04d}"


def kaggle_path(name: str) -> str:
    """Where a Kaggle-named segment sits in the competition layout (relative path)."""
    parsed = parse_name(name)
    if parsed is None or parsed.layout != "kaggle":
        raise ValueError(f"{name!r} is not a Kaggle segment name")
    folder = {"train": "train_{}", "old_test": "test_{}", "test": "test_{}_new"}[parsed.kind]
    return f"{folder.format(parsed.patient)}/{name}"


def ecosystem_test_name(name: str) -> str:
    """``new_I_J.mat`` as the organisers' label file spells it: ``PatITest_J_0``."""
    parsed = parse_name(name)
    if parsed is None or parsed.kind != "test":
        raise ValueError(f"{name!r} is not a final-test segment name")
    return f"Pat{parsed.patient}Test_{parsed.number}_0"
