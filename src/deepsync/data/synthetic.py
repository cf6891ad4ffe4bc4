"""The embedded default: a synthetic data set in the exact competition layout.

Real enough to exercise the pipeline honestly:
- 1/f background, patient-specific rhythms, correlated electrodes, amplitudes of tens of
  microvolts quantised like an ADC (so the files compress 2.8:1, like real EEG);
- random effects shared by the six segments of an hour (gains, spectral slope, band
  powers), so hour-blind cross-validation is optimistic, as on the real data; and, when
  ``hour_gain`` / ``hour_tilt`` are set, a broadband gain and a tilt of the spectrum that
  change from hour to hour as real implants' do (drawn apart: a set without them is the
  same, bit for bit, as before they existed);
- a preictal signature (more power in a patient-specific band, more synchrony) whose
  strength differs by patient: the first patient is hard;
- dropout (all electrodes exactly zero) in a realistic share of files, a few all-zero
  files, and large fast artefacts;
- unsafe interictal hours that are time-shifted near-copies of preictal hours (the leak
  that ``safe=0`` marks), labelled preictal files of the old test set, and test sets
  whose preictal rate differs by patient.

``synthetic.scenario`` picks the preictal mechanism: ``demo`` (the above, the embedded
default) or one of the scenario suite, whose defaults are chosen by the study over all of
them (README, "Scenarios"). Each scenario's change has a patient-dependent strength (the
first patient is hard), and every scenario carries the nuisances of real implants: a gain
and a spectral tilt that change from hour to hour, slow per-electrode gain drift, 50 Hz
line noise, artefacts, and fragmented dropout whose per-file share is drawn from the real
files' (``reference/dropout_shares.csv``):

- ``band``: more power in a patient-specific band (the demo's power change alone);
- ``spikes``: a higher rate of sharp transients (spike and slow wave) on a group of
  electrodes;
- ``synchrony``: the phases of a group of electrodes aligned in a band, every band power
  unchanged (bin by bin);
- ``slope``: a flatter 1/f spectrum (a change of the log-log slope about 10 Hz);
- ``amplitude``: slow amplitude modulation (periods of 5-20 s) of a band, its power
  unchanged;
- ``coupling``: cross-frequency coupling: gamma (30-90 Hz) swells with the phase of the
  patient's slow rhythm (2-5 Hz), its power unchanged;
- ``mixed``: a mechanism per patient (synchrony, amplitude, slope), as real patients differ.

Everything follows from the seed: each file draws from its own seeded generator, so files
can be written in parallel, and a rerun after Ctrl-C writes only what is missing.
"""

from __future__ import annotations

import csv
import functools
import json
import shutil
from contextlib import closing
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from deepsync.config import SyntheticConfig
from deepsync.data.layout import SEGMENTS_PER_HOUR, ecosystem_test_name, kaggle_path
from deepsync.data.segment import CHANNELS, write_segment
from deepsync.durable import replacing, write_text
from deepsync.parallel import parallel_map

MARKER = "SYNTHETIC.json"  # written last: its presence means the set is complete
TEST_LABELS = "synthetic_test_labels.csv"  # beside (outside) the data folder
PUBLIC_SHARE = 0.3  # of scored test files, as on the leaderboard
QUANTUM_UV = 0.3  # ADC step in microvolts: the files compress 2.8:1, as real EEG's median
BACKGROUND_UV = 30.0  # typical standard deviation of the signal

# Per patient, in order (cycled beyond three): preictal effect and test-set preictal rate.
SIGNATURE_STRENGTH = (0.3, 0.8, 1.4)  # log-power gain of the preictal band; 1st is hard
TEST_PREICTAL_RATE = (0.2, 0.35, 0.5)
PREICTAL_BANDS = ((15.0, 30.0), (30.0, 90.0), (4.0, 8.0))  # Hz

_CLASS_CODE = {"interictal": 0, "preictal": 1, "extra": 2, "test": 3}

