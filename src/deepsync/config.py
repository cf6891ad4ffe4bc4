"""One typed configuration: defaults, an optional TOML profile, command-line overrides.

The CLI builds a `Config` once and passes it down; nothing below the CLI reads the
environment or global state. Overrides name a key as ``section.key`` (``data.source``);
an unknown key or a value of the wrong type is a `DeepSyncError` listing what is valid.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from deepsync.errors import DeepSyncError

SOURCES = ("synthetic", "kaggle", "dir")
COMPETITION = "melbourne-university-seizure-prediction"


@dataclass(frozen=True)
class DataConfig:
    """Where the segments come from and where the kit keeps its data."""

    source: str = "synthetic"  # synthetic | kaggle | dir
    root: Path = Path("data")  # the kit's own data folder (synthetic set, downloads, index)
    data_dir: Path | None = None  # source=dir: a folder read in place, never written to
    competition: str = COMPETITION
    kaggle_dataset: str = ""  # source=kaggle: "owner/slug" of a dataset holding a copy


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the embedded synthetic data set (the default source)."""

    seed: int = 2016
    patients: int = 3
    interictal_hours: int = 6  # per patient; six segments per hour, as in the real data
    preictal_hours: int = 3  # per patient
    unsafe_hours: int = 1  # interictal hours per patient marked safe=0 (the leak)
    extra_preictal: int = 2  # per patient: labelled preictal files of the old test set
    test_hours: int = 4  # per patient; test segments are shuffled out of their hours
    seconds: int = 120  # per segment, up to the real 600
    sampling_rate: int = 400  # Hz, as the real recordings


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


@dataclass(frozen=True)
class Config:
    """Every setting of the kit, one section per concern."""

    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)

    def validate(self) -> Config:
        """Check values that a type alone cannot; return self so calls chain."""
        d, s = self.data, self.synthetic
        if d.source not in SOURCES:
            raise DeepSyncError(f"data.source={d.source!r} is not one of {', '.join(SOURCES)}")
        if d.source == "dir" and d.data_dir is None:
            raise DeepSyncError("SOURCE=dir needs DATA_DIR=/path/to/the/data (data.data_dir)")
        if d.kaggle_dataset and d.kaggle_dataset.count("/") != 1:
            raise DeepSyncError(
                f"data.kaggle_dataset={d.kaggle_dataset!r} must look like owner/slug"
            )
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
        self._validate_features()
        return self

    def _validate_features(self) -> None:
        f = self.features
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

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The resolved configuration as plain JSON-ready values."""
        return {
            f.name: {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in dataclasses.asdict(getattr(self, f.name)).items()
            }
            for f in dataclasses.fields(self)
        }


def load_config(profile: Path | None = None, overrides: typing.Iterable[str] = ()) -> Config:
    """Defaults, then the TOML ``profile`` if given, then ``section.key=value`` overrides."""
    values: dict[str, dict[str, Any]] = {}
    if profile is not None:
        try:
            values = tomllib.loads(Path(profile).read_text())
        except FileNotFoundError:
            raise DeepSyncError(f"profile {profile} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise DeepSyncError(f"profile {profile} is not valid TOML: {error}") from None
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise DeepSyncError(f"override {item!r} must look like section.key=value")
        values.setdefault(section, {})[name] = raw.strip()
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
