"""Starting from what is known: ``--enqueue-config FILE`` runs an exported configuration first,
``--warm-start OTHER_STUDY`` copies another study's finished trials into this one's history.

Copies are tagged with their origin (``warm_start_from``), do not count towards
``--trials`` and are never trained again: they only inform the sampler.
"""

from __future__ import annotations

import warnings

import optuna
from optuna.trial import TrialState

from objectives import Objective, TrialSpec
from study.artifacts.config_file import read_config
from study.errors import UsageError

ORIGIN_ATTR = "warm_start_from"
CONFIG_ATTR = "enqueued_config"


def replay(objective: Objective, params: dict, *, max_epochs: int):
    """(spec, distributions) the objective builds from ``params``, or None where they do not
    fit its space (a missing or extra parameter, a value out of range)."""
    fixed = optuna.trial.FixedTrial(params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # FixedTrial warns for a value out of range
            spec = objective.suggest(fixed, max_epochs=max_epochs)
    except (ValueError, UserWarning, TypeError):
        return None
    if set(fixed.params) != set(params):
        return None
    return spec, fixed.distributions


def check_configs(paths, objective: Objective, max_epochs: int) -> list[tuple[str, dict]]:
    """(path, params) of each exported config; a usage error for a config of another
    objective or outside the space (called before any store is touched)."""
    planned = []
    for path in paths:
        cfg = read_config(path)
        if cfg.get("objective") != objective.name:
            raise UsageError(
                f"--enqueue-config {path}: a {cfg.get('objective')!r} config, this study's "
                f"objective is {objective.name!r}"
            )
        params = cfg.get("params")
        got = replay(objective, params, max_epochs=max_epochs) if isinstance(params, dict) else None
        if got is None:
            raise UsageError(
                f"--enqueue-config {path}: its params do not fit the {objective.name!r} search "
                f"space with --epochs {max_epochs} (export it from a study of this objective)"
            )
        try:
            if got[0] != TrialSpec.from_dict(cfg):
                raise UsageError(f"--enqueue-config {path}: its params and its model disagree")
        except (KeyError, ValueError) as e:
            raise UsageError(f"--enqueue-config {path}: {e}") from None
        planned.append((str(path), params))
    return planned


def enqueue_configs(study: optuna.Study, planned: list[tuple[str, dict]]) -> int:
    """Enqueue each checked config (once: the same parameters are not queued twice); how
    many were added."""
    before = len(study.get_trials(deepcopy=False))
    for path, params in planned:
        study.enqueue_trial(params, user_attrs={CONFIG_ATTR: path}, skip_if_exists=True)
    return len(study.get_trials(deepcopy=False)) - before


def other_study(storage, other_name: str, objective: Objective, two: bool = False):
    """The ``--warm-start`` study, checked: it exists here and holds the same objective (and
    as many objectives: ``two`` for a ``--pareto`` study)."""
    try:
        other = optuna.load_study(study_name=other_name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise UsageError(
            f"--warm-start {other_name!r}: no such study in this storage; studies: {names[:10]}"
        ) from None
    direction = "/".join(d.name.lower() for d in other.directions)
    want = objective.direction + ("/minimize" if two else "")
    if other.user_attrs.get("objective") != objective.name or direction != want:
        raise UsageError(
            f"--warm-start {other_name!r} holds objective {other.user_attrs.get('objective')!r}"
            f" ({direction}); it must be {objective.name!r} ({want}) like this study"
        )
    return other


def warm_start(study: optuna.Study, other: optuna.Study, objective: Objective, max_epochs: int):
    """Copy the finished trials of ``other`` that fit this space into this study's history,
    once; (copied, skipped as outside the space)."""
    other_name = other.study_name
    done = {t.user_attrs.get(ORIGIN_ATTR) for t in study.get_trials(deepcopy=False)}
    copied = skipped = 0
    for t in other.get_trials(deepcopy=False, states=[TrialState.COMPLETE]):
        origin = f"{other_name}#{t.number}"
        if origin in done or not t.params:
            continue
        got = replay(objective, t.params, max_epochs=max_epochs)
        if got is None:
            skipped += 1
            continue
        study.add_trial(
            optuna.trial.create_trial(
                params=t.params, distributions=got[1], values=t.values,
                user_attrs={ORIGIN_ATTR: origin}, intermediate_values=t.intermediate_values,
            )
        )  # fmt: skip
        copied += 1
    return copied, skipped
