"""The study report: plots and a short report that make a study explain itself.

Written at the end of every ``study.run`` (unless ``--no-report``) and on demand: Optuna's
optimisation history, parameter importances, parallel coordinates, intermediate values and
a slice + contour of the two most important parameters; tables that answer the seed
write-ups' questions with this study's numbers and trial counts; the seed systems beside
the best trial found; the best trial's pictures. ``report.md`` links the PNGs,
``report.html`` embeds them (one self-contained file); all of it is logged to the study's
parent MLflow run under ``report/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from optuna.trial import TrialState

from objectives import BASELINE_ATTR, SEED_ATTR
from study.reporting.html import to_html
from study.reporting.plots import best_pictures, draw_plots, draw_study_front, draw_tradeoffs
from study.reporting.references import IWAE_SAMPLES
from study.reporting.tables import (
    GROUP_COLUMNS,
    fmt,
    md_table,
    sections,
    seeds_table,
    trial_rows,
    verdict,
)
from study.search.results import best_trial, maximizing
from study.settings import REFIT_ATTR
from study.tracking import timing

REPORT_DIR = "report"
SEED_COLUMNS = [
    ("system", "system"), ("trial", "trial"), ("state", "state"), ("value", "{metric}"),
    ("rank", "rank"), ("encoder", "encoder"), ("latent", "latent"),
    ("written_for", "written for"), ("in_space", "in the search space"),
]  # fmt: skip


def overview(study, best, top: list[str]) -> list[str]:
    """The study's objective, trial counts and best trial."""
    metric = study.user_attrs.get("metric", "value")
    maximize = maximizing(study)
    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    md = [f"# Study `{study.study_name}`", ""]
    md.append(
        f"Objective: **{study.user_attrs.get('objective', '?')}** on "
        f"{study.user_attrs.get('dataset', 'fashion-mnist')}, "
        f"{metric} {'maximised' if maximize else 'minimised'}. Trials: "
        f"{count[TrialState.COMPLETE]} complete, {count[TrialState.PRUNED]} pruned, "
        f"{count[TrialState.FAIL]} failed."
    )
    if best is not None:
        md += ["", f"**Best: trial {best.number}, {metric} = {best.values[0]:.4f}.**", ""]
        md += [f"- `{k}` = {fmt(v)}" for k, v in best.params.items()]
        if SEED_ATTR in best.user_attrs:
            md.append(f"- seed system `{best.user_attrs[SEED_ATTR]}`")
        md += baseline_line(trials, best, metric, maximize)
        md += refit_line(study.user_attrs.get(REFIT_ATTR), best, metric)
        if top:
            md += ["", f"Most important parameters: {', '.join(f'`{p}`' for p in top)}."]
    return md


def refit_line(refit: dict | None, best, metric: str) -> list[str]:
    """The refit (the registered ``@best`` model) beside the best trial."""
    if not refit:
        return ["", "No refit yet (`--no-refit`, or the study has not finished): the "
                "registered `@best` model is the best trial's own checkpoint."]  # fmt: skip
    picked = (f", picked among trials {refit['candidates']} by validation {metric}"
              if len(refit["candidates"]) > 1 else "")  # fmt: skip
    return [
        "",
        f"**Refit** (the registered `@best` model): trial {refit['trial']}'s configuration "
        f"retrained on {refit['images']} images for {refit['epochs']} epochs (seed "
        f"{refit['seed']}){picked}: test {refit['metric']} = "
        f"{refit['test'][refit['metric']]:.4f}, against the best trial's validation {metric} "
        f"= {best.values[0]:.4f} on its own {best.user_attrs.get('images', {}).get('train', '?')}"
        " training images.",
    ]


def baseline_line(trials, best, metric: str, maximize: bool) -> list[str]:
    """What the search bought over the objective's baseline (its textbook configuration)."""
    base = next((t for t in trials if BASELINE_ATTR in t.user_attrs), None)
    if base is None or base.state != TrialState.COMPLETE:
        return []
    if base.number == best.number:
        return ["", "The best trial is the baseline (`objectives/baselines.py`): the search "
                "has not beaten the textbook configuration yet."]  # fmt: skip
    gain = (best.values[0] - base.values[0]) * (1 if maximize else -1)
    return [
        "",
        f"Baseline (trial {base.number}, the textbook configuration of "
        f"`objectives/baselines.py`): {metric} = {base.values[0]:.4f}; the best trial is "
        f"{gain:.4f} better.",
    ]


