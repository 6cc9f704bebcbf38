"""The report's tables: each finished trial described by the facts the seed write-ups ask
about, grouped, counted and ranked."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from objectives import SEED_ATTR


def describe(spec: dict[str, Any]) -> dict[str, Any]:
    """The facts the report groups by: encoder kind, latent size, FC bottleneck, freeze."""
    from models import config_from_dict

    model = config_from_dict(spec["model"])
    enc = model.encoder if model.family == "classifier" else model
    kind = "conv" if enc.family == "conv_ae" or getattr(enc, "encoder", None) == "conv" else "mlp"
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


def fmt(v, digits=4) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def md_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]
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
    rows = []
    for t in study.get_trials(deepcopy=False):
        if "spec" not in t.user_attrs or t.state.name not in ("COMPLETE", "PRUNED"):
            continue
        value = t.values[0] if t.values else None
        if value is None and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": value,
                "seed": t.user_attrs.get(SEED_ATTR),
                "in_space": bool(t.params),
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


def written_for(seed: str) -> str:
    """The data set a seed system's write-up used (S1 and S3 were written for MNIST)."""
    from models import PRESETS

    preset = PRESETS.get(seed)
    return preset.dataset if preset is not None else "-"


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
            "written_for": written_for(r["seed"]),
            "in_space": "yes" if r.get("in_space") else "no",
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
