"""The plan of a confirmation (``study.confirm``): the study's K best completed
configurations, each retrained with S new seeds, as cells."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from objectives import TrialSpec
from study.errors import UsageError
from study.experiments import cells
from study.search.results import primary, top_completed
from study.settings import (
    DATA_ATTR,
    LIMIT_TRAIN,
    LIMIT_VAL,
    ConfirmSettings,
    RunSettings,
)

SUFFIX = "confirm"


def top_trials(study, k: int) -> list:
    trials = top_completed(study, k)
    if not trials:
        raise UsageError(
            f"study {study.study_name!r} has no completed trial to confirm; run "
            "python -m study.run first"
        )
    return trials


@dataclass(frozen=True)
class Confirmation:
    """What a confirmation is about, kept on its study (user attribute ``experiment``):
    the trials retrained and their own values."""

    trials: list[int]
    values: list[float]
    seeds: int
    test: bool

    def to_attr(self) -> dict[str, Any]:
        return {"kind": "confirm", **asdict(self)}

    @classmethod
    def from_attr(cls, attr: dict[str, Any]) -> Confirmation:
        return cls(**{f.name: attr[f.name] for f in fields(cls)})

    def intro(self, name: str, runs: int) -> str:
        trials = ", ".join(map(str, self.trials))
        return (
            f"Confirming trials {trials} of {name} with {self.seeds} new seeds each = {runs} runs"
        )


def plan(exp: ConfirmSettings, source) -> tuple[RunSettings, list[cells.Cell], Confirmation]:
    """The experiment's settings, its cells and what it is about; usage errors first."""
    if exp.seeds < 2:
        raise UsageError(
            f"--seeds {exp.seeds}: a spread over seeds needs at least 2 runs per configuration"
        )
    trials = top_trials(source, exp.top)
    planned = []
    for t in trials:
        spec = TrialSpec.from_dict(t.user_attrs["spec"])
        for k in range(exp.seeds):
            seed = exp.seed + k
            labels = {"trial": t.number, "test": exp.test}
            planned.append(cells.Cell(f"confirm-trial-{t.number}-seed{seed}", spec, seed, labels))
    about = Confirmation([t.number for t in trials], [primary(t) for t in trials], exp.seeds,
                         exp.test)  # fmt: skip
    epochs = max(TrialSpec.from_dict(t.user_attrs["spec"]).train.epochs for t in trials)
    seen = trials[0].user_attrs.get(DATA_ATTR, {})  # the images the best trial saw
    exp = replace(
        exp,
        limit_train=seen.get("train", LIMIT_TRAIN) if exp.limit_train is None else exp.limit_train,
        limit_val=seen.get("val", LIMIT_VAL) if exp.limit_val is None else exp.limit_val,
    )
    return cells.run_settings(exp, source, SUFFIX, len(planned), epochs=epochs), planned, about