def questions(study, rows) -> list[str]:
    """The seed write-ups' questions, and the seed systems beside the best trial."""
    metric = study.user_attrs.get("metric", "value")
    maximize = maximizing(study)
    md = ["", "## Questions from the seed write-ups", ""]
    md += [
        "*From the search (observational)*: groups of trials differ in everything else that "
        "was sampled, and pruned trials never finished. For an all-else-equal answer run "
        "`python -m study.ablate --factor FACTOR` (see Controlled experiments below).",
        "",
    ]
    answered = sections(rows, maximize)
    if not answered:
        md.append("No finished trials yet.")
    for title, question, table in answered:
        md += [f"### {title}", "", question, "", md_table(table, GROUP_COLUMNS), ""]
        md += [verdict(table, metric, maximize=maximize), ""]
    seeds = seeds_table(rows, maximize)
    md += ["## Seed systems beside the best configuration found", ""]
    if seeds:
        columns = [(k, title.format(metric=metric)) for k, title in SEED_COLUMNS]
        md += [md_table(seeds, columns), ""]
        md.append("Seeds are never pruned. Rank among completed trials (1 = best).")
        if any(r.get("in_space") == "no" for r in seeds):
            md.append(
                "A seed the search space cannot express (a width, latent size, activation or "
                "layer the space has no value for) trains as written but carries no parameter "
                "values: it is kept out of the sampler's history."
            )
        dataset = study.user_attrs.get("dataset", "fashion-mnist")
        other = sorted(
            {r["written_for"] for r in seeds if r.get("written_for", dataset) != dataset}
        )
        if other:
            md.append(
                f"Seeds whose write-up used {', '.join(other)} train here on {dataset}: "
                "their numbers are not the write-up's."
            )
    else:
        md.append("No seed systems in this study (run with `--enqueue-seeds` to add them).")
    return md


def tradeoffs(study, out: Path) -> list[str]:
    """The Pareto section: what each extra parameter or latent dimension buys."""
    metric = study.user_attrs.get("metric", "value")
    drawn, notes = draw_tradeoffs(study, out, metric)
    md = ["", "## Trade-offs", ""]
    if len(study.directions) > 1:
        plots, more = draw_study_front(study, out)
        front = sorted(t.number for t in study.best_trials)
        md.append(f"A two-objective study: its Pareto front holds trials {front}.")
        for title, caption, path in plots:
            md += ["", f"### {title}", "", caption, "", f"![{title}]({path.name})"]
        notes = notes + more
        md.append("")
    md.append(
        "Each point is a completed trial; a Pareto-optimal trial has no other that is at least "
        "as good on both axes and better on one. Read along the front: how much of the metric "
        "each step up in size buys (`study.export --max-params N` picks the best within a "
        "budget)."
    )
    for title, caption, path, names, rows in drawn:
        md += ["", f"### {title}", "", caption, "", f"![{title}]({path.name})", ""]
        md.append(md_table(rows, [("trial", "trial"), ("a", names[0]), ("b", names[1])]))
    md += [f"- {n}" for n in notes]
    return md


def figures(plots, notes, pictures, best) -> list[str]:
    md = ["", "## Plots", ""]
    for title, caption, path in plots:
        md += [f"### {title}", "", caption, "", f"![{title}]({path.name})", ""]
    md += [f"- {n}" for n in notes]
    if pictures:
        md += ["", f"## Best trial ({best.number}) pictures", ""]
        for caption, path in pictures:
            md += [f"{caption}:", "", f"![{caption}]({path.name})", ""]
    return md


def experiments(study) -> list[str]:
    """Every ablation and confirmation run on this study (``study.ablate``/``confirm``)."""
    from study.experiments import cells
    from study.reporting.experiments import ablation_markdown, confirmation_markdown
    from study.stores import optuna_internals as internals

    md = ["", "## Controlled experiments", ""]
    found = cells.experiments_of(study, internals.storage_of(study))
    if not found:
        md.append(
            "None yet: `python -m study.ablate --factor freeze` (one factor varied on the best "
            "trial, several seeds) and `python -m study.confirm --top 3` (the best "
            "configurations retrained with new seeds) answer with intervals."
        )
    metric = study.user_attrs.get("metric", "value")
    for other in found:
        kind = other.user_attrs.get("experiment", {}).get("kind")
        text = (ablation_markdown if kind == "ablate" else confirmation_markdown)(other, metric)
        md += [("##" + line) if line.startswith("# ") else line for line in text.splitlines()]
        md.append("")
    return md


