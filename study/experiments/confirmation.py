"""The plan of a confirmation (``study.confirm``): the study's K best completed
configurations, each retrained with S new seeds, as cells."""

from __future__ import annotations

from typing import Any

from optuna.trial import TrialState

from objectives import TrialSpec
from study.errors import UsageError
from study.experiments import cells
from study.search.results import countable, maximizing, primary
from study.settings import DATA_ATTR, LIMIT_TRAIN, LIMIT_VAL, RunSettings, StudyRef, from_namespace

SUFFIX = "confirm"


FIRST_SEED = 1000  # away from the trials' own seeds (--seed + trial number)


def top_trials(study, k: int) -> list:
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
        if countable(t) and "spec" in t.user_attrs
    ]
    if not done:
        raise UsageError(
            f"study {study.study_name!r} has no completed trial to confirm; run "
            "python -m study.run first"
        )
    return sorted(done, key=primary, reverse=maximizing(study))[:k]


def plan(ns, source) -> tuple[RunSettings, list[cells.Cell], dict[str, Any]]:
    if ns.seeds < 2:
        raise UsageError(
            f"--seeds {ns.seeds}: a spread over seeds needs at least 2 runs per configuration"
        )
    trials = top_trials(source, ns.top)
    planned = []
    for t in trials:
        spec = TrialSpec.from_dict(t.user_attrs["spec"])
        for k in range(ns.seeds):
            seed = ns.seed + k
            labels = {"trial": t.number, "test": ns.test}
            planned.append(cells.Cell(f"confirm-trial-{t.number}-seed{seed}", spec, seed, labels))
    about = {
        "kind": "confirm",
        "trials": [t.number for t in trials],
        "values": [primary(t) for t in trials],
        "seeds": ns.seeds,
        "test": ns.test,
    }
    ref = StudyRef(ns.objective, ns.dataset, ns.study_name, ns.storage, ns.tracking)
    epochs = max(TrialSpec.from_dict(t.user_attrs["spec"]).train.epochs for t in trials)
    seen = trials[0].user_attrs.get(DATA_ATTR, {})  # the images the best trial saw
    settings = from_namespace(
        RunSettings,
        ns,
        limit_train=ns.limit_train
        if ns.limit_train is not None
        else seen.get("train", LIMIT_TRAIN),
        limit_val=ns.limit_val if ns.limit_val is not None else seen.get("val", LIMIT_VAL),
        objective=source.user_attrs.get("objective", ns.objective),
        dataset=source.user_attrs.get("dataset", ns.dataset),
        study_name=f"{ref.name}-{SUFFIX}",
        trials=len(planned),
        epochs=epochs,
        pruner="none",
        report=False,
        baseline=False,  # an experiment runs its cells only
    )
    return settings, planned, about


def intro(name: str, about: dict, planned: list) -> str:
    trials = ", ".join(map(str, about["trials"]))
    return (
        f"Confirming trials {trials} of {name} with {about['seeds']} new seeds each = "
        f"{len(planned)} runs"
    )
