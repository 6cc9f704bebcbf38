"""PNG artifacts: real-vs-reconstructed grids and latent scatters coloured by class."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
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
    from PIL import Image

    autoencoder.eval()
    x = images[:n].float().div(255)
    recon = autoencoder.decode(autoencoder.encode(x)).float().clamp(0, 1)
    tiles = torch.nn.functional.interpolate(torch.cat([x, recon]).float(), scale_factor=3)
    grid = tile(tiles.cpu()[:, 0], rows=2, padding=4)  # 3x: readable
    # torchvision's save_image, as one grey channel and quicker to compress: half the time.
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).numpy()
    Image.fromarray(pixels, "L").save(path, format="PNG", compress_level=3)
    return path


def tile(images: torch.Tensor, rows: int, padding: int) -> torch.Tensor:
    """Grey ``(k, h, w)`` images in ``rows`` rows on white, ``padding`` pixels around each:
    torchvision's ``make_grid`` layout, without importing torchvision (~0.1-0.2 s in a
    worker that otherwise never does)."""
    k, h, w = images.shape
    cols = k // rows
    padded = torch.nn.functional.pad(images, (0, padding, 0, padding), value=1.0)
    grid = padded.view(rows, cols, h + padding, w + padding).permute(0, 2, 1, 3)
    grid = grid.reshape(rows * (h + padding), cols * (w + padding))
    return torch.nn.functional.pad(grid, (padding, 0, padding, 0), value=1.0)


EXACT_PCA_WIDTH = 64  # wider codes: randomized PCA (an exact SVD of 1,500 x 1,568 takes ~0.4 s)


def project_2d(z: torch.Tensor) -> tuple[torch.Tensor, str]:
    """The codes themselves when 2-d (or 1-d), else their first two principal components
    (a single code has one: the second axis is then zero)."""
    z = z.float()
    if z.shape[1] <= 2:
        return two_columns(z), "latent"
    centred = z - z.mean(0)
    if z.shape[1] <= EXACT_PCA_WIDTH:
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
    else:
        v = top_directions(centred, 2)
    return two_columns(centred @ v[:2].T), "PCA"


def two_columns(xy: torch.Tensor) -> torch.Tensor:
    return xy if xy.shape[1] == 2 else torch.cat([xy, torch.zeros_like(xy)], 1)


def top_directions(c: torch.Tensor, k: int, *, extra: int = 8, iters: int = 2) -> torch.Tensor:
    """The ``k`` leading right singular vectors of ``c`` (rows), by randomized subspace
    iteration (Halko, Martinsson & Tropp 2011, algorithm 4.4) from a fixed seed: a few
    milliseconds where an exact SVD of a wide matrix takes hundreds, the same picture, and
    the global random stream is left alone (the next trial trains from it)."""
    gen = torch.Generator(device=c.device).manual_seed(0)
    q = torch.randn(c.shape[1], k + extra, generator=gen, device=c.device)
    ct = c.T.contiguous()  # a product with the strided transpose takes ~5x as long on a CPU
    q = torch.linalg.qr(c @ q).Q
    for _ in range(iters):
        q = torch.linalg.qr(c @ torch.linalg.qr(ct @ q).Q).Q
    _, _, v = torch.linalg.svd(q.T @ c, full_matrices=False)
    return v[:k]


SCATTER_POINTS = 1500  # validation images in the latent scatter


@torch.inference_mode()
def latent_scatter(
    model,
    images: torch.Tensor,
    labels: torch.Tensor,
    path: Path,
    *,
    dataset: str,
    title: str,
    n: int = SCATTER_POINTS,
    codes: torch.Tensor | None = None,
) -> Path:
    """Scatter of the latent codes of ``n`` validation images, coloured by class;
    ``codes``: those images' codes already computed (by the last validation pass)."""
    if codes is None:
        model.eval()
        z = model.encode(images[:n].float().div(255)).flatten(1)
    else:
        z = codes[:n]
    xy, how = project_2d(z)
    names = CLASS_NAMES.get(dataset, [str(i) for i in range(10)])
    scatter_png(
        xy.cpu().numpy(),
        labels[:n].cpu().numpy(),
        names,
        f"{title}: {z.shape[1]}-d latent ({how})",
        path,
    )
    return path


