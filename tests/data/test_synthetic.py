"""The embedded synthetic set: exact layout, deterministic, and real enough to learn from."""

import csv
import zlib
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import scipy.io

from deepsync.config import SyntheticConfig, load_config
from deepsync.data import synthetic
from deepsync.data.layout import hour_group, kaggle_path, parse_name
from deepsync.data.segment import read_segment
from deepsync.errors import DeepSyncError
from tests.conftest import TINY


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_layout_and_tables(tiny_set):
    names = files(tiny_set)
    per_patient = (TINY.interictal_hours + TINY.preictal_hours) * 6
    for p in (1, 2):
        assert sum(n.startswith(f"train_{p}/") for n in names) == per_patient
        assert sum(n.startswith(f"test_{p}_new/") for n in names) == TINY.test_hours * 6
        assert sum(n.startswith(f"test_{p}/") for n in names) == TINY.extra_preictal
    labels = read_csv(tiny_set / "train_and_test_data_labels_safe.csv")
    assert list(labels[0]) == ["image", "class", "safe"]
    train = [
        n.split("/")[1]
        for n in names
        if n.startswith(("train_1/", "train_2/", "test_1/", "test_2/"))
    ]
    assert sorted(r["image"] for r in labels) == sorted(train)
    for row in labels:
        parsed = parse_name(row["image"])
        assert int(row["class"]) == (1 if parsed.kind == "old_test" else parsed.label)
    unsafe = Counter(hour_group(parse_name(r["image"])) for r in labels if r["safe"] == "0")
    assert len(unsafe) == TINY.patients * TINY.unsafe_hours
    assert all(n == 6 for n in unsafe.values())  # whole hours, interictal only
    assert all("interictal" in h for h in unsafe)
    sample = read_csv(tiny_set / "sample_submission.csv")
    assert {r["File"] for r in sample} == {n.split("/")[1] for n in names if "_new/" in n}
    assert all(r["Class"] == "0" for r in sample)


def test_test_labels_in_the_organisers_form(tiny_set):
    rows = read_csv(tiny_set.parent / synthetic.TEST_LABELS)
    assert list(rows[0]) == ["image", "class", "usage"]
    assert len(rows) == TINY.patients * TINY.test_hours * 6
    for row in rows:
        patient, number = row["image"].removeprefix("Pat").split("Test_")
        path = tiny_set / kaggle_path(f"new_{patient}_{number.removesuffix('_0')}.mat")
        all_zero = read_segment(path).dropout_fraction == 1.0
        assert row["usage"] == ("Ignored" if all_zero else row["usage"])
        assert all_zero == (row["usage"] == "Ignored")
        assert row["class"] in ("0", "1")


def test_public_share_and_preictal_rates_differ_by_patient(tmp_path):
    cfg = replace(TINY, patients=3, test_hours=60)
    planned = synthetic.plan(cfg)
    synthetic._write_tables(cfg, planned, tmp_path, tmp_path / "labels.csv")
    rows = read_csv(tmp_path / "labels.csv")
    scored = [r for r in rows if r["usage"] != "Ignored"]
    public = sum(r["usage"] == "Public" for r in scored) / len(scored)
    assert 0.25 < public < 0.35
    rates = [
        np.mean([r["class"] == "1" for r in rows if r["image"].startswith(f"Pat{p}")])
        for p in (1, 2, 3)
    ]
    assert rates[0] < rates[1] < rates[2]


def test_deterministic_from_the_seed(tiny_set, tmp_path):
    again = tmp_path / "synthetic"
    synthetic.generate(TINY, again, workers=2, progress=False)
    assert files(again) == files(tiny_set)
    for name in files(tiny_set):
        if name.endswith(".mat"):
            assert np.array_equal(
                read_segment(again / name).data, read_segment(tiny_set / name).data
            ), name
        elif not name.endswith(".json"):
            assert (again / name).read_bytes() == (tiny_set / name).read_bytes(), name
    other = tmp_path / "other"
    synthetic.generate(replace(TINY, seed=8, patients=1), other, progress=False)
    name = "train_1/1_1_0.mat"
    assert not np.array_equal(read_segment(other / name).data, read_segment(tiny_set / name).data)


