"""Objectives: a pure ``suggest(trial) -> TrialSpec`` each, and the shared trial loop."""

from . import ae, classifier, vae
from ._base import NullReporter, Objective, Reporter, TrialSpec, run_trial
from .baselines import BASELINE_ATTR, baseline_params
from .seeds import CELL_ATTR, SEED_ATTR, seed_names, seed_spec, trial_spec

OBJECTIVES: dict[str, Objective] = {
    o.name: o for o in (classifier.OBJECTIVE, ae.OBJECTIVE, vae.OBJECTIVE)
}

__all__ = [
    "OBJECTIVES",
    "BASELINE_ATTR",
    "CELL_ATTR",
    "SEED_ATTR",
    "NullReporter",
    "Objective",
    "Reporter",
    "TrialSpec",
    "baseline_params",
    "run_trial",
    "seed_names",
    "seed_spec",
    "trial_spec",
]
