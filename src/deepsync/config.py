"""One typed configuration: defaults, an optional TOML profile, command-line overrides.

The CLI builds a `Config` once and passes it down; nothing below the CLI reads the
environment or global state. Overrides name a key as ``section.key`` (``data.source``);
an unknown key or a value of the wrong type is a `DeepSyncError` listing what is valid.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from deepsync.errors import DeepSyncError
from deepsync.names import (
    BASELINE,
    CALIBRATIONS,
    ESTIMATORS,
    FAMILIES,
    FAMILY_WINDOWS,
    GROUPS,
    RECIPE_FAMILIES,
)

SOURCES = ("synthetic", "kaggle", "dir")
COMPETITION = "melbourne-university-seizure-prediction"
COMBINES = ("max", "mean", "std")
FREEZES = ("none", "backbone", "first_and_head")
# Preictal mechanisms of the synthetic source (deepsync.data.synthetic): `demo`, the embedded
# default, and the scenario suite, every one of them with real implants' nuisances.
SCENARIOS = ("demo", "band", "spikes", "synchrony", "slope", "amplitude", "coupling", "mixed")
PROFILES = Path(__file__).parent / "profiles"  # named profiles: --profile demo


@dataclass(frozen=True)
class DataConfig:
    """Where the segments come from and where the kit keeps its data."""

    source: str = "synthetic"  # synthetic | kaggle | dir
    root: Path = Path("data")  # the kit's own data folder (synthetic set, downloads, index)
    data_dir: Path | None = None  # source=dir: a folder read in place, never written to
    competition: str = COMPETITION
    kaggle_dataset: str = ""  # source=kaggle: "owner/slug" of a dataset holding a copy

    def check(self) -> None:
        if self.source not in SOURCES:
            raise DeepSyncError(f"data.source={self.source!r} is not one of {', '.join(SOURCES)}")
        if self.source == "dir" and self.data_dir is None:
            raise DeepSyncError("SOURCE=dir needs DATA_DIR=/path/to/the/data (data.data_dir)")
        if self.kaggle_dataset and self.kaggle_dataset.count("/") != 1:
            raise DeepSyncError(
                f"data.kaggle_dataset={self.kaggle_dataset!r} must look like owner/slug"
            )


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the embedded synthetic data set (the default source)."""

    seed: int = 2016
    patients: int = 3
    interictal_hours: int = 8  # per patient; six segments per hour, as in the real data
    preictal_hours: int = 4  # per patient
    unsafe_hours: int = 1  # interictal hours per patient marked safe=0 (the leak)
    extra_preictal: int = 2  # per patient: labelled preictal files of the old test set
    test_hours: int = 4  # per patient; test segments are shuffled out of their hours
    seconds: int = 120  # per segment, up to the real 600
    sampling_rate: int = 400  # Hz, as the real recordings
    # Real implants' hour-to-hour changes, shared by an hour's six segments (0: none):
    hour_gain: float = 0.0  # standard deviation of the log of a broadband gain
    hour_tilt: float = 0.0  # standard deviation of a change of the log-log spectral slope
    # The preictal mechanism (SCENARIOS): demo (band power and synchrony, the embedded
    # default) or one of the suite's, which always carry the nuisances of real implants
    # (their hour gain and tilt are these two when set, else 0.35 and 0.3).
    scenario: str = "demo"
    # > 0: each patient's file counts are the real competition's times this (training
    # interictal, unsafe, preictal, labelled old-test and test files; at least 3 preictal
    # hours), instead of the five counts above: `make bench-scale`'s sizes (1/32 .. 1/4).
    scale: float = 0.0

    def check(self) -> None:
        s = self
        if not 1 <= s.seconds <= 600:
            raise DeepSyncError(f"synthetic.seconds={s.seconds} must be between 1 and 600")
        if not 1 <= s.patients <= 9:
            raise DeepSyncError(f"synthetic.patients={s.patients} must be between 1 and 9")
        for name in ("interictal_hours", "preictal_hours", "test_hours"):
            if getattr(s, name) < 1:
                raise DeepSyncError(f"synthetic.{name} must be at least 1")
        if not 0 <= s.unsafe_hours < s.interictal_hours:
            raise DeepSyncError("synthetic.unsafe_hours must be below synthetic.interictal_hours")
        if s.extra_preictal < 0:
            raise DeepSyncError("synthetic.extra_preictal must not be negative")
        if not 0 <= s.scale <= 1 or (s.scale and s.patients > 3):
            raise DeepSyncError(
                f"synthetic.scale={s.scale} must be between 0 and 1, with at most the real "
                "3 patients"
            )
        if s.hour_gain < 0 or s.hour_tilt < 0:
            raise DeepSyncError("synthetic.hour_gain and synthetic.hour_tilt must not be negative")
        if s.scenario not in SCENARIOS:
            raise DeepSyncError(
                f"synthetic.scenario={s.scenario!r} is not one of {', '.join(SCENARIOS)}"
            )