def test_rerun_resumes_and_other_settings_start_over(tmp_path):
    cfg = replace(
        TINY,
        patients=1,
        interictal_hours=1,
        preictal_hours=1,
        test_hours=1,
        extra_preictal=0,
        unsafe_hours=0,
        seconds=5,
    )
    folder = tmp_path / "synthetic"
    synthetic.generate(cfg, folder, progress=False)
    victim = folder / "train_1/1_2_1.mat"
    before = read_segment(victim).data
    victim.unlink()
    (folder / synthetic.MARKER).unlink()  # as after Ctrl-C: no marker yet
    synthetic.generate(cfg, folder, progress=False)
    assert np.array_equal(read_segment(victim).data, before)
    synthetic.generate(replace(cfg, preictal_hours=2), folder, progress=False)
    assert (folder / "train_1/1_12_1.mat").exists()
    synthetic.generate(cfg, folder, progress=False)
    assert not (folder / "train_1/1_12_1.mat").exists()  # never two sets mixed


def test_every_field_as_loadmat_returns_it(tiny_set):
    struct = scipy.io.loadmat(tiny_set / "train_2/2_8_0.mat")["dataStruct"]
    fields = struct[0, 0]
    assert struct.dtype.names == (
        "data",
        "iEEGsamplingRate",
        "nSamplesSegment",
        "channelIndices",
        "sequence",
    )
    assert fields["data"].shape == (TINY.seconds * 400, 16)
    assert fields["data"].dtype == np.float32
    assert fields["sequence"].tolist() == [[2.0]]  # segment 8 is second of hour 1
    assert fields["nSamplesSegment"].tolist() == [[TINY.seconds * 400.0]]
    test = scipy.io.loadmat(tiny_set / "test_1_new/new_1_1.mat")["dataStruct"]
    assert test.dtype.names == ("data", "iEEGsamplingRate", "nSamplesSegment", "channelIndices")


# --- the signal itself: drawn directly, a minute per segment --------------------------

CFG = SyntheticConfig(
    seed=3,
    patients=3,
    interictal_hours=4,
    preictal_hours=4,
    unsafe_hours=1,
    test_hours=1,
    extra_preictal=0,
    seconds=60,
)


@pytest.fixture(scope="module")
def drawn():
    """Band powers of every training segment of CFG, keyed by its plan."""
    out = []
    for segment in synthetic.plan(CFG):
        if segment.kind == "train" and segment.dropout == 0:
            x = synthetic.segment_signal(CFG, segment)
            out.append((segment, x, log_band_powers(x)))
    return out


def log_band_powers(x, fs=400):
    spectrum = np.abs(np.fft.rfft(x, axis=0)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / fs)
    edges = [0.1, 4, 8, 15, 30, 90, 170]
    return np.log(
        [
            spectrum[(freqs >= lo) & (freqs < hi)].mean(axis=0)
            for lo, hi in zip(edges, edges[1:], strict=False)
        ]
    )  # (bands, channels)


def test_amplitude_quantisation_and_compression(drawn):
    _, x, _ = drawn[0]
    assert 20 < x.std() < 45  # tens of microvolts
    steps = x / synthetic.QUANTUM_UV
    assert np.allclose(steps, np.round(steps), atol=1e-3)  # ADC steps
    # As stored in the file (column-major: electrode after electrode). The real files'
    # median is 5.47 MB for 15.36 MB of samples: 2.8:1.
    ratio = x.nbytes / len(zlib.compress(np.ascontiguousarray(x.T).tobytes()))
    assert 2.5 < ratio < 3.1
    corr = np.corrcoef(x.T)
    assert np.abs(corr[np.triu_indices(16, 1)]).mean() > 0.1  # correlated electrodes
    spectrum = np.abs(np.fft.rfft(x[:, 0])) ** 2
    assert spectrum[50:500].mean() > 10 * spectrum[5000:10000].mean()  # 1/f background


def test_segments_of_an_hour_are_alike(drawn):
    by_hour = {}
    for segment, _, bands in drawn:
        if segment.patient == 2 and segment.safe:
            by_hour.setdefault(segment.hour_key, []).append(bands.mean(axis=1))
    within, across = [], []
    hours = list(by_hour.values())
    for i, a in enumerate(hours):
        within += [np.abs(a[0] - b).mean() for b in a[1:]]
        across += [np.abs(a[0] - b[0]).mean() for b in hours[i + 1 :]]
    assert np.mean(within) < 0.5 * np.mean(across)


