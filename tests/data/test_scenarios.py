"""The synthetic source's scenario suite: each preictal mechanism does what its name says,
and every scenario carries real implants' nuisances and fragmented dropout.

Each mechanism is checked on pairs of segments drawn from the same hour and place, once as
interictal and once as preictal: every random draw is the same, so the pair differs by the
mechanism alone.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sp

from deepsync.config import SCENARIOS, SyntheticConfig, load_config
from deepsync.data import synthetic
from deepsync.data.synthetic import PlannedSegment
from deepsync.errors import DeepSyncError

FS = 400
STATS = Path(__file__).resolve().parents[3] / "shared/data/melbourne/per_file_stats"


def config(scenario: str, seconds: int = 60) -> SyntheticConfig:
    return SyntheticConfig(scenario=scenario, seconds=seconds)


def pair(cfg: SyntheticConfig, patient: int, hour: int = 0, position: int = 1):
    """(interictal, preictal) float64 signals of one hour and place, without dropout."""
    segments = [
        PlannedSegment(
            name=f"{patient}_1_{label}.mat",
            patient=patient,
            label=label,
            hour_key=(patient, 0, hour),
            sequence=1,
            position=position,
            safe=True,
            kind="train",
            shift=0,
            dropout=0.0,
        )
        for label in (0, 1)
    ]
    return [synthetic.segment_signal(cfg, s).astype(np.float64) for s in segments]


def band_power(x: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Per electrode: the mean Welch power in ``band``."""
    f, p = sp.welch(x, FS, nperseg=FS * 2, axis=0)
    inside = (f >= band[0]) & (f < band[1])
    return p[inside].mean(axis=0)


def group_coherence(x: np.ndarray, group: np.ndarray, band: tuple[float, float]) -> float:
    """The mean magnitude-squared coherence in ``band`` over the pairs of ``group``."""
    values = []
    for i, a in enumerate(group):
        for b in group[i + 1 :]:
            f, c = sp.coherence(x[:, a], x[:, b], FS, nperseg=FS)
            values.append(c[(f >= band[0]) & (f < band[1])].mean())
    return float(np.mean(values))


def patient_band(cfg: SyntheticConfig, patient: int) -> tuple[float, float]:
    return synthetic._patient(cfg.seed, patient).band


def test_every_scenario_is_a_valid_setting_and_a_typo_is_one_line():
    assert SCENARIOS[0] == "demo" and len(SCENARIOS) >= 8  # the demo, six mechanisms, mixed
    for scenario in SCENARIOS:
        assert load_config(overrides=[f"synthetic.scenario={scenario}"]).synthetic.scenario
    with pytest.raises(DeepSyncError, match="synthetic.scenario='bursts' is not one of demo"):
        load_config(overrides=["synthetic.scenario=bursts"])


@pytest.mark.parametrize("scenario", SCENARIOS[1:])
def test_a_scenario_is_deterministic_from_the_seed(scenario):
    cfg = config(scenario, seconds=10)
    segment = synthetic.plan(cfg)[3]
    first = synthetic.segment_signal(cfg, segment)
    assert first.dtype == np.float32 and first.shape == (10 * FS, 16)
    np.testing.assert_array_equal(first, synthetic.segment_signal(cfg, segment))
    other = synthetic.segment_signal(replace(cfg, seed=cfg.seed + 1), segment)
    assert not np.array_equal(first, other)


def test_band_raises_the_patient_band_and_less_for_the_hard_patient():
    cfg = config("band")
    gains = []
    for patient in (1, 3):
        quiet, preictal = pair(cfg, patient)
        band = patient_band(cfg, patient)
        gains.append(np.median(band_power(preictal, band) / band_power(quiet, band)))
    assert gains[1] > 2.0  # the easy patient: several times the power
    assert 1.0 < gains[0] < gains[1]  # the hard one: less


