"""``python -m study.ablate``: does one factor matter, all else equal?

Takes a trial's configuration (default: the study's best), varies one factor over its levels
and keeps everything else fixed, and trains every level x seed to its full epoch budget,
unpruned. The runs are an Optuna study of their own (``STUDY-ablate-FACTOR``, resumable, any
number of workers) and MLflow runs (``ablate-FACTOR-LEVEL-seedK``) under one parent run in
the study's experiment. The answer is a table per level and, for each level, its paired
difference against the trial's own level with a 95% interval over seeds.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from objectives import TrialSpec

from . import cells, experiment_cli, factors, stats
from .cli import Parser, entry, non_negative_int, positive_int
from .errors import UsageError
from .report_tables import md_table
from .scheduler import best_trial, maximizing
from .settings import RunSettings, StudyRef, from_namespace

REPORT_PREFIX = "ablate-"


def build_parser() -> argparse.ArgumentParser:
    d = RunSettings()
    p = Parser(
        prog="python -m study.ablate",
        description="Vary one factor of a trial's configuration, everything else fixed, and "
        "train each level with several seeds; prints each level's mean and its difference "
        "from the trial's own level with a 95% interval.",
    )
    p.add_argument("--factor", required=True, help=f"one of {', '.join(factors.FACTORS)}")
    p.add_argument("--trial", type=non_negative_int, default=None, help="default: the best")
    p.add_argument(
        "--levels",
        default=None,
        help="comma-separated levels (default: all of the factor's; latent: 2,4,8,16,32); "
        "the trial's own level is always run",
    )
    p.add_argument(
        "--seeds", type=positive_int, default=3, help="runs per level (default: %(default)s)"
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="first training seed (default: 0)"
    )
    p.add_argument("--epochs", type=positive_int, default=d.epochs, help="epochs per run "
                   "(default: %(default)s)")  # fmt: skip
    experiment_cli.add_options(p)
    return p


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


def table(study) -> tuple[list[dict], list[dict], str, dict]:
    """(per-level rows, difference rows, verdict, about) from the experiment's runs."""
    about = study.user_attrs["experiment"]
    own = about["own_level"]
    values: dict[Any, dict[int, float]] = {lv: {} for lv in about["levels"]}
    for cell, value in cells.results(study):
        values[cell["level"]][cell["seed"]] = value
    levels = []
    for lv in about["levels"]:
        got = list(values[lv].values())
        mean, sd, n = stats.summary(got) if got else (None, None, 0)
        levels.append({"level": f"{lv} (the trial's)" if lv == own else lv, "mean": mean,
                       "sd": sd, "n": n})  # fmt: skip
    higher = maximizing(study)
    diffs, found = [], []
    for lv in about["levels"]:
        if lv == own:
            continue
        paired = [values[lv][s] - values[own][s] for s in values[lv] if s in values[own]]
        row: dict[str, Any] = {"level": f"{lv} - {own}", "n": len(paired)}
        if len(paired) >= 2:
            mean, low, high = stats.interval(paired)
            row.update(diff=mean, low=low, high=high)
            if low > 0 or high < 0:
                better = (mean > 0) == higher
                found.append(f"{lv} is {'better' if better else 'worse'} than {own} "
                             f"by {abs(mean):.4f}")  # fmt: skip
        diffs.append(row)
    if found:
        verdict = "; ".join(found) + " (95% intervals over seeds exclude 0)."
    elif any(r.get("diff") is not None for r in diffs):
        verdict = f"No difference from {own} detectable at this n (every interval contains 0)."
    else:
        verdict = "Not enough paired runs yet for an interval (2 per level needed)."
    return levels, diffs, verdict, about


def markdown(study, metric: str) -> str:
    levels, diffs, verdict, about = table(study)
    lines = [
        f"# Ablation of `{about['factor']}`: {about['question']}",
        "",
        f"Trial {about['trial']} of `{study.user_attrs[cells.SOURCE_ATTR]}` with only "
        f"`{about['factor']}` varied, {about['seeds']} seeds per level, every run trained to "
        f"its full budget (experiment study `{study.study_name}`). {metric}:",
        "",
        md_table(levels, [("level", "level"), ("mean", "mean"), ("sd", "sd"), ("n", "n")]),
        "",
        f"Paired difference against the trial's own level ({about['own_level']}), same seed:",
        "",
        md_table(
            diffs,
            [
                ("level", "difference"),
                ("diff", "mean"),
                ("low", "95% low"),
                ("high", "95% high"),
                ("n", "pairs"),
            ],
        ),  # fmt: skip
        "",
        f"**Verdict:** {verdict}",
    ]
    return "\n".join(lines) + "\n"


def intro(name: str, about: dict, planned: list) -> str:
    levels = ", ".join(map(str, about["levels"]))
    return (
        f"Ablating {about['factor']} on trial {about['trial']} of {name}: levels {levels} x "
        f"{about['seeds']} seeds = {len(planned)} runs"
    )


@entry
def main(argv: list[str] | None = None) -> int:
    return experiment_cli.run(build_parser().parse_args(argv), plan, markdown, intro)


if __name__ == "__main__":
    sys.exit(main())
