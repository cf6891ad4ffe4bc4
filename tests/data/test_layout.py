from collections import defaultdict

import pytest

from deepsync.data.index import packaged_labels
from deepsync.data.layout import (
    ecosystem_test_name,
    hour_group,
    kaggle_path,
    parse_name,
    sequence_of,
)


@pytest.mark.parametrize(
    "path, expected",
    [
        ("train_1/1_45_1.mat", ("1_45_1.mat", 1, 45, "train", 1, "kaggle")),
        ("x/test_2_new/new_2_17.mat", ("new_2_17.mat", 2, 17, "test", None, "kaggle")),
        ("test_3/3_8.mat", ("3_8.mat", 3, 8, "old_test", None, "kaggle")),
        ("Pat1Train_45_1.mat", ("1_45_1.mat", 1, 45, "train", 1, "ecosystem")),
        ("Pat2Test_17_0.csv", ("new_2_17.mat", 2, 17, "test", None, "ecosystem")),
    ],
)
def test_names_of_both_layouts(path, expected):
    parsed = parse_name(path)
    assert (
        parsed.name,
        parsed.patient,
        parsed.number,
        parsed.kind,
        parsed.label,
        parsed.layout,
    ) == expected


@pytest.mark.parametrize(
    "name",
    [
        "sample_submission.csv",
        "1_2_3.mat",
        "new_1.mat",
        "train_and_test_data_labels_safe.csv",
        "Pat1Valid_1_0.mat",
    ],
)
def test_other_files_are_not_segments(name):
    assert parse_name(name) is None


def test_hours_group_six_consecutive_segments_per_class():
    a, b, c = (parse_name(n) for n in ("1_6_0.mat", "1_7_0.mat", "1_6_1.mat"))
    assert hour_group(a) == hour_group(parse_name("1_1_0.mat"))
    assert hour_group(a) != hour_group(b)  # segment 7 starts hour 1
    assert hour_group(a) != hour_group(c)  # hours are counted per class
    assert [sequence_of(j) for j in range(1, 8)] == [1, 2, 3, 4, 5, 6, 1]
    assert hour_group(parse_name("1_8.mat")) != hour_group(parse_name("1_17.mat"))


def test_real_unsafe_flags_cover_whole_hours():
    """The organisers marked whole hours unsafe: our hour groups must never split one."""
    groups = defaultdict(list)
    for name, (_, safe) in packaged_labels().items():
        parsed = parse_name(name)
        if parsed.kind == "train":
            groups[hour_group(parsed)].append(safe)
    assert len(groups) == (1152 + 2196 + 2244) // 6 + 3 * 25
    assert all(len(flags) == 6 and len(set(flags)) == 1 for flags in groups.values())


def test_paths_and_label_names():
    assert kaggle_path("1_45_1.mat") == "train_1/1_45_1.mat"
    assert kaggle_path("new_3_9.mat") == "test_3_new/new_3_9.mat"
    assert kaggle_path("2_8.mat") == "test_2/2_8.mat"
    assert ecosystem_test_name("new_3_9.mat") == "Pat3Test_9_0"
    with pytest.raises(ValueError):
        kaggle_path("Pat1Train_1_0.mat")