def test_synchrony_raises_coherence_at_unchanged_band_power():
    cfg = config("synchrony")
    group = synthetic.focus_group(cfg.seed, 3)
    others = np.setdiff1d(np.arange(16), group)[:4]  # electrodes outside the focus
    band = patient_band(cfg, 3)
    outside = (0.5, band[0]) if band[0] > 4 else (band[1], band[1] + 20)
    ratios, outer, lift, calm = [], [], [], []
    for hour in range(4):
        quiet, preictal = pair(cfg, 3, hour)
        ratios.append(band_power(preictal, band) / band_power(quiet, band))
        outer.append(band_power(preictal, outside) / band_power(quiet, outside))
        lift.append(group_coherence(preictal, group, band) - group_coherence(quiet, group, band))
        calm.append(group_coherence(preictal, others, band) - group_coherence(quiet, others, band))
    ratios, outer = np.array(ratios), np.array(outer)
    np.testing.assert_allclose(ratios.mean(axis=0), 1.0, rtol=0.08)  # each electrode
    assert abs(np.log(ratios).mean()) < 0.02  # all: the same power in expectation
    np.testing.assert_allclose(outer, 1.0, rtol=0.03)  # other bands: drift, quantisation only
    assert min(lift) > 0.15  # the focus electrodes cohere
    assert max(np.abs(calm)) < 0.03  # the others do not


def test_slope_flattens_the_spectrum():
    cfg = config("slope")
    quiet, preictal = pair(cfg, 3)

    def slope(x):
        f, p = sp.welch(x.mean(axis=1), FS, nperseg=FS * 2)
        keep = (f >= 2) & (f <= 150) & (np.abs(f - 50) > 3) & (np.abs(f - 100) > 3)
        return np.polyfit(np.log(f[keep]), np.log(p[keep]), 1)[0]

    assert slope(preictal) - slope(quiet) > 0.2