@dataclass(frozen=True)
class FeaturesConfig:
    """The spectrogram image stack and band-power table that `make features` caches."""

    cache_root: Path = Path("cache")  # features land in cache/features-<parameter hash>/
    window_seconds: float = 1.0  # STFT frame (Hann window) length
    hop_seconds: float = 0.5  # STFT hop
    bands: int = 80  # log-spaced frequency bands up to Nyquist (image height)
    min_hz: float = 1.0  # lowest band edge
    frames: int = 144  # time frames the STFT frames are pooled into (image width)
    table_window_seconds: float = 30.0  # window of the band-power table (20-30 s in 2016)
    table_max_dropout: float = 0.5  # a table window losing more than this is dropped
    impute_max_frames: int = 2  # masked gaps up to this many pooled frames are interpolated
    # Feature families (deepsync.features.families): all (the kit's, per table window:
    # power, corr, bandcorr, coherence, entropy, hjorth, stats) and the 2016 winners' on
    # their own windows (rlp: the baseline's relative log power; xfcoh, feng, fengmore;
    # winners: the four), or some of them
    families: str = "all,rlp"

    @cached_property
    def family_names(self) -> tuple[str, ...]:
        """``families`` as names in the registry's order (``all``, ``winners`` expanded)."""
        return parse_families(self.families)

    def check(self) -> None:
        f = self
        if not 0 < f.hop_seconds <= f.window_seconds:
            raise DeepSyncError("features.hop_seconds must be above 0 and at most window_seconds")
        if f.bands < 1 or f.frames < 1:
            raise DeepSyncError("features.bands and features.frames must be at least 1")
        if f.table_window_seconds < f.window_seconds:
            raise DeepSyncError("features.table_window_seconds must be at least window_seconds")
        if not 0 <= f.table_max_dropout <= 1:
            raise DeepSyncError("features.table_max_dropout must be between 0 and 1")
        if f.min_hz <= 0 or f.impute_max_frames < 0:
            raise DeepSyncError("features.min_hz must be positive, impute_max_frames >= 0")
        _ = f.family_names  # parsed once here: a bad value is its one-line error


@dataclass(frozen=True)
class TrainConfig:
    """What `make train` fits and how it folds: one run folder, ``runs_root/run``."""

    run: str = "default"  # runs/<run>/: config, folds, checkpoints, OOF, metrics
    runs_root: Path = Path("runs")
    # comma-separated: baseline, cnn, a recipe of the 2016 winners (feng_knn, ...), or
    # ESTIMATOR[:FAMILY+FAMILY] (gbm:power+corr, knn, svm:all; families default to share).
    # The defaults, chosen on the scenario suite by the worst scenario, then the mean
    # (README, "Scenarios"): the CNN, the log shares in a logistic alone and with the
    # correlations, the log shares with coherences in LightGBM, and the winners' recipe
    models: str = "baseline,cnn,logistic:share,logistic:share+corr,gbm:share+coherence"
    folds: int = 3  # per patient, stratified and grouped by hour
    seed: int = 2016  # folds, initialisation, shuffling, augmentation
    patients: str = ""  # comma-separated patient numbers; empty: all

    @cached_property
    def model_specs(self) -> tuple[ModelSpec, ...]:
        """``models``, each as a `ModelSpec`."""
        return tuple(parse_models(self.models))

    @cached_property
    def patient_numbers(self) -> tuple[int, ...]:
        """``patients`` as numbers; empty: every patient."""
        return _numbers(self.patients, "train.patients")

    def check(self) -> None:
        _ = self.model_specs, self.patient_numbers  # parsed once here, or a one-line error
        if self.folds < 2:
            raise DeepSyncError(f"train.folds={self.folds} must be at least 2")
        if not self.run or "/" in self.run:
            raise DeepSyncError(f"train.run={self.run!r} must be a plain folder name")


