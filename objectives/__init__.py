"""Objectives: a pure ``suggest(trial) -> TrialSpec`` each, and the shared trial loop."""

from . import ae, classifier, vae
from ._base import NullReporter, Objective, Reporter, TrialSpec, run_trial

OBJECTIVES: dict[str, Objective] = {
    o.name: o for o in (classifier.OBJECTIVE, ae.OBJECTIVE, vae.OBJECTIVE)
}

__all__ = ["OBJECTIVES", "NullReporter", "Objective", "Reporter", "TrialSpec", "run_trial"]
