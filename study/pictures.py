"""PNG artifacts: real-vs-reconstructed grids and latent scatters coloured by class."""

from __future__ import annotations

from pathlib import Path

import torch

CLASS_NAMES = {
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "mnist": [str(i) for i in range(10)],
}


@torch.inference_mode()
def reconstruction_grid(autoencoder, images: torch.Tensor, path: Path, n: int = 16) -> Path:
    """Top row: ``n`` real validation images; bottom row: their reconstructions."""
    from torchvision.utils import save_image

    autoencoder.eval()
    x = images[:n].float().div(255)
    recon = autoencoder.decode(autoencoder.encode(x)).float().clamp(0, 1)
    grid = torch.nn.functional.interpolate(torch.cat([x, recon]).float(), scale_factor=3)
    save_image(grid.cpu(), path, nrow=len(x), padding=4, pad_value=1.0)  # 3x: readable
    return path


def project_2d(z: torch.Tensor) -> tuple[torch.Tensor, str]:
    """The codes themselves when 2-d (or 1-d), else their first two principal components."""
    z = z.float()
    if z.shape[1] <= 2:
        return (z if z.shape[1] == 2 else torch.cat([z, torch.zeros_like(z)], 1)), "latent"
    centred = z - z.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:2].T, "PCA"


@torch.inference_mode()
def latent_scatter(
    model,
    images: torch.Tensor,
    labels: torch.Tensor,
    path: Path,
    *,
    dataset: str,
    title: str,
    n: int = 1500,
) -> Path:
    """Scatter of the latent codes of ``n`` validation images, coloured by class."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    model.eval()
    x = images[:n].float().div(255)
    z = model.encode(x).flatten(1)
    xy, how = project_2d(z)
    xy, y = xy.cpu().numpy(), labels[:n].cpu().numpy()
    names = CLASS_NAMES.get(dataset, [str(i) for i in range(10)])
    colours = matplotlib.colormaps["tab10"].colors
    # One scatter call and no tight_layout: about half the time of the pyplot idiom, which
    # matters when every trial of a study draws one.
    fig = Figure(figsize=(6.4, 4.8), dpi=90)
    ax = fig.add_axes((0.09, 0.08, 0.66, 0.84))
    ax.scatter(
        xy[:, 0],
        xy[:, 1],
        s=4,
        c=y,
        cmap=ListedColormap(colours),
        vmin=-0.5,
        vmax=9.5,
        alpha=0.6,
        linewidths=0,
    )
    handles = [Line2D([], [], ls="", marker="o", ms=5, color=colours[c]) for c in range(10)]
    ax.legend(
        handles, names, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )
    ax.set_title(f"{title}: {z.shape[1]}-d latent ({how})", fontsize=10)
    fig.savefig(path)
    return path
