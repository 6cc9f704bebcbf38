"""The plan of an ablation (``study.ablate``): a trial's configuration with one factor varied
over its levels, each level trained with the same seeds, as cells."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from objectives import TrialSpec
from study.errors import UsageError
from study.experiments import cells, factors
from study.search.results import best_trial
from study.settings import AblateSettings, RunSettings

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


@dataclass(frozen=True)
class Ablation:
    """What an ablation is about, kept on its study (user attribute ``experiment``)."""

    factor: str
    question: str
    trial: int
    own_level: Any
    levels: list
    seeds: int

    def to_attr(self) -> dict[str, Any]:
        return {"kind": "ablate", **asdict(self)}

    @classmethod
    def from_attr(cls, attr: dict[str, Any]) -> Ablation:
        return cls(**{f.name: attr[f.name] for f in fields(cls)})

    def intro(self, name: str, runs: int) -> str:
        levels = ", ".join(map(str, self.levels))
        return (
            f"Ablating {self.factor} on trial {self.trial} of {name}: levels {levels} x "
            f"{self.seeds} seeds = {runs} runs"
        )


def plan(exp: AblateSettings, source) -> tuple[RunSettings, list[cells.Cell], Ablation]:
    """The experiment's settings, its cells and what it is about; usage errors first."""
    if exp.seeds < 2:
        raise UsageError(
            f"--seeds {exp.seeds}: an interval over seeds needs at least 2 runs per level "
            "(3 or more for a useful one)"
        )
    trial = chosen_trial(source, exp.trial)
    base = TrialSpec.from_dict(trial.user_attrs["spec"])
    f = factors.factor(exp.factor, base.model)
    levels = factors.levels(f, base.model, exp.levels)
    planned = []
    for level in levels:
        try:
            spec = cells.with_epochs(factors.vary(f, base, level), exp.epochs)
        except ValueError as e:  # a config the models refuse (ConfigError)
            raise UsageError(f"--factor {f.name} at level {level!r}: {e}") from None
        for k in range(exp.seeds):
            seed = exp.seed + k
            labels = {"factor": f.name, "level": level}
            planned.append(cells.Cell(f"ablate-{f.name}-{level}-seed{seed}", spec, seed, labels))
    about = Ablation(f.name, f.question, trial.number, f.level_of(base.model), levels, exp.seeds)
    settings = cells.run_settings(exp, source, f"ablate-{f.name}", len(planned), epochs=exp.epochs)
    return settings, planned, about