def test_preictal_signature_differs_by_patient(drawn):
    """The same segment drawn as preictal: more relative power in the patient's band."""
    effects = []
    for patient, band in ((1, 3), (2, 4), (3, 1)):  # 15-30, 30-90, 4-8 Hz
        gains = []
        for segment, _, bands in drawn:
            if segment.patient == patient and segment.label == 0 and segment.safe:
                preictal = log_band_powers(synthetic.segment_signal(CFG, replace(segment, label=1)))
                share = [b[band] - np.log(np.exp(b).sum(axis=0)) for b in (bands, preictal)]
                gains.append((share[1] - share[0]).mean())
        effects.append(np.mean(gains))
    assert all(e > 0.05 for e in effects)
    assert effects[0] < effects[1] < effects[2]  # the first patient is the hard one


def test_unsafe_hours_replay_a_preictal_hour(drawn):
    segment, x, _ = next((s, x, b) for s, x, b in drawn if not s.safe)
    source = next(
        s
        for s in synthetic.plan(CFG)
        if s.label == 1
        and s.kind == "train"
        and (s.hour_key, s.position) == (segment.hour_key, segment.position)
    )
    original = np.roll(
        synthetic.segment_signal(CFG, replace(source, dropout=0.0)), segment.shift, axis=0
    )
    assert np.corrcoef(x[:, 0], original[:, 0])[0, 1] > 0.9


def test_dropout_is_common_and_some_files_are_all_zero():
    planned = synthetic.plan(replace(CFG, interictal_hours=20))
    shares = np.array([s.dropout for s in planned])
    assert 0.25 < np.mean(shares > 0) < 0.55
    for patient in (1, 2, 3):
        for kind in ("train", "test"):
            assert any(s.dropout == 1.0 for s in planned if s.patient == patient and s.kind == kind)
    partial = next(s for s in planned if 0 < s.dropout < 1)
    x = synthetic.segment_signal(CFG, partial)
    lost = np.all(x == 0, axis=1).mean()
    assert lost == pytest.approx(partial.dropout, abs=0.01)


def test_a_scaled_set_has_the_real_patients_counts_times_the_scale():
    real = synthetic.real_counts()
    assert sum(p["interictal"] + p["preictal"] for p in real.values()) == 6042
    assert sum(p["old_test"] for p in real.values()) == 283
    assert sum(p["test"] for p in real.values()) == 1908
    assert [real[p]["unsafe"] for p in (1, 2, 3)] == [582, 360, 336]

    def counts(scale):
        planned = synthetic.plan(SyntheticConfig(scale=scale, seconds=1, scenario="band"))
        kinds = Counter(
            (s.patient, s.kind, s.label if s.kind == "train" else None) for s in planned
        )
        unsafe = Counter(s.patient for s in planned if not s.safe)
        return kinds, unsafe

    kinds, unsafe = counts(1.0)  # the real set's size, file for file
    for p, files in real.items():
        assert kinds[p, "train", 0] == files["interictal"] and unsafe[p] == files["unsafe"]
        assert kinds[p, "train", 1] == files["preictal"]
        assert kinds[p, "old_test", None] == files["old_test"]
        assert kinds[p, "test", None] == files["test"]
    kinds, unsafe = counts(1 / 8)
    for p, files in real.items():  # whole hours of six files, near an eighth of each count
        assert kinds[p, "train", 0] == 6 * round(files["interictal"] / 8 / 6)
        assert abs(kinds[p, "test", None] - files["test"] / 8) <= 3
        assert kinds[p, "train", 1] == 6 * 3  # 25 hours / 8: the floor of three folds' hours
        assert 0 < unsafe[p] <= kinds[p, "train", 0] - 6 * 3  # 3 safe hours at least
    plain = synthetic.plan(SyntheticConfig())
    assert plain == synthetic.plan(SyntheticConfig(scale=0.0))  # 0: the set's own counts
    with pytest.raises(DeepSyncError, match="synthetic.scale"):
        load_config(overrides=["synthetic.scale=0.5", "synthetic.patients=4"])