def test_amplitude_modulates_a_band_at_unchanged_power():
    cfg = config("amplitude", seconds=120)
    band = patient_band(cfg, 3)
    quiet, preictal = pair(cfg, 3)
    np.testing.assert_allclose(
        band_power(preictal, band).mean() / band_power(quiet, band).mean(), 1.0, rtol=0.1
    )

    def envelope_spread(x):
        b, a = sp.butter(4, band, btype="band", fs=FS)
        power = sp.filtfilt(b, a, x, axis=0) ** 2
        smooth = power[: len(power) // FS * FS].reshape(-1, FS, 16).mean(axis=1)  # 1 s
        return float(np.median(smooth.std(axis=0) / smooth.mean(axis=0)))

    assert envelope_spread(preictal) > 1.3 * envelope_spread(quiet)


def test_spikes_come_more_often_on_the_focus_electrodes():
    cfg = config("spikes", seconds=300)
    group = synthetic.focus_group(cfg.seed, 3)
    quiet, preictal = pair(cfg, 3)

    def spikes(x):
        trace = x[:, group].mean(axis=1)
        low = trace < -4 * np.median(np.abs(trace)) / 0.6745  # far below the background
        return int((np.diff(low.astype(int)) == 1).sum())

    assert spikes(preictal) > 1.8 * max(spikes(quiet), 1)
    assert spikes(quiet) > 0  # interictal spikes too: the rate differs, not their presence


def test_coupling_ties_gamma_to_the_slow_phase_at_unchanged_power():
    cfg = config("coupling")
    slow = synthetic._patient(cfg.seed, 3).rhythms[0, 0]
    quiet, preictal = pair(cfg, 3)
    np.testing.assert_allclose(
        band_power(preictal, (30, 90)).mean() / band_power(quiet, (30, 90)).mean(), 1, 0.03
    )

    def modulation(x):  # per electrode: gamma's envelope against the cosine of the slow phase
        b, a = sp.butter(3, [slow - 1, slow + 1], btype="band", fs=FS)
        phase = np.angle(sp.hilbert(sp.filtfilt(b, a, x, axis=0), axis=0))
        b, a = sp.butter(4, [30, 90], btype="band", fs=FS)
        envelope = np.abs(sp.hilbert(sp.filtfilt(b, a, x, axis=0), axis=0))
        return np.median(
            [np.corrcoef(envelope[:, c], np.cos(phase[:, c]))[0, 1] for c in range(16)]
        )

    assert modulation(preictal) > modulation(quiet) + 0.05


def test_mixed_gives_each_patient_its_own_mechanism():
    mixed = config("mixed", seconds=10)
    assert [synthetic.mechanism(mixed, p) for p in (1, 2, 3, 4)] == [
        "synchrony",
        "amplitude",
        "slope",
        "synchrony",
    ]
    for patient, alone in ((1, "synchrony"), (3, "slope")):
        np.testing.assert_array_equal(
            pair(mixed, patient)[1], pair(config(alone, seconds=10), patient)[1]
        )


def test_every_scenario_carries_hour_gain_mains_and_drift():
    cfg = config("band", seconds=30)
    levels = np.array(
        [
            [np.log(pair(cfg, 2, hour, position)[0].std()) for position in (1, 2, 3)]
            for hour in range(6)
        ]
    )
    assert levels.mean(axis=1).std() > 3 * levels.std(axis=1).mean()  # shared by the hour
    x = pair(cfg, 2)[0]
    f, p = sp.welch(x, FS, nperseg=FS * 4, axis=0)
    near = (np.abs(f - 50) > 2) & (np.abs(f - 50) < 8)
    assert np.median(p[np.abs(f - 50) < 0.3].max(axis=0) / p[near].mean(axis=0)) > 10  # 50 Hz
    demo = synthetic.segment_signal(replace(cfg, scenario="demo"), synthetic.plan(cfg)[0])
    f, p = sp.welch(demo, FS, nperseg=FS * 4, axis=0)
    assert np.median(p[np.abs(f - 50) < 0.3].max(axis=0) / p[near].mean(axis=0)) < 3  # not here


def test_dropout_comes_in_many_runs_of_every_electrode():
    rng = np.random.default_rng(0)
    x = np.ones((600 * FS, 16))
    synthetic._fragmented_drop_out(rng, x, 0.6, FS)
    runs = synthetic.dropout_runs(x)
    assert abs((x == 0).all(axis=1).mean() - 0.6) < 1e-5
    assert ((x == 0).any(axis=1) == (x == 0).all(axis=1)).all()  # every electrode at once
    assert 6 <= len(runs) <= 60  # the real files: 6 to 51 runs at 49-75 % lost
    lengths = sorted(length for _, length in runs)
    assert lengths[-1] > 10 * lengths[len(lengths) // 2]  # a long run, many short ones
    for share in (0.0, 1.0, 0.001):
        y = np.ones((1000, 16))
        synthetic._fragmented_drop_out(rng, y, share, FS)
        assert (y == 0).all(axis=1).sum() == round(share * 1000)


def test_dropout_shares_follow_the_real_files_patient_by_patient():
    cfg = SyntheticConfig(scenario="band", interictal_hours=40, preictal_hours=10, test_hours=20)
    planned = synthetic.plan(cfg)
    kept = {p: np.mean([s.dropout == 0 for s in planned if s.patient == p]) for p in (1, 2, 3)}
    real = synthetic.dropout_quantiles()  # kept whole: about 61, 41 and 90 % of the files
    for p in (1, 2, 3):
        assert abs(kept[p] - np.mean(real[:, p - 1] == 0)) < 0.08
    assert kept[3] > kept[1] > kept[2]
    heavy = [s.dropout for s in planned if 0.4 < s.dropout < 1.0]
    assert heavy  # heavy partial dropout, as in the three real files
    demo = synthetic.plan(SyntheticConfig())
    assert max(s.dropout for s in demo if s.dropout < 1) <= 0.3  # the demo keeps its own


def test_the_embedded_dropout_table_is_the_real_files_one():
    if not STATS.exists():
        pytest.skip(f"{STATS} is not here: the check against the real per-file stats skips")
    np.testing.assert_allclose(
        synthetic.dropout_table_from_stats(STATS), synthetic.dropout_quantiles(), atol=1e-4
    )
