"""The latent scatter every trial draws: the earlier Matplotlib figure with an exact SVD
against the Pillow figure with randomized PCA (``study.tracking.pictures``), on the same codes.

Per preset and for the classifier's baseline (untrained, CPU, 2 threads; the 1,500
validation images every trial draws): milliseconds to encode them, to project the codes to
2-d and to draw the PNG, the two variants alternating, median of ``--reps``; and how close
the randomized projection is to the exact one (the smaller of the two axes' |correlation|).

    python -m bench.pictures --reps 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

PRESETS = ["s2-mlp-ae-3d", "s3-mlp-vae", "s0-latent-classifier", "s4-conv-ae-nofc"]
BASELINE = "classifier baseline"  # the default study's trial 0: a CNN without a bottleneck
N = 1500


def model_config(name: str):
    import optuna

    import models as m
    from objectives import OBJECTIVES
    from objectives.baselines import baseline_params

    if name != BASELINE:
        return m.PRESETS[name].model
    fixed = optuna.trial.FixedTrial(baseline_params("classifier", max_epochs=8))
    return OBJECTIVES["classifier"].suggest(fixed, max_epochs=8).model


def exact_pca(z: torch.Tensor) -> torch.Tensor:
    """The earlier projection: an exact SVD, whatever the codes' width."""
    from study.tracking.pictures import two_columns

    z = z.float()
    if z.shape[1] <= 2:
        return two_columns(z)
    centred = z - z.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return two_columns(centred @ v[:2].T)


def matplotlib_png(xy, y, names, title, path) -> None:
    """The earlier figure, as study.tracking.pictures drew it with Matplotlib until this benchmark."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    colours = matplotlib.colormaps["tab10"].colors
    fig = Figure(figsize=(6.4, 4.8), dpi=90)
    ax = fig.add_axes((0.09, 0.08, 0.66, 0.84))
    ax.scatter(xy[:, 0], xy[:, 1], s=4, c=y, cmap=ListedColormap(colours), vmin=-0.5,
               vmax=9.5, alpha=0.6, linewidths=0)  # fmt: skip
    handles = [Line2D([], [], ls="", marker="o", ms=5, color=colours[c]) for c in range(10)]
    ax.legend(handles, names, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)  # fmt: skip
    ax.set_title(title, fontsize=10)
    fig.savefig(path)


def closeness(a: torch.Tensor, b: torch.Tensor) -> float:
    return min(torch.corrcoef(torch.stack([a[:, i], b[:, i]]))[0, 1].abs().item() for i in range(2))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pictures", description=__doc__)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    import models as m
    from study.data import loading as data_mod
    from study.tracking import pictures

    torch.set_num_threads(2)
    val = data_mod.load("fashion-mnist").val
    x, y = val.images[:N].float().div(255), val.labels[:N].numpy()
    names = pictures.CLASS_NAMES["fashion-mnist"]
    variants = {
        "Matplotlib + exact SVD": (exact_pca, matplotlib_png),
        "Pillow + randomized PCA": (lambda z: pictures.project_2d(z)[0], pictures.scatter_png),
    }
    print("| preset | latent | encode (ms) | variant | PCA (ms) | PNG (ms) | closeness |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in [*PRESETS, BASELINE]:
            torch.manual_seed(0)
            model = m.prepare_model(m.build_model(model_config(preset)), torch.device("cpu"))
            model.eval()
            times = {name: ([], []) for name in variants}
            encode = []
            for _ in range(args.reps + 1):  # the first round warms up, not counted
                with torch.inference_mode():
                    start = time.perf_counter()
                    z = model.encode(x).flatten(1)
                    encode.append(time.perf_counter() - start)
                    for name, (project, draw) in variants.items():
                        start = time.perf_counter()
                        xy = project(z)
                        mid = time.perf_counter()
                        draw(xy.numpy(), y, names, preset, Path(tmp) / "latent.png")
                        times[name][0].append(mid - start)
                        times[name][1].append(time.perf_counter() - mid)
            with torch.inference_mode():
                close = closeness(exact_pca(z), pictures.project_2d(z)[0])
            enc = statistics.median(encode[1:]) * 1000
            for name, (pca, png) in times.items():
                print(
                    f"| {preset} | {z.shape[1]} | {enc:.1f} | {name} "
                    f"| {statistics.median(pca[1:]) * 1000:.1f} "
                    f"| {statistics.median(png[1:]) * 1000:.1f} | "
                    + ("-" if name.startswith("Matplotlib") else f"{close:.5f}")
                    + " |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