# The scenario suite (synthetic.scenario other than demo).
DROPOUT_TABLE = "dropout_shares.csv"  # per patient: percentiles of the real files' lost share
MIXED = ("synchrony", "amplitude", "slope")  # the mixed scenario's mechanism per patient
GROUP = 6  # electrodes of a patient's focus: spikes and synchrony
SCENARIO_HOUR_GAIN = 0.35  # log sd of the hour's gain where synthetic.hour_gain is 0
SCENARIO_HOUR_TILT = 0.3  # sd of the hour's log-log tilt where synthetic.hour_tilt is 0
SLOPE_SHIFT = 0.3  # preictal flattening of the 1/f slope per unit of strength
SYNC_BASE, SYNC_GAIN = 0.1, 0.35  # a common source's share: interictal, more per unit
AM_BASE, AM_GAIN = 0.1, 0.35  # amplitude-modulation depth: interictal, more per unit
COUPLING_BASE, COUPLING_GAIN = 0.1, 0.35  # gamma's modulation by the slow rhythm's phase
COUPLED_BAND = (30.0, 90.0)  # Hz: the gamma whose amplitude follows the slow phase
SPIKES_PER_MINUTE, SPIKE_GAIN = 3.0, 2.0  # interictal rate; preictal rate x (1 + gain x s)
LINE_HZ = 50.0  # Australia's mains


@dataclass(frozen=True)
class PlannedSegment:
    """One file to write and everything needed to draw its signal."""

    name: str  # Kaggle name, e.g. 1_7_0.mat
    patient: int
    label: int  # 0 interictal, 1 preictal
    hour_key: tuple[int, int, int]  # (patient, class code, hour): shared random effects
    sequence: int | None  # 1..6 for training files, None for test files
    position: int  # place within its hour (draws its own noise); 0 for lone files
    safe: bool
    kind: str  # train | old_test | test
    shift: int  # samples of time shift (unsafe near-copies), else 0
    dropout: float  # share of the segment lost to dropout; 1.0 for an all-zero file