# Matplotlib's tab10, the colours its scatter plots use for ten classes.
TAB10 = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip
WIDTH, HEIGHT = 576, 432  # Matplotlib's default 6.4 x 4.8 inches, at 90 dpi
BOX = (52, 34, 430, 396)  # the plot's frame: left, top, right, bottom
# A dot 3 pixels wide: its centre and edges at the points' opacity, its corners fainter.
DOT = np.array([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)])
CORNERS = np.array([(-1, -1), (-1, 1), (1, -1), (1, 1)])


@functools.lru_cache(maxsize=4)
def font(size: int):
    """DejaVu Sans as Matplotlib ships it (found without importing Matplotlib: ~0.2 s),
    else Pillow's own font."""
    import importlib.util

    from PIL import ImageFont

    spec = importlib.util.find_spec("matplotlib")
    for root in (spec and spec.submodule_search_locations) or []:
        try:
            return ImageFont.truetype(f"{root}/mpl-data/fonts/ttf/DejaVuSans.ttf", size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round tick values in ``[lo, hi]``, steps of 1, 2 or 5 times a power of ten."""
    span = hi - lo
    raw = span / most
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    return [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def tick_labels(ticks: list[float]) -> list[str]:
    """Enough significant digits to tell neighbouring ticks apart (1e8 + 1 from 1e8 + 2)."""
    if len(ticks) < 2:
        return [f"{t:.6g}" for t in ticks]
    step, top = ticks[1] - ticks[0], max(abs(t) for t in ticks)
    digits = max(6, math.floor(math.log10(top)) - math.floor(math.log10(step)) + 1)
    return [f"{t:.{digits}g}" for t in ticks]


def scatter_png(xy: np.ndarray, y: np.ndarray, names: list[str], title: str, path: Path):
    """Draw a class-coloured scatter with its ticks, legend and title straight into a
    Pillow image: ~10 ms where the same figure took Matplotlib ~65 ms, which every trial
    of a study paid (``python -m bench.pictures``). Points are blended at 60% opacity,
    class after class."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image, "RGBA")
    left, top, right, bottom = BOX
    xy = np.asarray(xy, dtype=np.float64)
    finite = np.isfinite(xy).all(1)  # a diverged model's codes: what is finite, if any
    xy, y = xy[finite], np.asarray(y)[finite]
    lo, hi = (xy.min(0), xy.max(0)) if len(xy) else (np.zeros(2), np.zeros(2))
    pad = np.where(hi > lo, (hi - lo) * 0.05, 1.0)
    lo, hi = lo - pad, hi + pad
    px = left + (xy[:, 0] - lo[0]) / (hi[0] - lo[0]) * (right - left)
    py = bottom - (xy[:, 1] - lo[1]) / (hi[1] - lo[1]) * (bottom - top)
    centres = np.stack([px, py], 1).round().astype(int)
    for c, colour in enumerate(TAB10):
        mine = centres[y == c][:, None, :]
        for shape, alpha in ((DOT, 153), (CORNERS, 64)):
            draw.point((mine + shape[None]).ravel().tolist(), fill=(*colour, alpha))
    small = font(10)
    for axis, (a, b) in enumerate(zip(lo, hi, strict=True)):
        ticks = nice_ticks(a, b)
        for t, label in zip(ticks, tick_labels(ticks), strict=True):
            if axis == 0:
                x = left + (t - a) / (b - a) * (right - left)
                draw.line([(x, bottom), (x, bottom + 4)], fill="black")
                draw.text((x, bottom + 6), label, fill="black", font=small, anchor="mt")
            else:
                yy = bottom - (t - a) / (b - a) * (bottom - top)
                draw.line([(left - 4, yy), (left, yy)], fill="black")
                draw.text((left - 6, yy), label, fill="black", font=small, anchor="rm")
    draw.rectangle(BOX, outline="black")
    for c, name in enumerate(names):
        cy = top + 8 + 16 * c
        draw.ellipse((right + 10, cy - 3, right + 16, cy + 3), fill=TAB10[c % 10])
        draw.text((right + 22, cy), name, fill="black", font=small, anchor="lm")
    draw.text(((left + right) / 2, top - 10), title, fill="black", font=font(12), anchor="ms")
    image.save(path, format="PNG", compress_level=3)
