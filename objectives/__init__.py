"""Objectives: a pure ``suggest(trial) -> TrialSpec`` each, and the shared trial loop."""

from . import ae, classifier, vae
from ._base import NullReporter, Objective, Reporter, TrialSpec, run_trial
from .seeds import CELL_ATTR, SEED_ATTR, seed_names, seed_spec, trial_spec

OBJECTIVES: dict[str, Objective] = {
    o.name: o for o in (classifier.OBJECTIVE, ae.OBJECTIVE, vae.OBJECTIVE)
}

__all__ = [
    "OBJECTIVES",
    "CELL_ATTR",
    "SEED_ATTR",
    "NullReporter",
    "Objective",
    "Reporter",
    "TrialSpec",
    "run_trial",
    "seed_names",
    "seed_spec",
    "trial_spec",
]
