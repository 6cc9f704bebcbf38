"""The plan of an ablation (``study.ablate``): a trial's configuration with one factor varied
over its levels, each level trained with the same seeds, as cells."""

from __future__ import annotations

from typing import Any

from objectives import TrialSpec
from study.errors import UsageError
from study.experiments import cells, factors
from study.search.results import best_trial
from study.settings import RunSettings, StudyRef, from_namespace

REPORT_PREFIX = "ablate-"


def chosen_trial(study, number: int | None):
    if number is None:
        trial = best_trial(study)
        if trial is None:
            raise UsageError(
                f"study {study.study_name!r} has no completed trial to ablate; run "
                "python -m study.run first"
            )
    else:
        found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
        if not found or found[0].state.name != "COMPLETE":
            raise UsageError(
                f"--trial {number}: study {study.study_name!r} has no completed trial "
                f"{number}; pick one whose state is COMPLETE"
            )
        trial = found[0]
    if "spec" not in trial.user_attrs:
        raise UsageError(f"trial {trial.number} carries no spec (a copy of another study's)")
    return trial


def plan(ns, source) -> tuple[RunSettings, list[cells.Cell], dict[str, Any]]:
    """The experiment's settings, its cells and what it is about; usage errors first."""
    if ns.seeds < 2:
        raise UsageError(
            f"--seeds {ns.seeds}: an interval over seeds needs at least 2 runs per level "
            "(3 or more for a useful one)"
        )
    trial = chosen_trial(source, ns.trial)
    base = TrialSpec.from_dict(trial.user_attrs["spec"])
    f = factors.factor(ns.factor, base.model)
    levels = factors.levels(f, base.model, ns.levels)
    planned = []
    for level in levels:
        try:
            spec = cells.with_epochs(factors.vary(f, base, level), ns.epochs)
        except ValueError as e:  # a config the models refuse (ConfigError)
            raise UsageError(f"--factor {f.name} at level {level!r}: {e}") from None
        for k in range(ns.seeds):
            planned.append(
                cells.Cell(
                    f"ablate-{f.name}-{level}-seed{ns.seed + k}",
                    spec,
                    ns.seed + k,
                    {"factor": f.name, "level": level},
                )
            )
    about = {
        "kind": "ablate",
        "factor": f.name,
        "question": f.question,
        "trial": trial.number,
        "own_level": f.level_of(base.model),
        "levels": levels,
        "seeds": ns.seeds,
    }
    ref = StudyRef(ns.objective, ns.dataset, ns.study_name, ns.storage, ns.tracking)
    settings = from_namespace(
        RunSettings,
        ns,
        objective=source.user_attrs.get("objective", ns.objective),
        dataset=source.user_attrs.get("dataset", ns.dataset),
        study_name=f"{ref.name}-ablate-{f.name}",
        trials=len(planned),
        pruner="none",
        report=False,
        baseline=False,  # an experiment runs its cells only
    )
    return settings, planned, about


def intro(name: str, about: dict, planned: list) -> str:
    levels = ", ".join(map(str, about["levels"]))
    return (
        f"Ablating {about['factor']} on trial {about['trial']} of {name}: levels {levels} x "
        f"{about['seeds']} seeds = {len(planned)} runs"
    )
