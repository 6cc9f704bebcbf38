"""``python -m study.report``: plots and a short report that make a study explain itself.

Written at the end of every ``study.run`` (unless ``--no-report``) and on demand: Optuna's
optimisation history, parameter importances, parallel coordinates, intermediate values and
a slice + contour of the two most important parameters (matplotlib PNGs: these machines are
offline, so no plotly/CDN); tables that answer the seed write-ups' questions with this
study's numbers and trial counts; the seed systems beside the best trial found; the best
trial's pictures. ``report.md`` links the PNGs, ``report.html`` embeds them (one
self-contained file); all of it is logged to the study's parent MLflow run under ``report/``.
"""

from __future__ import annotations

import argparse
import base64
import html
import math
import statistics
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._common import (
    Parser,
    add_study_arguments,
    existing_study,
    exits_cleanly,
)

REPORT_DIR = "report"


def default_out(storage: str, name: str) -> Path:
    """``<dir of a local storage file>/reports/<study>``, else ``reports/<study>``."""
    for prefix in ("sqlite:///", "journal:"):
        if storage.startswith(prefix):
            return Path(storage[len(prefix) :]).parent / "reports" / name
    return Path("reports") / name


# -- what each trial was ------------------------------------------------------------------
def describe(spec: dict[str, Any]) -> dict[str, Any]:
    """The facts the report groups by: encoder kind, latent size, FC bottleneck, freeze."""
    from models import config_from_dict

    model = config_from_dict(spec["model"])
    enc = model.encoder if model.family == "classifier" else model
    kind = "conv" if enc.family == "conv_ae" or getattr(enc, "encoder", "") == "conv" else "mlp"
    family = "vae" if enc.family == "vae" else "ae"
    facts = {
        "encoder": f"{kind} {family.upper()}",
        "latent": model.latent_dim,
        "freeze": getattr(model, "freeze", None),
    }
    if enc.family == "conv_ae":
        facts["fc"] = "with FC bottleneck" if enc.fc_latent is not None else "without FC"
    return facts


@dataclass
class Group:
    label: str
    complete: list = field(default_factory=list)
    pruned: int = 0


def latent_bucket(n: int) -> tuple[int, str]:
    if n <= 3:
        return n, str(n)
    lo = 2 ** int(math.log2(n))
    return lo, f"{lo}-{2 * lo - 1}" if lo < 2048 else f">= {lo}"


def group_table(trials, key, *, maximize: bool, order=None) -> list[dict[str, Any]]:
    groups: dict[Any, Group] = {}
    for t in trials:
        facts = t["facts"]
        k = key(facts)
        if k is None:
            continue
        sort_key, label = k if isinstance(k, tuple) else (k, str(k))
        g = groups.setdefault(sort_key, Group(label))
        if t["state"] == "COMPLETE":
            g.complete.append(t)
        elif t["state"] == "PRUNED":
            g.pruned += 1
    keys = order if order is not None else sorted(groups)
    rows = []
    for k in keys:
        if k not in groups:
            continue
        g = groups[k]
        values = [t["value"] for t in g.complete]
        best = (max if maximize else min)(g.complete, key=lambda t: t["value"], default=None)
        rows.append(
            {
                "group": g.label,
                "complete": len(values),
                "pruned": g.pruned,
                "best": best["value"] if best else None,
                "median": statistics.median(values) if values else None,
                "best_trial": best["number"] if best else None,
            }
        )
    return rows


def verdict(rows, metric: str, *, maximize: bool) -> str:
    scored = [r for r in rows if r["best"] is not None]
    if len(scored) < 2:
        return "Not enough completed trials in more than one group to compare."
    ranked = sorted(scored, key=lambda r: r["best"], reverse=maximize)
    a, b = ranked[0], ranked[1]
    weak = min(a["complete"], b["complete"]) < 3
    return (
        f"Best {metric}: **{a['group']}** ({a['best']:.4f}, best of {a['complete']} completed "
        f"trial{'s' * (a['complete'] != 1)}) ahead of {b['group']} ({b['best']:.4f}, best of "
        f"{b['complete']})" + (" - few trials, weak evidence." if weak else ".")
    )


