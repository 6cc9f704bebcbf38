"""Frozen settings objects: built once from the command line (or directly, by tests and
benchmarks) and the only thing passed down. ``record()`` is what goes into MLflow."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from study.errors import UsageError
from study.stores.locations import (
    DEFAULT_STORAGE,
    DEFAULT_TRACKING,
    StorageURL,
    TrackingURL,
    parse_storage,
    parse_tracking,
)


def from_namespace(cls, ns: argparse.Namespace, **extra):
    """``cls`` from the parsed options that name its fields (plus ``extra``)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(ns).items() if k in names}
    return cls(**{**values, **extra})


def plain(settings, url: Callable[[StorageURL | TrackingURL], str]) -> dict[str, Any]:
    """The settings as plain values: store URLs as ``url`` writes them, paths as strings,
    tuples as lists of strings."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, (StorageURL, TrackingURL)):
            value = url(value)
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(v) for v in value]
        out[f.name] = value
    return out


def record(settings) -> dict[str, Any]:
    """The settings as plain values for MLflow, store URLs redacted."""
    values = plain(settings, lambda u: u.redacted)
    return {k: ",".join(v) if isinstance(v, list) else v for k, v in values.items()}


@dataclass(frozen=True)
class StudyRef:
    """Which study, and where its two stores are."""

    objective: str = "classifier"
    dataset: str = "fashion-mnist"
    study_name: str | None = None
    storage: StorageURL = field(default_factory=lambda: parse_storage(DEFAULT_STORAGE))
    tracking: TrackingURL = field(default_factory=lambda: parse_tracking(DEFAULT_TRACKING))

    @property
    def name(self) -> str:
        return self.study_name or f"{self.objective}-{self.dataset}"


LIMIT_TRAIN = 3_840  # a new study's training images per trial (of 50,000): benchmark 10
LIMIT_VAL = 2_500  # and validation images (of 10,000)
DATA_ATTR = "images"  # {"train": n, "val": n}: on the study and on each trial
REFIT_ATTR = "refit"  # on the study: its last refit (study.execution.refit.Refit)
# The refit trains twice the best trial's epochs by default: a trial's budget is sized for
# its 3,840 images, and on all 60,000 the default study's best reaches 0.923 test accuracy
# in 16 epochs against 0.911 in its own 8 (BENCHMARKS.md, benchmark 10).
REFIT_EPOCHS_FACTOR = 2


@dataclass(frozen=True)
class RunSettings(StudyRef):
    """Everything ``python -m study.run`` does (see its ``--help`` for each field)."""

    trials: int = 100
    epochs: int = 8
    # Images per trial; None: the study's own when it is resumed (what its trials saw), a
    # new study's LIMIT_TRAIN / LIMIT_VAL. ``session.open_session`` fills them in.
    limit_train: int | None = None
    limit_val: int | None = None
    sampler: str = "tpe"
    pruner: str = "successive-halving"
    seed: int = 0
    device: str = "auto"
    timeout: float | None = None
    data_dir: str | None = None
    workers: int = 1
    workers_per_gpu: int = 1
    heartbeat: int = 30
    heartbeat_grace: int | None = None
    outage_wait: float = 300.0
    snapshot_every: float = 30.0  # seconds between a running trial's resume snapshots
    compile: bool = False
    records: str = "auto"  # a finished trial's records: background, inline or auto
    enqueue_seeds: tuple[str, ...] = ()
    baseline: bool = True  # a new study's first trial is the objective's baseline
    max_params: int | None = None
    max_latent: int | None = None
    enqueue_configs: tuple[Path, ...] = ()
    warm_start: str | None = None
    pareto: str | None = None  # a second objective: params, latent or kl (minimised)
    report: bool = True
    refit: bool = True  # the best configuration retrained on all the data at the end
    refit_top: int = 1  # refit the K best, pick by validation score (K > 1: on train only)
    refit_limit: int = 0  # the refit's images: the first N of train + validation (0 = all)
    refit_epochs: int | None = None  # None: REFIT_EPOCHS_FACTOR x the best trial's epochs
    # Set by the process that spawns workers: which worker this is, its torch threads.
    worker_index: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.pareto == "kl" and self.objective != "vae":
            raise UsageError(
                f"--pareto kl needs the vae objective (a KL term), not {self.objective!r}; "
                "use --pareto params or latent, or --objective vae"
            )
        if self.heartbeat_grace is not None and self.heartbeat_grace <= self.heartbeat:
            raise UsageError(
                f"--heartbeat-grace {self.heartbeat_grace} must be longer than --heartbeat "
                f"{self.heartbeat} (a trial is declared dead after missing its beats for that "
                "long); e.g. 3 x --heartbeat"
            )

    @property
    def grace(self) -> int:
        """Seconds without a heartbeat before a trial is declared dead."""
        return self.heartbeat_grace if self.heartbeat_grace is not None else 3 * self.heartbeat

    @property
    def is_worker(self) -> bool:
        return self.worker_index is not None


# How a RunSettings crosses a process boundary (``--workers`` hands it to each worker on its
# stdin): JSON, with the store URLs whole (they were parsed once already) and tuples as lists.
_FROM_JSON = {
    "storage": parse_storage,
    "tracking": parse_tracking,
    "enqueue_seeds": tuple,
    "enqueue_configs": lambda paths: tuple(map(Path, paths)),
}


def dumps(settings: RunSettings) -> str:
    """``settings`` as JSON for another process (the URLs whole: never log this text)."""
    return json.dumps(plain(settings, lambda u: u.url))


def loads(text: str) -> RunSettings:
    """The RunSettings ``dumps`` wrote."""
    values = json.loads(text)
    return RunSettings(**{k: _FROM_JSON.get(k, lambda v: v)(v) for k, v in values.items()})


def seed_choice(text: str | None, objective: str) -> tuple[str, ...]:
    """``--enqueue-seeds`` (``all`` or a comma-separated list) checked against the objective."""
    from objectives import seed_names

    if text is None:
        return ()
    allowed = seed_names(objective)
    if text == "all":
        return tuple(allowed)
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise UsageError(
            f"argument --enqueue-seeds: {bad or text!r} not among the {objective!r} "
            f"objective's seeds {allowed} (or leave NAMES out for all)"
        )
    return tuple(names)


@dataclass(frozen=True)
class ExperimentSettings(StudyRef):
    """What ``study.ablate`` and ``study.confirm`` share: the study experimented on, the
    seeds, and the runs' data, device and workers (their other options are the run's)."""

    seeds: int = 3
    seed: int = 0  # the first training seed; the runs use seed, seed + 1, ...
    limit_train: int | None = None  # None: see each command's --help
    limit_val: int | None = None
    device: str = "auto"
    data_dir: str | None = None
    workers: int = 1
    heartbeat: int = 30


@dataclass(frozen=True)
class AblateSettings(ExperimentSettings):
    """``python -m study.ablate``: one factor of trial ``trial`` (None: the best) varied."""

    factor: str = "freeze"
    trial: int | None = None
    levels: str | None = None  # --levels as given; None: the factor's defaults
    epochs: int = 8


CONFIRM_FIRST_SEED = 1000  # away from the trials' own seeds (--seed + trial number)


@dataclass(frozen=True)
class ConfirmSettings(ExperimentSettings):
    """``python -m study.confirm``: the ``top`` best configurations retrained."""

    seed: int = CONFIRM_FIRST_SEED
    top: int = 3
    test: bool = False


@dataclass(frozen=True)
class ExportSettings(StudyRef):
    trial: int | None = None
    out: Path = Path("best.yaml")
    max_params: int | None = None
    max_latent: int | None = None
    confirmed: bool = False


@dataclass(frozen=True)
class ReportSettings(StudyRef):
    out: Path | None = None
    iwae_samples: int = 100  # k of a VAE study's IWAE bound


@dataclass(frozen=True)
class TrainSettings:
    config: Path
    from_checkpoint: str | None = None
    epochs: int | None = None
    limit_train: int = 0
    device: str = "auto"
    seed: int = 0
    tracking: TrackingURL | None = None  # None: the config's, else the default store
    experiment: str | None = None
    data_dir: str | None = None
    compile: bool = False


@dataclass(frozen=True)
class EncodeSettings:
    config: str | None = None
    run: str | None = None
    checkpoint: str | None = None
    model: str | None = None
    tracking: TrackingURL | None = None  # None: the config's, else the default store
    split: str = "test"
    images: str | None = None
    dataset: str | None = None
    limit: int = 0
    out: Path = Path("latents.npz")
    csv: Path | None = None
    sample: bool = False
    seed: int = 0
    batch_size: int = 1024
    device: str = "auto"
    data_dir: str | None = None
    export_encoder: Path | None = None