@dataclass(frozen=True)
class BaselineConfig:
    """The kit's window models on rows of feature families (``ESTIMATOR:FAMILIES`` in
    ``train.models``); `baseline` and the winners' other recipes keep their own settings."""

    combine: str = "max"  # every window model's window scores to a segment: max | mean | std
    iterations: int = 150  # gbm boosting rounds
    learning_rate: float = 0.05  # gbm
    neighbours: int = 25  # knn

    def check(self) -> None:
        _one_of("baseline.combine", self.combine, COMBINES)
        if self.neighbours < 1:
            raise DeepSyncError(f"baseline.neighbours={self.neighbours} must be at least 1")
        if self.iterations < 1:
            raise DeepSyncError(f"baseline.iterations={self.iterations} must be at least 1")


@dataclass(frozen=True)
class CnnConfig:
    """The timm CNN on the 16-channel spectrogram stacks."""

    model: str = "inception_resnet_v2"  # any timm model name, or the kit's (electrodenet)
    pretrained_file: Path | None = None  # ImageNet weights (.safetensors/.pth); none: random
    pretrained_hub: bool = False  # else timm's own weights from the Hugging Face cache
    freeze: str = "none"  # none | backbone (head only) | first_and_head (the 2020 project)
    scope: str = "patient"  # patient: a model per patient and fold | all: one per fold
    level: str = "segment"  # segment: whole stacks | window: crops, scores combined
    window_frames: int = 36  # level=window: crop width in time frames
    combine: str = "max"  # level=window: window scores to a segment score: max | mean | std
    input_height: int = 0  # resize the stack to this (0: as cached, features.bands)
    input_width: int = 0  # (0: as cached, features.frames or window_frames)
    normalise: str = "channel"  # channel | channel_band: statistics of the training fold
    augment: bool = True  # time/frequency masks, time shift, per-electrode gain
    drop_rate: float = 0.0  # dropout before the classifier
    mixup: float = 0.0  # alpha of the Beta(alpha, alpha) mixing of training pairs; 0: off
    epochs: int = 20
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    clip_grad: float = 1.0  # max gradient norm; 0: off
    patience: int = 5  # select=best: epochs without a better fold AUC before stopping
    select: str = "best"  # best: the epoch of the best held-out AUC (optimistic) | last
    precise_bn: bool = True  # recompute batch-norm statistics on the training fold before eval
    balance: str = "loss"  # loss (positive class weight) | sampler (balanced batches)
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on A100/L4/H100, fp16 on T4/V100, fp32 on CPU) | ...
    channels_last: bool = True
    compile: bool = False  # torch.compile (pays on a GPU for long runs)
    deterministic: bool = False  # GPU: deterministic algorithms only (a CPU run always is)
    loader_workers: int = 0  # DataLoader processes, kept across epochs (0: in this process)
    loader_prefetch: int = 2  # batches each loader worker prepares ahead
    fold_processes: int = 0  # folds trained at once, a process each (0: one per GPU if several)

    def check(self) -> None:
        c = self
        for key, valid in (
            ("combine", COMBINES),
            ("freeze", FREEZES),
            ("level", ("segment", "window")),
            ("normalise", ("channel", "channel_band")),
            ("balance", ("loss", "sampler")),
            ("select", ("best", "last")),
            ("scope", ("patient", "all")),
            ("device", ("auto", "cpu", "cuda")),
            ("precision", ("auto", "fp32", "bf16", "fp16")),
        ):
            _one_of(f"cnn.{key}", getattr(c, key), valid)
        if c.fold_processes < 0 or c.loader_workers < 0:
            raise DeepSyncError("cnn.fold_processes and cnn.loader_workers must not be negative")
        if min(c.epochs, c.batch_size, c.window_frames, c.loader_prefetch) < 1:
            raise DeepSyncError("cnn.epochs, batch_size, window_frames, loader_prefetch >= 1")
        if c.lr <= 0 or c.weight_decay < 0 or c.clip_grad < 0 or c.warmup_epochs < 0:
            raise DeepSyncError("cnn.lr must be positive; weight_decay, clip_grad, warmup >= 0")
        if c.mixup < 0:
            raise DeepSyncError(f"cnn.mixup={c.mixup} must not be negative (0: off)")
        if not 0 <= c.drop_rate < 1:
            raise DeepSyncError(f"cnn.drop_rate={c.drop_rate} must be in [0, 1)")
        if c.input_height < 0 or c.input_width < 0:
            raise DeepSyncError("cnn.input_height and input_width must be 0 (as cached) or more")


