"""Which trials count and which is best: what the loop, the report, export and the
experiments all read a study's results by."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState


def countable(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards ``--trials``: not an over-budget one (never trained)
    nor a copy of another study's trial (``--warm-start``)."""
    attrs = trial.user_attrs
    return not attrs.get("over_budget") and "warm_start_from" not in attrs


def primary(trial: FrozenTrial) -> float | None:
    """A trial's objective value (the first of a multi-objective study's values)."""
    return trial.values[0] if trial.values else None


def maximizing(study: optuna.Study) -> bool:
    return study.directions[0] == optuna.study.StudyDirection.MAXIMIZE


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best completed trial of this study's own (not a ``--warm-start`` copy); in a
    multi-objective study, the one on the Pareto front with the best objective value."""
    if len(study.directions) > 1:
        own = [t for t in study.best_trials if countable(t)]
    else:
        own = [
            t
            for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
            if countable(t)
        ]
    if not own:
        return None
    return (max if maximizing(study) else min)(own, key=primary)


def top_completed(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The ``k`` best completed trials of the study's own that carry a spec, best first
    (what a confirmation retrains and a refit refits)."""
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
        if countable(t) and "spec" in t.user_attrs
    ]
    return sorted(done, key=primary, reverse=maximizing(study))[:k]
