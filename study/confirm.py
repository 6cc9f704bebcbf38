"""``python -m study.confirm``: is the best trial the best configuration, or a lucky seed?

Retrains the study's K best completed configurations S times each with other seeds (same
settings as their trials; ``--limit-train 0`` for all training images), ranks them by mean
validation value with its spread, optionally scores each run on the test split (``--test``),
and records every run in MLflow under one parent run. Resumable like any study (it is one:
``STUDY-confirm``). ``study.export --confirmed`` exports the best by mean.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from optuna.trial import TrialState

from objectives import TrialSpec

from . import cells, experiment_cli, stats
from .cli import Parser, entry, non_negative_int, positive_int
from .errors import UsageError
from .report_tables import md_table
from .scheduler import countable, maximizing, primary
from .settings import DATA_ATTR, LIMIT_TRAIN, LIMIT_VAL, RunSettings, StudyRef, from_namespace

SUFFIX = "confirm"
FIRST_SEED = 1000  # away from the trials' own seeds (--seed + trial number)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.confirm",
        description="Retrain the study's K best configurations S times each with new seeds "
        "and rank them by mean validation value.",
    )
    p.add_argument("--top", type=positive_int, default=3, help="configurations (default: 3)")
    p.add_argument(
        "--seeds", type=positive_int, default=3, help="runs per configuration (default: 3)"
    )
    p.add_argument("--seed", type=non_negative_int, default=FIRST_SEED,
                   help="first training seed (default: %(default)s)")  # fmt: skip
    p.add_argument("--test", action="store_true", help="also score each run on the test split")
    experiment_cli.add_options(p, limits_from_trials=True)
    return p


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


def ranking(study) -> list[dict[str, Any]]:
    """One row per configuration, best mean first."""
    about = study.user_attrs["experiment"]
    runs: dict[int, list[tuple[float, dict | None]]] = {n: [] for n in about["trials"]}
    tests = {}
    for t in study.get_trials(deepcopy=False):
        cell = t.user_attrs.get("cell")
        if cell is not None and t.state.name == "COMPLETE":
            tests[cell["name"]] = t.user_attrs.get("test")
    for cell, value in cells.results(study):
        runs[cell["trial"]].append((value, tests.get(cell["name"])))
    rows = []
    for number, trial_value in zip(about["trials"], about["values"], strict=True):
        values = [v for v, _ in runs[number]]
        mean, sd, n = stats.summary(values) if values else (None, None, 0)
        row = {"trial": number, "trial_value": trial_value, "mean": mean, "sd": sd, "n": n}
        metric = study.user_attrs.get("metric")
        scores = [t[metric] for _, t in runs[number] if t and metric in t]
        if scores:
            row["test"] = stats.summary(scores)[0]
        rows.append(row)
    higher = maximizing(study)
    rows.sort(key=lambda r: (r["mean"] is None, -(r["mean"] or 0) if higher else (r["mean"] or 0)))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def markdown(study, metric: str) -> str:
    about = study.user_attrs["experiment"]
    rows = ranking(study)
    columns = [("rank", "rank"), ("trial", "trial"), ("trial_value", f"trial's {metric}"),
               ("mean", f"mean {metric}"), ("sd", "sd"), ("n", "runs")]  # fmt: skip
    if about["test"]:
        columns.append(("test", "mean test score"))
    lines = [
        f"# Confirmation: the {len(rows)} best configurations of "
        f"`{study.user_attrs[cells.SOURCE_ATTR]}`, {about['seeds']} new seeds each",
        "",
        md_table(rows, columns),
        "",
    ]
    if rows and rows[0]["mean"] is not None:
        best = rows[0]
        lines.append(
            f"**Best by mean:** trial {best['trial']} ({metric} {best['mean']:.4f}); "
            f"`python -m study.export --confirmed` exports it."
        )
    return "\n".join(lines) + "\n"


def confirmed_best(source, storage) -> int | None:
    """The trial number ``study.confirm`` ranked first, or None without a confirmation."""
    import optuna

    try:
        study = optuna.load_study(study_name=f"{source.study_name}-{SUFFIX}", storage=storage)
    except KeyError:
        return None
    rows = [r for r in ranking(study) if r["mean"] is not None]
    return rows[0]["trial"] if rows else None


def intro(name: str, about: dict, planned: list) -> str:
    trials = ", ".join(map(str, about["trials"]))
    return (
        f"Confirming trials {trials} of {name} with {about['seeds']} new seeds each = "
        f"{len(planned)} runs"
    )


@entry
def main(argv: list[str] | None = None) -> int:
    return experiment_cli.run(build_parser().parse_args(argv), plan, markdown, intro)


if __name__ == "__main__":
    sys.exit(main())