def references(study, dataset: str, best, client, iwae_samples: int) -> list[str]:
    """Known references beside the study's numbers: PCA at each latent size (``ae``), the
    IWAE bound beside the negative ELBO (``vae``)."""
    from study.reporting.references import classifier_section, iwae_section, pca_section

    objective = study.user_attrs.get("objective")
    if objective == "classifier":
        return classifier_section(study)
    if objective not in ("ae", "vae") or best is None:
        return []
    try:
        from study.data.loading import load

        data = load(dataset)
        if objective == "ae":
            return pca_section(study, data)
        return iwae_section(study, data, best, client, iwae_samples)
    except Exception as e:  # noqa: BLE001 - the rest of the report stands without it
        return ["", f"(No reference for this study: {' '.join(str(e).split())[:200]}.)"]


def missing_files(study, best, client) -> list[str]:
    """A section naming each completed trial (and the refit) whose checkpoint is gone from
    the artifact store, and the best trial's pictures if they are; each also said on stderr.
    Nothing else of the report depends on them."""
    from study.artifacts import checkpoint
    from study.settings import REFIT_ATTR

    if client is None:
        return []
    runs = [t.user_attrs.get("mlflow_run_id") for t in study.get_trials(deepcopy=False)
            if t.state.name == "COMPLETE"]  # fmt: skip
    runs.append((study.user_attrs.get(REFIT_ATTR) or {}).get("run_id"))
    lines = []
    for run_id in filter(None, runs):
        try:
            run = client.get_run(run_id)
            if checkpoint.should_have_checkpoint(run) and not checkpoint.has_checkpoint(
                client, run_id
            ):
                lines.append(checkpoint.missing_checkpoint(run))
        except Exception:  # noqa: BLE001 - a run of another tracking store
            continue
    run_id = best.user_attrs.get("mlflow_run_id") if best is not None else None
    if run_id and best.state.name == "COMPLETE":
        try:
            run = client.get_run(run_id)
            drawn = {a.path for a in client.list_artifacts(run_id, "pictures")}
            if "pictures_error" not in run.data.tags and "pictures/latent.png" not in drawn:
                lines.append(
                    f"{checkpoint.whose(run)} has lost its pictures: they are missing from "
                    f"{run.info.artifact_uri} (deleted by hand?)"
                )
        except Exception:  # noqa: BLE001
            pass
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)
    if not lines:
        return []
    return ["", "## Missing files", "", *(f"- {line}" for line in lines), "",
            "The rest of the study stands; python -m study.export --trial N and "
            "python -m study.train --config retrain a trial whose checkpoint is gone."]  # fmt: skip


def write_report(study, out: Path, *, client=None, parent_run_id: str | None = None,
                 iwae_samples: int = IWAE_SAMPLES) -> Path:  # fmt: skip
    """Write plots, ``report.md`` and ``report.html`` to ``out``; log them to the parent run."""
    out.mkdir(parents=True, exist_ok=True)
    dataset = study.user_attrs.get("dataset", "fashion-mnist")
    best = best_trial(study)
    plots, notes, top = draw_plots(study, out)
    pictures = best_pictures(best, client, out, dataset) if best is not None else []
    md = overview(study, best, top) + questions(study, trial_rows(study)) + experiments(study)
    md += tradeoffs(study, out) + references(study, dataset, best, client, iwae_samples)
    md += timing.markdown(study.get_trials(deepcopy=False))
    md += missing_files(study, best, client)
    md += figures(plots, notes, pictures, best)
    text = "\n".join(md).rstrip() + "\n"
    (out / "report.md").write_text(text)
    (out / "report.html").write_text(to_html(text, out, study.study_name))
    if client is not None and parent_run_id is not None:
        client.log_artifacts(parent_run_id, str(out), REPORT_DIR)
    return out / "report.html"