@dataclass(frozen=True)
class SubmitConfig:
    """What `make submit` writes from a run, and where."""

    model: str = "auto"  # auto (best pooled OOF AUC) | blend | a model of the run (cnn, ...)
    blend: str = ""  # models in the blend, comma-separated; empty: every model of the run
    blend_weights: str = ""  # one weight each (2,1,1); empty: chosen on the OOF folds
    calibration: str = (
        "auto"  # auto (best pooled OOF AUC) | none | rank | standardise | prior | platt
    )
    name: str = ""  # submissions/<name>.csv; empty: the run's name
    folder: Path = Path("submissions")  # submissions, their descriptions and ledger.csv
    tta: int = 0  # CNN: extra time-shifted copies per stack at prediction (0: none)

    @cached_property
    def blend_specs(self) -> tuple[ModelSpec, ...]:
        """``blend`` as models; empty: every model of the run."""
        return tuple(parse_models(self.blend)) if self.blend else ()

    @cached_property
    def weights(self) -> tuple[float, ...]:
        """``blend_weights`` as numbers (not negative, not all zero); empty: chosen."""
        if not self.blend_weights:
            return ()
        try:
            weights = tuple(float(w) for w in _items(self.blend_weights))
        except ValueError:
            weights = (-1.0,)
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise DeepSyncError(
                f"submit.blend_weights={self.blend_weights!r} must look like 2,1,1 "
                "(not negative, not all zero)"
            )
        return weights

    def check(self) -> None:
        _one_of("submit.calibration", self.calibration, ("auto", *CALIBRATIONS))
        _ = self.blend_specs, self.weights  # parsed once here, or a one-line error
        if self.model not in ("auto", "blend"):
            parse_models(self.model)  # a model's name; the run must hold it (make submit)
        if self.name and not _plain_name(self.name):
            raise DeepSyncError(
                f"submit.name={self.name!r} must be a plain file name (letters, digits, "
                "'.', '_', '-'), without .csv"
            )
        if not 0 <= self.tta <= 16:
            raise DeepSyncError(f"submit.tta={self.tta} must be between 0 and 16")


@dataclass(frozen=True)
class KernelsConfig:
    """Kaggle kernels that run this pipeline on Kaggle's GPUs (`make kernel`)."""

    user: str = ""  # Kaggle user owning kernels and datasets; empty: from the credentials
    folder: Path = Path("kernels")  # rendered bundles, and what their runs sent back
    patients: str = ""  # "1,2,3": one kernel per patient; empty: one kernel for all
    dataset: str = ""  # owner/slug attached as input; empty: <user>/deepsync-<run>-input
    weights_dataset: str = ""  # owner/slug holding the file cnn.pretrained_file names
    accelerator: str = "NvidiaTeslaT4"  # machine_shape; a bare enable_gpu gets a P100
    internet: bool = False  # the kernel needs none: the package travels inside it
    private: bool = True
    upload: str = "features"  # make kaggle-dataset: features (the cache) | data (segments)

    @cached_property
    def patient_numbers(self) -> tuple[int, ...]:
        """``patients`` as numbers: a kernel each; empty: one kernel for all."""
        return _numbers(self.patients, "kernels.patients")

    def check(self) -> None:
        _one_of("kernels.upload", self.upload, ("features", "data"))
        _ = self.patient_numbers  # parsed once here, or a one-line error
        for key, ref in (
            ("kernels.dataset", self.dataset),
            ("kernels.weights_dataset", self.weights_dataset),
        ):
            if ref and not re.fullmatch(r"[A-Za-z0-9_-]+/[A-Za-z0-9_-]+", ref):
                raise DeepSyncError(f"{key}={ref!r} must look like owner/slug")