# -- plots ----------------------------------------------------------------------------------
def _save(ax_or_axes, path: Path, size=(8, 5)) -> Path:
    import numpy as np

    ax = np.atleast_1d(ax_or_axes).flat[0]
    fig = ax.figure
    fig.set_size_inches(*size)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def sampled_study(study):
    """An in-memory copy with the sampled completed trials only (seeds have no params)."""
    import optuna
    from optuna.trial import TrialState

    from objectives.seeds import SEED_ATTR

    copy = optuna.create_study(direction=study.direction)
    copy.add_trials(
        t
        for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.COMPLETE and SEED_ATTR not in t.user_attrs and t.params
    )
    return copy


def draw_plots(study, out: Path) -> tuple[list[tuple[str, str, Path]], list[str], list[str]]:
    """(title, caption, path) per plot drawn, notes for plots skipped, top params."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    import optuna.visualization.matplotlib as vis

    plots, notes, top = [], [], []
    sampled = sampled_study(study)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "unique value length is less than 2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def attempt(title, caption, name, draw, size=(8, 5)):
            try:
                plots.append((title, caption, _save(draw(), out / name, size)))
            except Exception as e:  # noqa: BLE001 - a plot needs trials the study may lack
                notes.append(f"{title}: not drawn ({str(e).splitlines()[0][:160]})")

        attempt(
            "Optimisation history",
            "Each completed trial's value and the best so far.",
            "history.png",
            lambda: vis.plot_optimization_history(study),
        )
        importances: dict[str, float] = {}
        if len(sampled.trials) >= 3:
            try:
                importances = optuna.importance.get_param_importances(sampled)
                # Conditional parameters live in some trials only; a constant one says nothing.
                varied = {
                    k
                    for k in importances
                    if len({repr(t.params[k]) for t in sampled.trials if k in t.params}) > 1
                }
                importances = {k: v for k, v in importances.items() if k in varied}
            except Exception as e:  # noqa: BLE001
                notes.append(f"Parameter importances: not computed ({str(e)[:160]})")
        else:
            notes.append("Parameter importances: need 3 completed sampled trials.")
        top = list(importances)[:2]
        if importances:
            attempt(
                "Parameter importances",
                "fANOVA importance of each parameter shared by all completed sampled trials.",
                "importances.png",
                lambda: vis.plot_param_importances(sampled),
            )
            attempt(
                "Parallel coordinates",
                "Completed sampled trials across the six most important parameters.",
                "parallel.png",
                lambda: vis.plot_parallel_coordinate(sampled, params=list(importances)[:6]),
                size=(11, 5),
            )
        attempt(
            "Intermediate values",
            "The validation metric per epoch of every trial: short lines are trials the "
            "pruner stopped.",
            "intermediate.png",
            lambda: vis.plot_intermediate_values(study),
        )
        if top:
            attempt(
                "Slice of the two most important parameters",
                f"Value against {', '.join(top)}.",
                "slice.png",
                lambda: vis.plot_slice(sampled, params=top),
                size=(10, 4.5),
            )
        if len(top) == 2:
            attempt(
                "Contour of the two most important parameters",
                f"{top[0]} against {top[1]}, coloured by value.",
                "contour.png",
                lambda: vis.plot_contour(sampled, params=top),
                size=(7, 5.5),
            )
    return plots, notes, top


# -- best trial pictures --------------------------------------------------------------------
def best_pictures(best, client, out: Path, dataset: str) -> list[tuple[str, Path]]:
    """The best trial's logged pictures, plus VAE samples from the prior."""
    pictures: list[tuple[str, Path]] = []
    run_id = best.user_attrs.get("mlflow_run_id")
    if client is None or not run_id:
        return pictures
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, caption in (
            ("reconstructions.png", "Validation images (top) and their reconstructions"),
            ("latent.png", "Latent codes of validation images, coloured by class"),
        ):
            try:
                local = client.download_artifacts(run_id, f"pictures/{name}", tmp)
            except Exception:  # noqa: BLE001 - not every trial draws every picture
                continue
            dst = out / f"best-{name}"
            shutil.copyfile(local, dst)
            pictures.append((caption, dst))
    model = best.user_attrs.get("spec", {}).get("model", {})
    encoder = model.get("encoder")  # a classifier's encoder config (a VAE's is "mlp"/"conv")
    vae = model.get("family") == "vae" or (
        isinstance(encoder, dict) and encoder.get("family") == "vae"
    )
    if vae and best.state.name == "COMPLETE":
        try:
            from .encode import Encoder

            enc = Encoder.from_run(run_id, tracking_uri=client.tracking_uri)
            if enc.can_decode:  # not a VAE encoder a scratch classifier never decoded with
                path = prior_samples(enc, out / "best-samples.png")
                pictures.append(("Samples decoded from the prior N(0, I)", path))
        except Exception as e:  # noqa: BLE001
            print(f"warning: no prior samples: {e}", file=sys.stderr)
    return pictures


