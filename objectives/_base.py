"""What every objective shares: the trial spec, the reporter interface, the run loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import optuna
import torch

from models import (
    ConfigBase,
    ConfigError,
    EpochResult,
    Split,
    TrainConfig,
    config_from_dict,
    fit,
)

OBJECTIVE_NAMES = ("classifier", "ae", "vae")


@dataclass(frozen=True)
class TrialSpec:
    """Everything a trial trains: the objective, the model config and the training settings.

    ``to_dict``/``from_dict`` round-trip it through JSON or YAML; the export file holds it.
    """

    objective: str
    model: ConfigBase
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        train = self.train.to_dict()
        train.pop("family")
        return {"objective": self.objective, "model": self.model.to_dict(), "train": train}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialSpec:
        if not isinstance(data, dict):
            raise ConfigError(f"a trial spec must be a mapping, but got {data!r}")
        missing = [k for k in ("objective", "model", "train") if k not in data]
        if missing:
            raise ConfigError(f"missing key(s) {missing}; a spec needs objective, model, train")
        if data["objective"] not in OBJECTIVE_NAMES:
            raise ConfigError(
                f"unknown objective {data['objective']!r}; choose one of {OBJECTIVE_NAMES}"
            )
        if not isinstance(data["train"], dict):
            raise ConfigError(f"train must be a mapping, but got {data['train']!r}")
        return cls(
            data["objective"], config_from_dict(data["model"]), TrainConfig.from_dict(data["train"])
        )

    def flat_params(self) -> dict[str, Any]:
        """Every setting as ``model.encoder.hidden -> [128, 64]`` style pairs."""
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                out[prefix] = value

        walk("", self.to_dict())
        return out


class Reporter(Protocol):
    """How an objective tells the study what happens; the study layer implements it."""

    def start(self, spec: TrialSpec) -> None:
        """The trial's full spec is known (before training)."""

    def epoch(self, result: EpochResult) -> None:
        """An epoch finished (pre-training epochs included)."""

    def done(self, model: torch.nn.Module) -> None:
        """Training finished with ``model`` (also when a resumed trial had no epoch left)."""


class NullReporter:
    """A reporter that drops everything (tests, benchmarks)."""

    def start(self, spec: TrialSpec) -> None:
        pass

    def epoch(self, result: EpochResult) -> None:
        pass

    def done(self, model: torch.nn.Module) -> None:
        pass


@dataclass(frozen=True)
class Objective:
    """One objective: its name, direction, metric and search space."""

    name: str
    direction: str
    metric: str
    suggest: Callable[..., TrialSpec]
    description: str


def run_trial(
    trial: optuna.Trial,
    spec: TrialSpec,
    *,
    train: Split,
    val: Split,
    device: torch.device,
    seed: int = 0,
    reporter: Reporter | None = None,
    resume: dict | None = None,
    compile: bool = False,
    prune: bool = True,
    report: bool = True,
    keep_codes: int = 0,
) -> float:
    """Build and train ``spec``, reporting each epoch (and pruning unless ``prune=False``);
    return the validation metric of the last epoch. ``report=False`` (multi-objective
    studies, which Optuna can neither report to nor prune) reports nothing. ``keep_codes``:
    see ``models.fit`` (the reporter's epoch results carry the validation codes).

    Raises ``optuna.TrialPruned`` when the pruner stops the trial and
    ``models.NonFiniteLossError`` when the loss diverges. ``resume`` is an epoch snapshot
    of an earlier attempt at the same parameters (see ``models.fit``).
    """
    reporter = reporter or NullReporter()
    reporter.start(spec)

    def on_epoch(result: EpochResult) -> None:
        reporter.epoch(result)
        if result.phase != "train" or not report:
            return  # pre-training scores reconstruction, not the objective's metric
        trial.report(result.value, result.epoch)
        if prune and trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after epoch {result.epoch} with {result.metric}={result.value:.4g}"
            )

    result = fit(
        spec.model,
        spec.train,
        train,
        val,
        device=device,
        seed=seed,
        on_epoch=on_epoch,
        resume=resume,
        compile=compile,
        keep_codes=keep_codes,
    )
    reporter.done(result.model)
    return result.last.value