@dataclass(frozen=True)
class Config:
    """Every setting of the kit, one section per concern."""

    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    cnn: CnnConfig = field(default_factory=CnnConfig)
    submit: SubmitConfig = field(default_factory=SubmitConfig)
    kernels: KernelsConfig = field(default_factory=KernelsConfig)

    def validate(self) -> Config:
        """Check values that a type alone cannot, each section its own, then what ties two
        sections; return self so calls chain."""
        for f in dataclasses.fields(self):
            getattr(self, f.name).check()
        c = self.cnn
        if c.window_frames > self.features.frames:
            raise DeepSyncError(
                f"cnn.window_frames={c.window_frames} exceeds features.frames="
                f"{self.features.frames}"
            )
        return self

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The resolved configuration as plain JSON-ready values."""
        return {
            f.name: {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in dataclasses.asdict(getattr(self, f.name)).items()
            }
            for f in dataclasses.fields(self)
        }


@dataclass(frozen=True)
class ModelSpec:
    """One entry of ``train.models``: what it is called, and how it is made."""

    name: str  # as written in tables: baseline, cnn, gbm:power+corr, feng_knn
    estimator: str  # a name of ESTIMATORS or RECIPE_FAMILIES (deepsync.names), or cnn
    families: tuple[str, ...] = ()

    @property
    def folder(self) -> str:
        return model_folder(self.name)


def model_folder(name: str) -> str:
    """A model's folder in a run: its name with ':' as '-' (gbm-power+corr)."""
    return name.replace(":", "-")


def parse_families(text: str, key: str = "features.families") -> tuple[str, ...]:
    """``"power,corr"``, ``"power+corr"``, ``"all"`` (the kit's families, on the table's
    windows) or ``"winners"`` (theirs, on their own), mixed, to names in `FAMILIES` order."""
    names = words(text.replace("+", ","))
    expanded = {m for n in names for m in GROUPS.get(n, (n,))}
    unknown = sorted(expanded - set(FAMILIES))
    if unknown or not names:
        raise DeepSyncError(
            f"{key}={text!r}: use all (the kit's families), winners (theirs), or some of "
            f"{', '.join(FAMILIES)}"
        )
    return tuple(n for n in FAMILIES if n in expanded)


def same_windows(names: tuple[str, ...], key: str) -> tuple[str, ...]:
    """``names``, if they share one kind of window (the table's, or one length of their
    own); else a one-line error: their rows could not stand side by side."""
    lengths = {FAMILY_WINDOWS[n] for n in names}
    if len(lengths) > 1:
        shown = ", ".join(f"{n} ({FAMILY_WINDOWS[n] or 'table'} s)" for n in names)
        raise DeepSyncError(
            f"{key}: {shown} are cut into windows of different lengths; a model reads "
            "families of one kind of window"
        )
    return names


def parse_models(text: str) -> list[ModelSpec]:
    """``train.models`` to specs, checked; a bad entry is an error naming the choices."""
    specs = []
    for entry in _items(text) or [""]:
        estimator, _, families = entry.partition(":")
        if entry == "cnn":
            specs.append(ModelSpec("cnn", "cnn"))
        elif entry in ("baseline", *RECIPE_FAMILIES):
            recipe = BASELINE if entry == "baseline" else entry
            reads = parse_families("+".join(RECIPE_FAMILIES[recipe]))
            specs.append(ModelSpec(entry, recipe, reads))
        elif estimator in ESTIMATORS:
            key = f"train.models entry {entry}"
            names = same_windows(parse_families(families or "share", key), key)
            shown = "all" if families == "all" else "+".join(names)
            specs.append(ModelSpec(f"{estimator}:{shown}", estimator, names))
        else:
            raise DeepSyncError(
                f"train.models entry {entry!r}: use baseline, cnn, a recipe of the 2016 "
                f"winners ({', '.join(RECIPE_FAMILIES)}), or ESTIMATOR[:FAMILIES] with an "
                f"estimator of {', '.join(ESTIMATORS)} and families joined by + "
                "(gbm:power+corr, svm:all)"
            )
    names = [s.name for s in specs]
    if not specs or len(set(names)) != len(names):
        raise DeepSyncError(f"train.models={text!r}: name each model once")
    return specs