def prior_samples(encoder, path: Path, n: int = 32) -> Path:
    import torch
    from torchvision.utils import save_image

    z = torch.randn(n, encoder.latent_dim, generator=torch.Generator().manual_seed(0))
    x = torch.as_tensor(encoder.decode(z))
    save_image(torch.nn.functional.interpolate(x, scale_factor=2), path, nrow=8, pad_value=1.0)
    return path


# -- the report -----------------------------------------------------------------------------
def _fmt(v, digits=4) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def md_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


GROUP_COLUMNS = [
    ("group", "group"),
    ("complete", "completed"),
    ("pruned", "pruned"),
    ("best", "best"),
    ("median", "median"),
    ("best_trial", "best trial"),
]


def trial_rows(study) -> list[dict[str, Any]]:
    from objectives.seeds import SEED_ATTR

    rows = []
    for t in study.get_trials(deepcopy=False):
        if "spec" not in t.user_attrs or t.state.name not in ("COMPLETE", "PRUNED"):
            continue
        value = t.value
        if value is None and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": value,
                "seed": t.user_attrs.get(SEED_ATTR),
                "facts": describe(t.user_attrs["spec"]),
            }
        )
    return rows


def sections(rows, maximize: bool) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(title, question, rows) for every question these trial rows can answer."""
    out = []
    freeze = group_table(
        rows,
        lambda f: f["freeze"],
        maximize=maximize,
        order=["frozen", "finetune", "joint", "scratch"],
    )
    if freeze:
        out.append(
            (
                "Freeze choice",
                "Does the classifier gain from letting its error reach the encoder? frozen: "
                "no gradient reaches the pre-trained encoder; finetune: pre-trained, then "
                "trained end to end; joint: classification + reconstruction from the start; "
                "scratch: classification only.",
                freeze,
            )
        )
    fc = group_table(rows, lambda f: f.get("fc"), maximize=maximize)
    if fc:
        out.append(
            (
                "FC bottleneck in conv autoencoders",
                "S4: does a fully connected bottleneck between conv encoder and decoder help?",
                fc,
            )
        )
    latent = group_table(rows, lambda f: latent_bucket(f["latent"]), maximize=maximize)
    if latent:
        out.append(
            ("Latent size", "Best value per latent size (grouped by powers of two).", latent)
        )
    kind = group_table(rows, lambda f: f["encoder"], maximize=maximize)
    if kind:
        out.append(("MLP vs conv", "Best value per encoder architecture.", kind))
    return out


def seeds_table(trials, maximize: bool) -> list[dict[str, Any]]:
    rows = [r for r in trials if r["seed"]]
    if not rows:
        return []
    ranked = sorted(
        (r for r in trials if r["state"] == "COMPLETE"),
        key=lambda r: r["value"],
        reverse=maximize,
    )
    rank = {r["number"]: i + 1 for i, r in enumerate(ranked)}
    out = [
        {
            "system": r["seed"],
            "trial": r["number"],
            "state": r["state"],
            "value": r["value"],
            "rank": rank.get(r["number"]),
            "encoder": r["facts"]["encoder"],
            "latent": r["facts"]["latent"],
        }
        for r in rows
    ]
    if ranked:
        b = ranked[0]
        out.append(
            {
                "system": "**best found**" + (f" ({b['seed']})" if b["seed"] else ""),
                "trial": b["number"],
                "state": b["state"],
                "value": b["value"],
                "rank": 1,
                "encoder": b["facts"]["encoder"],
                "latent": b["facts"]["latent"],
            }
        )
    return out


def write_report(study, out: Path, *, client=None, parent_run_id: str | None = None) -> Path:
    """Write plots, ``report.md`` and ``report.html`` to ``out``; log them to the parent run."""
    from optuna.trial import TrialState

    out.mkdir(parents=True, exist_ok=True)
    metric = study.user_attrs.get("metric", "value")
    maximize = study.direction.name == "MAXIMIZE"
    dataset = study.user_attrs.get("dataset", "fashion-mnist")
    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None

    plots, notes, top = draw_plots(study, out)
    pictures = best_pictures(best, client, out, dataset) if best is not None else []

    md: list[str] = [f"# Study `{study.study_name}`", ""]
    md.append(
        f"Objective: **{study.user_attrs.get('objective', '?')}** on {dataset}, "
        f"{metric} {'maximised' if maximize else 'minimised'}. Trials: "
        f"{count[TrialState.COMPLETE]} complete, {count[TrialState.PRUNED]} pruned, "
        f"{count[TrialState.FAIL]} failed."
    )
    if best is not None:
        md += ["", f"**Best: trial {best.number}, {metric} = {best.value:.4f}.**", ""]
        md += [f"- `{k}` = {_fmt(v)}" for k, v in best.params.items()]
        if "seed_preset" in best.user_attrs:
            md.append(f"- seed system `{best.user_attrs['seed_preset']}`")
        if top:
            md += ["", f"Most important parameters: {', '.join(f'`{p}`' for p in top)}."]
    md += ["", "## Questions from the seed write-ups", ""]
    trials_done = trial_rows(study)
    answered = sections(trials_done, maximize)
    if not answered:
        md.append("No finished trials yet.")
    for title, question, rows in answered:
        md += [f"### {title}", "", question, "", md_table(rows, GROUP_COLUMNS), ""]
        md += [verdict(rows, metric, maximize=maximize), ""]
    seeds = seeds_table(trials_done, maximize)
    md += ["## Seed systems beside the best configuration found", ""]
    if seeds:
        md.append(
            md_table(
                seeds,
                [
                    ("system", "system"),
                    ("trial", "trial"),
                    ("state", "state"),
                    ("value", metric),
                    ("rank", "rank"),
                    ("encoder", "encoder"),
                    ("latent", "latent"),
                ],
            )
        )
        md.append("")
        md.append("Seeds are never pruned. Rank among completed trials (1 = best).")
    else:
        md.append("No seed systems in this study (run with `--enqueue-seeds` to add them).")
    md += ["", "## Plots", ""]
    for title, caption, path in plots:
        md += [f"### {title}", "", caption, "", f"![{title}]({path.name})", ""]
    md += [f"- {n}" for n in notes]
    if pictures:
        md += ["", f"## Best trial ({best.number}) pictures", ""]
        for caption, path in pictures:
            md += [f"{caption}:", "", f"![{caption}]({path.name})", ""]
    text = "\n".join(md).rstrip() + "\n"
    (out / "report.md").write_text(text)
    (out / "report.html").write_text(to_html(text, out, study.study_name))
    if client is not None and parent_run_id is not None:
        client.log_artifacts(parent_run_id, str(out), REPORT_DIR)
    return out / "report.html"


def to_html(markdown: str, folder: Path, title: str) -> str:
    """A small Markdown subset to one self-contained HTML page (images inlined)."""
    import re

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    body: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            head, body_rows = rows[0], rows[2:]
            body.append(
                "<table><tr>"
                + "".join(f"<th>{inline(c)}</th>" for c in head)
                + "</tr>"
                + "".join(
                    "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>"
                    for r in body_rows
                )
                + "</table>"
            )
            continue
        m = re.match(r"!\[(.*)\]\((.+)\)", line)
        if m:
            data = base64.b64encode((folder / m.group(2)).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(m.group(1))}" src="data:image/png;base64,{data}">')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
        i += 1
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
        "padding:.2em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
        "th{background:#f3f3f3}img{max-width:100%}"
        "code{background:#f3f3f3;padding:0 .2em}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.report",
        description="Write a study's plots and report (Markdown + self-contained HTML) and "
        "log them to its parent MLflow run.",
    )
    add_study_arguments(p)
    p.add_argument(
        "--out", default=None, help="folder (default: reports/STUDY beside a local storage file)"
    )
    return p


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    study, name = existing_study(args)
    out = Path(args.out) if args.out else default_out(args.storage, name)
    client = parent = None
    if args.tracking_uri != "none":
        from ._common import check_tracking_uri
        from .tracking import PARENT_ATTR, client_for

        check_tracking_uri(args.tracking_uri)
        client = client_for(args.tracking_uri)
        parent = study.user_attrs.get(PARENT_ATTR)
    path = write_report(study, out, client=client, parent_run_id=parent)
    print(f"Report: {path}  (and {path.with_suffix('.md')})")
    if parent:
        print(f"Logged to MLflow run {parent} under {REPORT_DIR}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