def plan(cfg: SyntheticConfig) -> list[PlannedSegment]:
    """Every file of the set, deterministic from the seed."""
    rng = np.random.default_rng([cfg.seed, 0])
    planned: list[PlannedSegment] = []
    n = cfg.seconds * cfg.sampling_rate
    for patient in range(1, cfg.patients + 1):
        own = patient_counts(cfg, patient)  # its hours and files
        if cfg.scenario == "demo":
            dropout_share = _demo_dropout_share
        else:  # the patient's real distribution
            dropout_share = functools.partial(_real_dropout_share, patient=patient)
        unsafe = set(rng.choice(own.interictal_hours, own.unsafe_hours, replace=False).tolist())
        for label, hours in ((0, own.interictal_hours), (1, own.preictal_hours)):
            for hour in range(hours):
                leak = label == 0 and hour in unsafe
                # An unsafe hour replays a preictal hour, shifted in time: the leak.
                key = (patient, 1, hour % own.preictal_hours) if leak else (patient, label, hour)
                for seq in range(1, SEGMENTS_PER_HOUR + 1):
                    number = hour * SEGMENTS_PER_HOUR + seq
                    planned.append(
                        PlannedSegment(
                            name=f"{patient}_{number}_{label}.mat",
                            patient=patient,
                            label=label,
                            hour_key=key,
                            sequence=seq,
                            position=seq,
                            safe=not leak,
                            kind="train",
                            shift=int(rng.integers(n // 20, n // 5)) if leak else 0,
                            dropout=dropout_share(rng),
                        )
                    )
        # Labelled preictal files of the old test set: numbered among unlabelled ones.
        numbers = rng.choice(
            np.arange(1, 10 * own.extra_preictal + 2), own.extra_preictal, replace=False
        )
        for number in sorted(numbers.tolist()):
            planned.append(
                PlannedSegment(
                    name=f"{patient}_{number}.mat",
                    patient=patient,
                    label=1,
                    hour_key=(patient, _CLASS_CODE["extra"], number),
                    sequence=None,
                    position=0,
                    safe=True,
                    kind="old_test",
                    shift=0,
                    dropout=dropout_share(rng),
                )
            )
        planned += _plan_test(rng, own, patient, dropout_share)
    # A few all-zero files, as the real folders have: one training, one test per patient.
    for patient in range(1, cfg.patients + 1):
        for kind in ("train", "test"):
            choices = [i for i, s in enumerate(planned) if s.patient == patient and s.kind == kind]
            i = int(rng.choice(choices))
            planned[i] = PlannedSegment(**{**asdict(planned[i]), "dropout": 1.0})
    return planned


MIN_SCALED_HOURS = 3  # a scaled set keeps a safe hour of each class for each of 3 folds


@functools.cache
def real_counts() -> dict[int, dict[str, int]]:
    """Per real patient, its files in the competition: training ``interictal`` (``unsafe``
    of them marked safe=0), ``preictal``, labelled ``old_test`` and ``test`` (from the
    embedded label table and sample submission)."""
    folder = resources.files("deepsync.data").joinpath("reference")
    counts = {
        p: dict.fromkeys(("interictal", "unsafe", "preictal", "old_test", "test"), 0)
        for p in (1, 2, 3)
    }
    with folder.joinpath("train_and_test_data_labels_safe.csv").open() as handle:
        for row in csv.DictReader(handle):
            parts = row["image"].split("_")
            patient = counts[int(parts[0])]
            if len(parts) == 2:  # 1_12.mat: the old test set's
                patient["old_test"] += 1
            elif row["class"] == "1":
                patient["preictal"] += 1
            else:
                patient["interictal"] += 1
                patient["unsafe"] += row["safe"] == "0"
    with folder.joinpath("sample_submission.csv").open() as handle:
        for row in csv.DictReader(handle):
            counts[int(row["File"].split("_")[1])]["test"] += 1
    return counts


def patient_counts(cfg: SyntheticConfig, patient: int) -> SyntheticConfig:
    """``cfg`` with ``patient``'s hours and files: its own counts, or with
    ``synthetic.scale`` the real patient's times the scale (whole hours of six files)."""
    if not cfg.scale:
        return cfg
    real = real_counts()[patient]

    def hours(files: int, least: int) -> int:
        return max(least, round(files * cfg.scale / SEGMENTS_PER_HOUR))

    unsafe = hours(real["unsafe"], 0)
    return replace(
        cfg,
        interictal_hours=hours(real["interictal"], unsafe + MIN_SCALED_HOURS),
        unsafe_hours=unsafe,
        preictal_hours=hours(real["preictal"], MIN_SCALED_HOURS),
        extra_preictal=round(real["old_test"] * cfg.scale),
        test_hours=hours(real["test"], 1),
    )


def _plan_test(
    rng: np.random.Generator, cfg: SyntheticConfig, patient: int, dropout_share
) -> list[PlannedSegment]:
    """Test hours with the patient's preictal rate, their segments shuffled in numbering."""
    rate = TEST_PREICTAL_RATE[(patient - 1) % len(TEST_PREICTAL_RATE)]
    labels = (rng.random(cfg.test_hours) < rate).astype(int)
    labels[rng.integers(cfg.test_hours)] = 1  # at least one preictal hour per patient
    if cfg.test_hours > 1 and labels.all():
        labels[rng.integers(cfg.test_hours)] = 0
    numbers = rng.permutation(cfg.test_hours * SEGMENTS_PER_HOUR) + 1
    out = []
    for i, number in enumerate(numbers.tolist()):
        hour = i // SEGMENTS_PER_HOUR
        out.append(
            PlannedSegment(
                name=f"new_{patient}_{number}.mat",
                patient=patient,
                label=int(labels[hour]),
                hour_key=(patient, _CLASS_CODE["test"], hour),
                sequence=None,
                position=i % SEGMENTS_PER_HOUR + 1,
                safe=True,
                kind="test",
                shift=0,
                dropout=dropout_share(rng),
            )
        )
    return out


def _demo_dropout_share(rng: np.random.Generator) -> float:
    """About 40% of files lose some samples, mostly a few percent."""
    return float(rng.uniform(0.005, 0.3)) if rng.random() < 0.4 else 0.0


@functools.cache
def dropout_quantiles() -> np.ndarray:
    """(101, 3): percentiles 0..100 of the lost share of the real training files, per patient."""
    table = resources.files("deepsync.data").joinpath("reference", DROPOUT_TABLE)
    with table.open() as f:
        rows = list(csv.reader(f))[1:]
    return np.array([[float(v) for v in row[1:]] for row in rows])


def dropout_table_from_stats(folder: Path) -> np.ndarray:
    """The same percentiles computed from ``per_file_stats/js_train_<patient>.csv``."""
    columns = []
    for patient in (1, 2, 3):
        with open(Path(folder) / f"js_train_{patient}.csv", newline="") as f:
            rows = list(csv.reader(f))
        at = [c.strip() for c in rows[0]].index("avg. quality")
        lost = 1 - np.array([float(r[at]) for r in rows[1:]]) / 100
        columns.append(np.percentile(np.clip(lost, 0, 1), np.arange(101)))
    return np.round(np.column_stack(columns), 4)


def _real_dropout_share(rng: np.random.Generator, patient: int) -> float:
    """A share of lost samples drawn from the patient's real files (cycled beyond three)."""
    quantiles = dropout_quantiles()[:, (patient - 1) % 3]
    return float(np.interp(rng.uniform(0, 100), np.arange(101), quantiles))


def generate(
    cfg: SyntheticConfig, folder: Path, *, workers: int = 1, progress: bool = True
) -> Path:
    """Write the synthetic set into ``folder`` (competition layout); return the labels path.

    Skips everything when the folder already holds a complete set from the same settings,
    writes only missing files after an interrupted run, starts over on other settings.
    """
    folder = Path(folder)
    labels_path = folder.parent / TEST_LABELS
    settings = asdict(cfg)
    marker = folder / MARKER
    if (_read(marker) or {}).get("settings") == settings:
        return labels_path
    started = folder / ".settings.json"
    if folder.exists() and _read(started) != settings:
        shutil.rmtree(folder)  # another size or seed (or none known): never mix two sets
    folder.mkdir(parents=True, exist_ok=True)
    write_text(started, json.dumps(settings))

    planned = plan(cfg)
    todo = [s for s in planned if not (folder / kaggle_path(s.name)).exists()]
    for sub in {(folder / kaggle_path(s.name)).parent for s in planned}:
        sub.mkdir(parents=True, exist_ok=True)
    jobs = ((cfg, s, folder / kaggle_path(s.name)) for s in todo)
    bar = tqdm(
        total=len(planned),
        initial=len(planned) - len(todo),
        unit="file",
        desc="synthetic",
        disable=not progress,
    )
    with bar, closing(parallel_map(_write_one, jobs, workers)) as written:
        for _ in written:
            bar.update()

    _write_tables(cfg, planned, folder, labels_path)
    write_text(
        marker,
        json.dumps(
            {
                "settings": settings,
                "files": len(planned),
                "test_labels": str(labels_path.resolve()),
            },
            indent=1,
        ),
    )
    return labels_path


def _read(path: Path):
    """A marker's JSON, or None where there is none or it is damaged (then: start over)."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def _write_one(job: tuple[SyntheticConfig, PlannedSegment, Path]) -> None:
    cfg, segment, path = job
    write_segment(
        path,
        segment_signal(cfg, segment),
        sequence=segment.sequence,
        sampling_rate=cfg.sampling_rate,
    )


def _write_tables(
    cfg: SyntheticConfig, planned: list[PlannedSegment], folder: Path, labels_path: Path
) -> None:
    """The labels file, the sample submission, and the test labels (outside the folder)."""
    rng = np.random.default_rng([cfg.seed, 1])
    labels_file = folder / "train_and_test_data_labels_safe.csv"
    with replacing(labels_file) as partial, open(partial, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["image", "class", "safe"])
        for s in planned:
            if s.kind != "test":
                out.writerow([s.name, s.label, int(s.safe)])
    tests = [s for s in planned if s.kind == "test"]
    tests.sort(key=lambda s: (s.patient, int(s.name.rsplit("_", 1)[1][:-4])))
    sample = folder / "sample_submission.csv"
    with replacing(sample) as partial, open(partial, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["File", "Class"])
        out.writerows([s.name, 0] for s in tests)
    with replacing(labels_path) as partial, open(partial, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["image", "class", "usage"])
        for s in tests:
            usage = (
                "Ignored"
                if s.dropout >= 1.0
                else ("Public" if rng.random() < PUBLIC_SHARE else "Private")
            )
            out.writerow([ecosystem_test_name(s.name), s.label, usage])


@dataclass(frozen=True)
class _Patient:
    """A patient's fixed traits."""

    mixing: np.ndarray  # (channels, channels): correlated electrodes
    gains: np.ndarray  # (channels,)
    rhythms: np.ndarray  # (k, 3): centre Hz, width Hz, relative amplitude
    slope: float  # 1/f exponent of the power spectrum
    band: tuple[float, float]  # preictal band, Hz
    strength: float  # preictal log-power gain


def _patient(seed: int, patient: int) -> _Patient:
    rng = np.random.default_rng([seed, 2, patient])
    shared = rng.standard_normal((CHANNELS, 3))
    mixing = np.eye(CHANNELS) + 0.35 * shared @ rng.standard_normal((3, CHANNELS))
    rhythms = np.column_stack(
        [
            rng.uniform([2, 8, 18], [5, 12, 26]),
            rng.uniform([1, 1.5, 3], [2, 3, 6]),
            rng.uniform([1.5, 2, 0.8], [3, 4, 1.5]),
        ]
    )
    i = (patient - 1) % len(SIGNATURE_STRENGTH)
    return _Patient(
        mixing,
        rng.lognormal(0, 0.3, CHANNELS),
        rhythms,
        float(rng.uniform(1.6, 2.0)),
        PREICTAL_BANDS[i],
        SIGNATURE_STRENGTH[i],
    )


def segment_signal(cfg: SyntheticConfig, segment: PlannedSegment) -> np.ndarray:
    """Draw one segment: float32 (samples, channels) in microvolts, ADC-quantised."""
    if cfg.scenario != "demo":
        return _scenario_signal(cfg, segment)
    n, fs = cfg.seconds * cfg.sampling_rate, cfg.sampling_rate
    traits = _patient(cfg.seed, segment.patient)
    hour = np.random.default_rng([cfg.seed, 3, *segment.hour_key])  # shared by the hour
    # Drawn from the hour and place alone, so an unsafe hour replays its preictal source.
    rng = np.random.default_rng([cfg.seed, 4, *segment.hour_key, segment.position])
    preictal = segment.label == 1 or segment.hour_key[1] == _CLASS_CODE["preictal"]
    freqs = np.fft.rfftfreq(n, 1 / fs)
    slope = traits.slope + hour.normal(0, 0.06)
    log_power = -slope * np.log(np.maximum(freqs, 0.3))
    log_power += _rhythms(traits, hour, freqs)
    nuisance = np.random.default_rng([cfg.seed, 5, *segment.hour_key])  # the implant's hour
    gain, tilt = nuisance.normal(0, 1, 2) * (cfg.hour_gain, cfg.hour_tilt)
    if tilt:  # log power turned about 10 Hz
        log_power += tilt * np.log(np.maximum(freqs, 0.3) / 10.0)
    in_band = (freqs >= traits.band[0]) & (freqs < traits.band[1])
    if preictal:
        log_power += traits.strength * in_band * hour.uniform(0.6, 1.4)
    spectrum = _white(rng, freqs.size)
    spectrum *= np.exp(log_power / 2)
    spectrum[:, (freqs < 0.1) | (freqs > 0.95 * fs / 2)] = 0
    sources = np.fft.irfft(spectrum, n=n, axis=1)  # (channels, samples)
    mixing = traits.mixing + hour.normal(0, 0.08, traits.mixing.shape)
    if preictal:  # preictal: more synchrony across electrodes
        mixing = mixing + traits.strength * 0.25 * hour.standard_normal((CHANNELS, 1))
    signal = (mixing @ sources).T  # (samples, channels)
    signal *= traits.gains * hour.lognormal(0, 0.15, CHANNELS)
    signal *= BACKGROUND_UV * np.exp(gain) / max(float(signal.std()), 1e-12)
    if segment.shift:
        signal = np.roll(signal, segment.shift, axis=0) + rng.normal(0, 2.0, signal.shape)
    _add_artefacts(rng, signal, fs)
    signal = np.round(signal / QUANTUM_UV) * QUANTUM_UV
    _drop_out(rng, signal, segment.dropout)
    return signal.astype(np.float32)


def _rhythms(traits: _Patient, hour: np.random.Generator, freqs: np.ndarray) -> np.ndarray:
    """The log power the hour's rhythms add (the patient's, varied by the hour), and the
    hour's own level above 30 Hz."""
    rhythm = np.zeros_like(freqs)
    for centre, width, amp in traits.rhythms * hour.lognormal(0, [0.05, 0.1, 0.35], (3, 3)):
        rhythm += amp * np.exp(-0.5 * ((freqs - centre) / width) ** 2)
    return np.log1p(rhythm) + hour.normal(0, 0.25) * (freqs > 30)


def _white(rng: np.random.Generator, bins: int) -> np.ndarray:
    """(channels, bins) complex Gaussian spectra: one independent source per electrode."""
    return rng.standard_normal((CHANNELS, bins)) + 1j * rng.standard_normal((CHANNELS, bins))


def _add_artefacts(rng: np.random.Generator, signal: np.ndarray, fs: int) -> None:
    """Large, fast transitions: a step on a few electrodes decaying over about a second."""
    n = signal.shape[0]
    for _ in range(rng.poisson(0.5 * n / (60 * fs))):
        start = int(rng.integers(n))
        channels = rng.choice(CHANNELS, int(rng.integers(1, 5)), replace=False)
        decay = np.exp(-np.arange(n - start) / (fs * rng.uniform(0.2, 1.5)))
        signal[start:, channels] += rng.normal(0, 8 * BACKGROUND_UV, len(channels)) * decay[:, None]


def _drop_out(rng: np.random.Generator, signal: np.ndarray, share: float) -> None:
    """Zero every electrode over a few stretches covering ``share`` of the segment."""
    n = signal.shape[0]
    if share >= 1.0:
        signal[:] = 0
        return
    lost = int(share * n)
    stretches = int(rng.integers(1, 4))
    pieces = rng.multinomial(lost, np.ones(stretches) / stretches) if lost else []
    for length in pieces:
        if length:
            start = int(rng.integers(0, n - length + 1))
            signal[start : start + length] = 0


# -- the scenario suite ----------------------------------------------------------------------


def mechanism(cfg: SyntheticConfig, patient: int) -> str:
    """The preictal mechanism of ``patient`` in the set's scenario."""
    return MIXED[(patient - 1) % len(MIXED)] if cfg.scenario == "mixed" else cfg.scenario


def focus_group(seed: int, patient: int) -> np.ndarray:
    """The patient's focus: the electrodes that spike and synchronise (sorted)."""
    rng = np.random.default_rng([seed, 6, patient])
    return np.sort(rng.choice(CHANNELS, GROUP, replace=False))


def _scenario_signal(cfg: SyntheticConfig, segment: PlannedSegment) -> np.ndarray:
    """A segment of a scenario: the demo's background, the scenario's preictal change, the
    nuisances of real implants. Draws as ``segment_signal`` does: hour effects from the
    hour, noise from the hour and place (an unsafe hour replays its preictal source)."""
    n, fs = cfg.seconds * cfg.sampling_rate, cfg.sampling_rate
    traits = _patient(cfg.seed, segment.patient)
    kind = mechanism(cfg, segment.patient)
    hour = np.random.default_rng([cfg.seed, 3, *segment.hour_key])
    rng = np.random.default_rng([cfg.seed, 4, *segment.hour_key, segment.position])
    implant = np.random.default_rng([cfg.seed, 5, *segment.hour_key])
    preictal = segment.label == 1 or segment.hour_key[1] == _CLASS_CODE["preictal"]
    strength = traits.strength * hour.uniform(0.6, 1.4) * preictal  # 0 for interictal hours
    gain, tilt = implant.normal(0, 1, 2) * (
        cfg.hour_gain or SCENARIO_HOUR_GAIN,
        cfg.hour_tilt or SCENARIO_HOUR_TILT,
    )

    freqs = np.fft.rfftfreq(n, 1 / fs)
    slope = traits.slope + hour.normal(0, 0.06) - tilt
    if kind == "slope":
        slope -= SLOPE_SHIFT * strength
    log_power = -slope * np.log(np.maximum(freqs, 0.3) / 10.0)  # turned about 10 Hz
    log_power += _rhythms(traits, hour, freqs)
    in_band = (freqs >= traits.band[0]) & (freqs < traits.band[1])
    if kind == "band":
        log_power += strength * in_band
    spectrum = _white(rng, freqs.size)
    amplitude = np.exp(log_power / 2) * ((freqs >= 0.1) & (freqs <= 0.95 * fs / 2))
    spectrum *= amplitude
    group = focus_group(cfg.seed, segment.patient)
    mixed = _Mixing(traits, hour, rng, group, amplitude, freqs, in_band, fs)
    signal = _mixed_signal(kind, mixed, spectrum, strength, n)
    signal *= traits.gains * hour.lognormal(0, 0.15, CHANNELS)
    signal *= np.exp(np.outer(np.linspace(-0.5, 0.5, n), rng.normal(0, 0.2, CHANNELS)))  # drift
    level = BACKGROUND_UV * np.exp(gain)
    signal *= level / max(float(signal.std()), 1e-12)
    if kind == "spikes":
        rate = SPIKES_PER_MINUTE * hour.lognormal(0, 0.3) * (1 + SPIKE_GAIN * strength)
        _add_spikes(rng, signal, fs, group, level, rate)
    mains = implant.uniform(0, 0.3) * level * implant.uniform(0.5, 1.5, CHANNELS)
    phase = 2 * np.pi * LINE_HZ * np.arange(n) / fs + rng.uniform(0, 2 * np.pi)
    signal += np.outer(np.sin(phase) + 0.3 * np.sin(2 * phase), mains)
    if segment.shift:
        signal = np.roll(signal, segment.shift, axis=0) + rng.normal(0, 2.0, signal.shape)
    _add_artefacts(rng, signal, fs)
    signal = np.round(signal / QUANTUM_UV) * QUANTUM_UV
    _fragmented_drop_out(rng, signal, segment.dropout, fs)
    return signal.astype(np.float32)


class _Mixing(NamedTuple):
    """What mixes a segment's sources into its electrodes (`_mixed_signal`)."""

    traits: object  # the patient's (`_patient`)
    hour: np.random.Generator  # the hour's draws
    rng: np.random.Generator  # the segment's draws
    group: np.ndarray  # the focus electrodes
    amplitude: np.ndarray  # the sources' spectral amplitude
    freqs: np.ndarray
    in_band: np.ndarray  # the frequencies of the patient's band
    fs: int


def _mixed_signal(kind: str, m: _Mixing, spectrum, strength: float, n: int) -> np.ndarray:
    """The sources mixed into (samples, channels), with the scenario's change where it
    lives in the mixing: synchrony of the focus, the band's amplitude modulated, or a
    slow rhythm's phase coupled to the band's power."""
    mixing = m.traits.mixing + m.hour.normal(0, 0.08, m.traits.mixing.shape)
    if kind == "synchrony":
        share = min(SYNC_BASE + SYNC_GAIN * strength, 0.9)
        spectrum = _synchronise(m.rng, spectrum, m.amplitude, mixing, m.group, m.in_band, share)
    else:
        spectrum = mixing @ spectrum
    signal = np.fft.irfft(spectrum, n=n, axis=1).T  # (samples, channels)
    if kind == "amplitude":
        depth = min(AM_BASE + AM_GAIN * strength, 0.9)
        t = np.arange(n) / m.fs
        wave = np.sin(2 * np.pi * t / m.rng.uniform(5, 20) + m.rng.uniform(0, 2 * np.pi))
        envelope = (1 + depth * wave) / np.sqrt(1 + depth**2 / 2)  # the band's power kept
        signal += np.fft.irfft(spectrum * m.in_band, n=n, axis=1).T * (envelope - 1)[:, None]
    if kind == "coupling":
        depth = min(COUPLING_BASE + COUPLING_GAIN * strength, 0.9)
        signal += _coupled(spectrum, m.freqs, m.traits.rhythms[0, 0], n, depth)
    return signal


def _coupled(
    spectrum: np.ndarray, freqs: np.ndarray, slow_hz: float, n: int, depth: float
) -> np.ndarray:
    """What to add so that each electrode's gamma (COUPLED_BAND) swells with the phase of
    its slow rhythm (``slow_hz`` +- 1 Hz): gamma x (1 + depth cos(phase)), its power kept."""
    slow = (np.abs(freqs - slow_hz) <= 1.0)[None, :]
    analytic = np.fft.ifft(  # the slow rhythm's analytic signal: positive frequencies, doubled
        np.concatenate([2 * spectrum * slow, np.zeros((spectrum.shape[0], n - freqs.size))], 1),
        axis=1,
    )
    phase = np.angle(analytic).T  # (samples, channels)
    gamma = (freqs >= COUPLED_BAND[0]) & (freqs < COUPLED_BAND[1])
    fast = np.fft.irfft(spectrum * gamma, n=n, axis=1).T
    envelope = (1 + depth * np.cos(phase)) / np.sqrt(1 + depth**2 / 2)
    return fast * (envelope - 1)


def _synchronise(
    rng: np.random.Generator,
    sources: np.ndarray,
    amplitude: np.ndarray,
    mixing: np.ndarray,
    group: np.ndarray,
    band: np.ndarray,
    share: float,
) -> np.ndarray:
    """The sources mixed into electrodes, the group's sharing a common part in ``band``.

    In ``band`` each electrode of the group becomes ``sqrt(1 - share)`` of itself plus
    ``sqrt(share)`` of one common signal at the electrode's expected power, signed as the
    electrode's covariance with the group's first: every band power stays the same in
    expectation for every ``share``, while the coherence of the group's electrodes grows
    with it.
    """
    out = mixing @ sources
    bins = np.flatnonzero(band)
    common = rng.standard_normal(bins.size) + 1j * rng.standard_normal(bins.size)
    level = np.sqrt((mixing[group] ** 2).sum(axis=1))  # each electrode's share of the sources
    sign = np.where((mixing[group] @ mixing[group[0]]) < 0, -1.0, 1.0)
    out[np.ix_(group, bins)] = np.sqrt(1 - share) * out[np.ix_(group, bins)] + np.sqrt(
        share
    ) * np.outer(sign * level, amplitude[bins] * common)
    return out


def _add_spikes(
    rng: np.random.Generator,
    signal: np.ndarray,
    fs: int,
    group: np.ndarray,
    level: float,
    per_minute: float,
) -> None:
    """Spike-and-slow-wave transients on the focus electrodes, ``per_minute`` on average."""
    n = signal.shape[0]
    t = np.arange(int(0.4 * fs)) / fs
    spike, slow = np.exp(-0.5 * ((t - 0.03) / 0.008) ** 2), np.exp(-0.5 * ((t - 0.15) / 0.05) ** 2)
    wave = 0.35 * slow - spike
    for _ in range(rng.poisson(per_minute * n / (60 * fs))):
        start = int(rng.integers(0, n - t.size))
        weights = rng.uniform(0.5, 1.0, group.size) * rng.uniform(4, 8) * level
        signal[start : start + t.size, group] += np.outer(wave, weights)


def dropout_runs(signal: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each stretch where every electrode is exactly zero."""
    zero = np.r_[0, (signal == 0).all(axis=1).astype(np.int8), 0]
    edges = np.diff(zero)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), (ends - starts).tolist(), strict=True))


def _fragmented_drop_out(rng: np.random.Generator, signal: np.ndarray, share: float, fs: int):
    """Zero every electrode over many runs covering ``share`` of the segment, as the real
    files lose theirs: at 49-75 % lost, 6 to 51 runs in 600 s, most of about a second and
    one or two of minutes (lengths drawn from a skewed Dirichlet)."""
    n = signal.shape[0]
    if share >= 1.0:
        signal[:] = 0
        return
    lost = int(round(share * n))
    if not lost:
        return
    runs = 1 + int(rng.poisson(60 * share * n / (600 * fs)))
    shortest = max(1, int(0.1 * fs))
    runs = max(1, min(runs, lost // shortest, n - lost + 1))
    base = min(shortest, lost // runs)
    lengths = base + rng.multinomial(lost - runs * base, rng.dirichlet(np.full(runs, 0.3)))
    gaps = rng.multinomial(n - lost - (runs - 1), rng.dirichlet(np.ones(runs + 1)))
    gaps[1:-1] += 1  # runs apart: as many runs as drawn
    start = 0
    for gap, length in zip(gaps, lengths, strict=False):
        start += int(gap)
        signal[start : start + int(length)] = 0
        start += int(length)
