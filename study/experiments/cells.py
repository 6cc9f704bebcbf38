"""Controlled experiments (``study.ablate``, ``study.confirm``) as studies of fixed cells.

A cell is one training run decided in advance: a spec, a seed and its labels (the level of
the factor varied, the configuration retrained). An experiment is an Optuna study of its own
in the same storage whose trials each carry one cell (user attribute ``cell``); the study
lists all its cells (user attribute ``cells``), so that it can be resumed after Ctrl-C or
``kill -9``, and worked on by several workers, like any study: ``study.run``'s loop runs it,
each cell trains to the end (never pruned) with its own seed, and every run is an MLflow run
named after its cell in the experiment of the study experimented on.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from objectives import CELL_ATTR, TrialSpec
from study.errors import UsageError
from study.settings import ExperimentSettings, RunSettings
from study.stores.locations import StudyLock, open_storage
from study.tracking.runs import EXPERIMENT_ATTR, PARENT_ATTR

CELLS_ATTR = "cells"  # on an experiment's study: every cell it must run
SOURCE_ATTR = "experiment_on"  # on an experiment's study: the study it experiments on
ATTEMPTS = 3  # a cell that failed this often is left failed (the table says so)
IDENTITY = ("objective", "dataset", "metric")


@dataclass(frozen=True)
class Cell:
    """One planned run: ``name`` (its MLflow run name), what it trains and with which seed,
    and ``labels`` (e.g. ``{"factor": "freeze", "level": "joint"}``)."""

    name: str
    spec: TrialSpec
    seed: int
    labels: dict[str, Any] = field(default_factory=dict)

    def to_attr(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, **self.labels, "spec": self.spec.to_dict()}


def with_epochs(spec: TrialSpec, epochs: int) -> TrialSpec:
    """``spec`` trained for ``epochs`` epochs (a cell trains its full budget)."""
    return replace(spec, train=replace(spec.train, epochs=epochs))


def open_experiment(
    settings: RunSettings, source: optuna.Study, cells: list[Cell], about: Any
) -> optuna.Study:
    """Create (or resume) the experiment's study ``settings.name`` beside ``source`` and
    queue its cells that have not run. A resumed experiment must plan the same cells.
    ``about`` (an ``Ablation`` or ``Confirmation``) is kept as the study's ``experiment``."""
    storage = open_storage(settings.storage)
    planned = [c.to_attr() for c in cells]
    with StudyLock(settings.storage, settings.name)():
        study = optuna.create_study(
            study_name=settings.name,
            storage=storage,
            directions=[d.name.lower() for d in source.directions[:1]],
            load_if_exists=True,
        )
        if CELLS_ATTR in study.user_attrs and study.user_attrs[CELLS_ATTR] != planned:
            raise UsageError(
                f"study {settings.name!r} already ran other cells (another trial, other "
                "levels or seeds, other --epochs); pass the same options to resume it, or "
                "--study-name NEW for a new experiment"
            )
        attrs = {
            **{k: source.user_attrs[k] for k in IDENTITY if k in source.user_attrs},
            SOURCE_ATTR: source.study_name,
            EXPERIMENT_ATTR: source.user_attrs.get(EXPERIMENT_ATTR, source.study_name),
            "experiment": about.to_attr(),
            CELLS_ATTR: planned,
        }
        for key, value in attrs.items():
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)
        refill(study)
    return study


def refill(study: optuna.Study) -> int:
    """Queue each cell that is neither finished, running nor queued (and has not failed
    ``ATTEMPTS`` times); how many were queued. Called under the study lock."""
    trials = study.get_trials(deepcopy=False)
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    busy = {
        t.user_attrs[CELL_ATTR]["name"]
        for t in trials
        if CELL_ATTR in t.user_attrs and t.state in live
    }
    failed = Counter(
        t.user_attrs[CELL_ATTR]["name"]
        for t in trials
        if CELL_ATTR in t.user_attrs and t.state == TrialState.FAIL
    )
    queued = 0
    for cell in study.user_attrs.get(CELLS_ATTR, []):
        if cell["name"] in busy or failed[cell["name"]] >= ATTEMPTS:
            continue
        study.enqueue_trial({}, user_attrs={CELL_ATTR: cell})
        queued += 1
    return queued


def is_experiment(study: optuna.Study) -> bool:
    return CELLS_ATTR in study.user_attrs


def next_cell(study: optuna.Study) -> bool:
    """Whether the experiment has a cell to start (queuing failed cells again); called under
    the study lock instead of sampling: an experiment never samples."""
    waiting = study.get_trials(deepcopy=False, states=[TrialState.WAITING])
    return bool(waiting) or refill(study) > 0


def results(study: optuna.Study) -> list[tuple[dict[str, Any], float]]:
    """(cell, value) of each completed cell, in the planned order."""
    done = {
        t.user_attrs[CELL_ATTR]["name"]: t.values[0]
        for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
        if CELL_ATTR in t.user_attrs
    }
    return [(c, done[c["name"]]) for c in study.user_attrs.get(CELLS_ATTR, []) if c["name"] in done]


def run_settings(exp: ExperimentSettings, source: optuna.Study, suffix: str, trials: int,
                 **fields: Any) -> RunSettings:  # fmt: skip
    """The settings ``study.run``'s loop runs the experiment ``STUDY-suffix`` with: its cells
    only (no baseline), never pruned, no study report; on the source study's objective and
    data, with the experiment's stores, seeds, data limits, device and workers."""
    return RunSettings(
        objective=source.user_attrs.get("objective", exp.objective),
        dataset=source.user_attrs.get("dataset", exp.dataset),
        study_name=f"{exp.name}-{suffix}",
        storage=exp.storage,
        tracking=exp.tracking,
        trials=trials,
        seed=exp.seed,
        limit_train=exp.limit_train,
        limit_val=exp.limit_val,
        device=exp.device,
        data_dir=exp.data_dir,
        workers=exp.workers,
        heartbeat=exp.heartbeat,
        pruner="none",
        report=False,
        baseline=False,
        refit=False,
        **fields,
    )


def publish(study: optuna.Study, settings: RunSettings, text: str) -> Path:
    """Write an experiment's table beside its study's report (``ablate-FACTOR.md``,
    ``confirm.md``) and log it to the experiment's parent run."""
    source = study.user_attrs[SOURCE_ATTR]
    name = study.study_name.removeprefix(source + "-")
    out = settings.storage.reports_root / source / f"{name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    parent = study.user_attrs.get(PARENT_ATTR)
    if settings.tracking.enabled and parent:
        from study.stores.locations import tracking_client

        try:
            tracking_client(settings.tracking).log_artifact(parent, str(out))
        except Exception as e:  # noqa: BLE001 - the table is on disk either way
            print(f"warning: could not log {out.name} to MLflow: {e}", file=sys.stderr)
    return out


def experiments_of(source: optuna.Study, storage) -> list[optuna.Study]:
    """The experiments (ablations, confirmation) run on ``source``, by name."""
    prefix = source.study_name + "-"
    out = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.study_name.startswith(prefix) and summary.user_attrs.get(SOURCE_ATTR) == (
            source.study_name
        ):
            out.append(optuna.load_study(study_name=summary.study_name, storage=storage))
    return sorted(out, key=lambda s: s.study_name)
