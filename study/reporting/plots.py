"""The report's pictures: Optuna's plots (matplotlib PNGs: these machines are offline, so
no plotly/CDN) and the best trial's reconstructions, latents and prior samples."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from objectives import SEED_ATTR
from study.search.samplers import importance_evaluator


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

    copy = optuna.create_study(direction=study.directions[0])
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE and SEED_ATTR not in t.user_attrs and t.params:
            # A multi-objective trial's objective value only: importances of the metric.
            copy.add_trial(
                optuna.trial.create_trial(
                    params=t.params, distributions=t.distributions, value=t.values[0]
                )
            )
    return copy


class Plotter:
    """Draws each plot it can; a plot that needs trials the study lacks becomes a note."""

    def __init__(self, out: Path):
        self.out = out
        self.plots: list[tuple[str, str, Path]] = []
        self.notes: list[str] = []

    def attempt(self, title: str, caption: str, name: str, draw, size=(8, 5)) -> None:
        try:
            self.plots.append((title, caption, _save(draw(), self.out / name, size)))
        except Exception as e:  # noqa: BLE001 - a plot needs trials the study may lack
            self.notes.append(f"{title}: not drawn ({str(e).splitlines()[0][:160]})")


def importances_of(sampled, notes: list[str]) -> dict[str, float]:
    """fANOVA importances of the parameters that vary among the completed sampled trials."""
    import optuna

    if len(sampled.trials) < 3:
        notes.append("Parameter importances: need 3 completed sampled trials.")
        return {}
    try:
        importances = optuna.importance.get_param_importances(
            sampled, evaluator=importance_evaluator()
        )
    except Exception as e:  # noqa: BLE001
        notes.append(f"Parameter importances: not computed ({str(e)[:160]})")
        return {}
    # Conditional parameters live in some trials only; a constant one says nothing.
    varied = {
        k
        for k in importances
        if len({repr(t.params[k]) for t in sampled.trials if k in t.params}) > 1
    }
    return {k: v for k, v in importances.items() if k in varied}


def draw_plots(study, out: Path) -> tuple[list[tuple[str, str, Path]], list[str], list[str]]:
    """(title, caption, path) per plot drawn, notes for plots skipped, top params."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    import optuna.visualization.matplotlib as vis

    p = Plotter(out)
    sampled = sampled_study(study)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "unique value length is less than 2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p.attempt(
            "Optimisation history",
            "Each completed trial's value and the best so far.",
            "history.png",
            lambda: vis.plot_optimization_history(
                study, target=lambda t: t.values[0], target_name=study.user_attrs.get("metric")
            ),
        )
        importances = importances_of(sampled, p.notes)
        top = list(importances)[:2]
        if importances:
            draw_importance_plots(p, sampled, list(importances))
        p.attempt(
            "Intermediate values",
            "The validation metric per epoch of every trial: short lines are trials the "
            "pruner stopped.",
            "intermediate.png",
            lambda: vis.plot_intermediate_values(study),
        )
        if top:
            p.attempt(
                "Slice of the two most important parameters",
                f"Value against {', '.join(top)}.",
                "slice.png",
                lambda: vis.plot_slice(sampled, params=top),
                size=(10, 4.5),
            )
        if len(top) == 2:
            p.attempt(
                "Contour of the two most important parameters",
                f"{top[0]} against {top[1]}, coloured by value.",
                "contour.png",
                lambda: vis.plot_contour(sampled, params=top),
                size=(7, 5.5),
            )
    return p.plots, p.notes, top


def draw_importance_plots(p: Plotter, sampled, ranked: list[str]) -> None:
    import optuna.visualization.matplotlib as vis

    p.attempt(
        "Parameter importances",
        "fANOVA importance of each parameter shared by all completed sampled trials.",
        "importances.png",
        lambda: vis.plot_param_importances(sampled, evaluator=importance_evaluator()),
    )
    p.attempt(
        "Parallel coordinates",
        "Completed sampled trials across the six most important parameters.",
        "parallel.png",
        lambda: vis.plot_parallel_coordinate(sampled, params=ranked[:6]),
        size=(11, 5),
    )


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
            from study.artifacts.encoder import Encoder

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