def words(text: str) -> tuple[str, ...]:
    """A comma list, a setting's or a command-line option's, to its words (stripped, no
    empty ones): with `_items`, the only places the kit splits one."""
    return tuple(w for w in _items(text) if w)


def _items(text: str) -> list[str]:
    """Every item of a comma list, stripped, empty ones kept (to be refused); none for ""."""
    return [w.strip() for w in text.split(",")] if text else []


def numbers(text: str, what: str, kind: type = int, example: str = "1,2") -> tuple:
    """A comma list of ``kind`` numbers; else a one-line error naming ``what``."""
    try:
        return tuple(kind(w) for w in _items(text))
    except ValueError:
        raise DeepSyncError(f"{what} {text!r}: give numbers like {example}") from None


def _one_of(key: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise DeepSyncError(f"{key}={value!r}: use {' | '.join(valid)}")


def _numbers(text: str, key: str) -> tuple[int, ...]:
    """``"1,3"`` to (1, 3); empty to (); else a one-line error naming ``key``."""
    parts = _items(text)
    if not all(p.isdecimal() and p.isascii() for p in parts):
        raise DeepSyncError(f"{key}={text!r} must look like 1,3")
    return tuple(int(p) for p in parts)


def _plain_name(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name)) and not name.endswith(".csv")


def load_config(profile: Path | None = None, overrides: typing.Iterable[str] = ()) -> Config:
    """Defaults, then the TOML ``profile`` if given, then ``section.key=value`` overrides."""
    values: dict[str, dict[str, Any]] = {}
    if profile is not None:
        values = read_toml(profile, "profile", PROFILES)[0]
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise DeepSyncError(f"override {item!r} must look like section.key=value")
        values.setdefault(section, {})[name] = raw.strip()
    return _build(values).validate()


def read_toml(given: Path | str, what: str, named: Path) -> tuple[dict[str, Any], Path]:
    """The values of a TOML file, and its path: ``given``, else ``named/<given>.toml``.

    A one-line error when it is missing, a folder, not text, or not TOML; ``what`` names
    it ("profile"), ``named`` is the folder of the kit's named ones.
    """
    path = Path(given)
    if not path.exists() and (named / f"{given}.toml").exists():
        path = named / f"{given}.toml"
    names = ", ".join(sorted(p.stem for p in named.glob("*.toml")))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), path
    except FileNotFoundError:
        raise DeepSyncError(f"{what} {given} does not exist; named {what}s: {names}") from None
    except IsADirectoryError:
        raise DeepSyncError(
            f"{what} {given} is a folder: give a TOML file, or a named {what} ({names})"
        ) from None
    except UnicodeDecodeError:
        raise DeepSyncError(f"{what} {given} is not a text file: give a TOML file") from None
    except tomllib.TOMLDecodeError as error:
        raise DeepSyncError(f"{what} {path} is not valid TOML: {error}") from None


def from_dict(values: dict[str, dict[str, Any]]) -> Config:
    """A configuration from `Config.to_dict`'s form (some or all sections), checked."""
    return _build(values).validate()


def _build(values: dict[str, dict[str, Any]]) -> Config:
    sections = {f.name: f for f in dataclasses.fields(Config)}
    built = {}
    for section, settings in values.items():
        if section not in sections or not isinstance(settings, dict):
            raise DeepSyncError(
                f"unknown config section {section!r}; valid sections: {', '.join(sections)}"
            )
        cls = typing.get_type_hints(Config)[section]
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, value in settings.items():
            if name not in hints:
                raise DeepSyncError(
                    f"unknown setting {section}.{name}; valid: "
                    + ", ".join(f"{section}.{k}" for k in hints)
                )
            kwargs[name] = _coerce(f"{section}.{name}", value, hints[name])
        built[section] = cls(**kwargs)
    return Config(**built)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Turn a profile or command-line value into the field's type, or say why not."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if type(None) in options and value in (None, "", "none", "None"):
        return None
    kind = next(t for t in options if t is not type(None))
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int and isinstance(value, float | bool):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise DeepSyncError(f"{key}={value!r} is not a valid {kind.__name__}") from None
