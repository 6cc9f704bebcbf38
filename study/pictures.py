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
    save_image(torch.cat([x, recon]).cpu(), path, nrow=len(x), padding=2, pad_value=1.0)
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
    n: int = 2000,
) -> Path:
    """Scatter of the latent codes of ``n`` validation images, coloured by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model.eval()
    x = images[:n].float().div(255)
    z = model.encode(x).flatten(1)
    xy, how = project_2d(z)
    xy, y = xy.cpu().numpy(), labels[:n].cpu().numpy()
    names = CLASS_NAMES.get(dataset, [str(i) for i in range(10)])
    fig, ax = plt.subplots(figsize=(6, 5), dpi=90)
    for c in range(10):
        m = y == c
        ax.scatter(xy[m, 0], xy[m, 1], s=4, alpha=0.6, color=plt.cm.tab10(c), label=names[c])
    ax.set_title(f"{title}: {z.shape[1]}-d latent ({how})", fontsize=10)
    ax.legend(markerscale=3, fontsize=7, loc="best", framealpha=0.7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