TRADEOFFS = {
    # name: (what, minimised quantity from a completed trial, its label)
    "params": ("parameters", lambda t: t.user_attrs.get("cost", {}).get("params")),
    "latent": ("latent size", lambda t: t.user_attrs.get("cost", {}).get("latent")),
}


def draw_study_front(study, out: Path):
    """A two-objective study's own front and hypervolume history: [(title, caption, path)]."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna.visualization.matplotlib as vis
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
    p = Plotter(out)
    names = study.metric_names or ["objective", "second"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p.attempt(
            "Pareto front of the study",
            f"Every completed trial: {names[0]} against {names[1]}; the front in colour.",
            "pareto-study.png",
            lambda: vis.plot_pareto_front(study, target_names=names),
        )
        if complete:
            worst = [
                min(t.values[0] for t in complete) if study.directions[0].name == "MAXIMIZE"
                else max(t.values[0] for t in complete),
                max(t.values[1] for t in complete),
            ]  # fmt: skip
            ref = [worst[0] - 0.01 * abs(worst[0] or 1), worst[1] * 1.1 + 1e-9]
            p.attempt(
                "Hypervolume history",
                f"The area the front dominates, against the reference point {ref}.",
                "hypervolume.png",
                lambda: vis.plot_hypervolume_history(study, reference_point=ref),
            )
    return p.plots, p.notes


def front_study(points, directions: list[str]):
    """An in-memory two-objective study of (trial number, value, quantity) points."""
    import optuna

    mo = optuna.create_study(directions=directions)
    for number, a, b in points:
        mo.add_trial(optuna.trial.create_trial(values=[a, b], user_attrs={"trial": number}))
    return mo


def tradeoff_points(study, kind: str) -> list[tuple[int, float, float]]:
    from study.search.results import countable

    out = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name != "COMPLETE" or not countable(t):
            continue
        if kind == "kl":
            val = t.user_attrs.get("val", {})
            a, b = val.get("recon"), val.get("kl")
        else:
            a, b = t.values[0], TRADEOFFS[kind][1](t)
        if a is not None and b is not None:
            out.append((t.number, float(a), float(b)))
    return out


def draw_tradeoffs(study, out: Path, metric: str):
    """Pareto fronts of the objective against each cost (and, for a VAE, reconstruction
    against KL): [(title, caption, path, [Pareto-optimal rows])], notes."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna.visualization.matplotlib as vis

    maximize = study.directions[0].name == "MAXIMIZE"
    kinds = ["params", "latent"] + (["kl"] if study.user_attrs.get("objective") == "vae" else [])
    drawn, notes = [], []
    for kind in kinds:
        points = tradeoff_points(study, kind)
        if len(points) < 2:
            notes.append(f"Trade-off against {kind}: needs 2 completed trials with costs.")
            continue
        if kind == "kl":
            names, directions = ["reconstruction", "KL"], ["minimize", "minimize"]
        else:
            names = [metric, TRADEOFFS[kind][0]]
            directions = ["maximize" if maximize else "minimize", "minimize"]
        mo = front_study(points, directions)
        title = f"Trade-off: {names[0]} against {names[1]}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = _save(vis.plot_pareto_front(mo, target_names=names), out / f"pareto-{kind}.png")
        front = sorted((t.user_attrs["trial"], *t.values) for t in mo.best_trials)
        rows = [{"trial": n, "a": a, "b": int(b) if b.is_integer() else b} for n, a, b in front]
        caption = f"Completed trials; the Pareto-optimal ones ({len(rows)}) are listed below."
        drawn.append((title, caption, path, names, rows))
    return drawn, notes
