"""The tables of a study's controlled experiments: an ablation's levels and paired
differences with their verdict, and a confirmation's ranking by mean over new seeds. Printed
by ``study.ablate`` / ``study.confirm``, and drawn again in the study's report."""

from __future__ import annotations

from typing import Any

from study.experiments import cells, confirmation, stats
from study.experiments.ablation import Ablation
from study.experiments.confirmation import Confirmation
from study.reporting.tables import md_table
from study.search.results import maximizing


def ablation_table(study) -> tuple[list[dict], list[dict], str, Ablation]:
    """(per-level rows, difference rows, verdict, about) from the experiment's runs."""
    about = Ablation.from_attr(study.user_attrs["experiment"])
    own = about.own_level
    values: dict[Any, dict[int, float]] = {lv: {} for lv in about.levels}
    for cell, value in cells.results(study):
        values[cell["level"]][cell["seed"]] = value
    levels = []
    for lv in about.levels:
        got = list(values[lv].values())
        mean, sd, n = stats.summary(got) if got else (None, None, 0)
        levels.append({"level": f"{lv} (the trial's)" if lv == own else lv, "mean": mean,
                       "sd": sd, "n": n})  # fmt: skip
    higher = maximizing(study)
    diffs, found = [], []
    for lv in about.levels:
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


def ablation_markdown(study, metric: str) -> str:
    levels, diffs, verdict, about = ablation_table(study)
    lines = [
        f"# Ablation of `{about.factor}`: {about.question}",
        "",
        f"Trial {about.trial} of `{study.user_attrs[cells.SOURCE_ATTR]}` with only "
        f"`{about.factor}` varied, {about.seeds} seeds per level, every run trained to "
        f"its full budget (experiment study `{study.study_name}`). {metric}:",
        "",
        md_table(levels, [("level", "level"), ("mean", "mean"), ("sd", "sd"), ("n", "n")]),
        "",
        f"Paired difference against the trial's own level ({about.own_level}), same seed:",
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


def confirmation_ranking(study) -> list[dict[str, Any]]:
    """One row per configuration, best mean first."""
    about = Confirmation.from_attr(study.user_attrs["experiment"])
    runs: dict[int, list[tuple[float, dict | None]]] = {n: [] for n in about.trials}
    tests = {}
    for t in study.get_trials(deepcopy=False):
        cell = t.user_attrs.get("cell")
        if cell is not None and t.state.name == "COMPLETE":
            tests[cell["name"]] = t.user_attrs.get("test")
    for cell, value in cells.results(study):
        runs[cell["trial"]].append((value, tests.get(cell["name"])))
    rows = []
    for number, trial_value in zip(about.trials, about.values, strict=True):
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


def confirmation_markdown(study, metric: str) -> str:
    about = Confirmation.from_attr(study.user_attrs["experiment"])
    rows = confirmation_ranking(study)
    columns = [("rank", "rank"), ("trial", "trial"), ("trial_value", f"trial's {metric}"),
               ("mean", f"mean {metric}"), ("sd", "sd"), ("n", "runs")]  # fmt: skip
    if about.test:
        columns.append(("test", "mean test score"))
    lines = [
        f"# Confirmation: the {len(rows)} best configurations of "
        f"`{study.user_attrs[cells.SOURCE_ATTR]}`, {about.seeds} new seeds each",
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
        study = optuna.load_study(
            study_name=f"{source.study_name}-{confirmation.SUFFIX}", storage=storage
        )
    except KeyError:
        return None
    rows = [r for r in confirmation_ranking(study) if r["mean"] is not None]
    return rows[0]["trial"] if rows else None
