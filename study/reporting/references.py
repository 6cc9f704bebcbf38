"""Known references beside a study's numbers.

For an ``ae`` study: PCA's reconstruction MSE at each latent size the study tried, fitted by
the harness on the same training images its trials saw and scored on the same validation
images. PCA is the best linear code of that size (the Eckart-Young theorem), so the ratio
says what the non-linear autoencoder buys over it.
"""

from __future__ import annotations

import torch

from study.settings import DATA_ATTR

MAX_PIXELS = 28 * 28


def as_rows(images: torch.Tensor) -> torch.Tensor:
    """uint8 images [N, 1, 28, 28] (or floats in [0, 1]) as float64 rows in [0, 1]."""
    x = images.flatten(1).double()
    return x / 255 if images.dtype == torch.uint8 else x


def pca_mse(train: torch.Tensor, val: torch.Tensor, ks: list[int]) -> dict[int, float]:
    """Mean squared error per pixel of ``val`` rebuilt from its projection on the top ``k``
    principal components of ``train`` (rows of pixels), for each ``k`` in ``ks``."""
    mean = train.mean(0)
    centred = train - mean
    _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    v = val - mean
    out = {}
    for k in ks:
        basis = vectors[:, vectors.shape[1] - min(k, vectors.shape[1]) :]
        out[k] = float((v - v @ basis @ basis.T).square().mean())
    return out


def best_per_latent(study) -> dict[int, tuple[int, float]]:
    """The best completed trial's (number, value) at each latent size."""
    from study.search.results import countable

    out: dict[int, tuple[int, float]] = {}
    for t in study.get_trials(deepcopy=False):
        latent = t.user_attrs.get("cost", {}).get("latent")
        if t.state.name != "COMPLETE" or not countable(t) or latent is None:
            continue
        if latent not in out or t.values[0] < out[latent][1]:
            out[latent] = (t.number, t.values[0])
    return out


def pca_section(study, dataset) -> list[str]:
    """The report's table of each latent size's best AE against PCA at that size."""
    from study.reporting.tables import md_table

    best = best_per_latent(study)
    if study.user_attrs.get("objective") != "ae" or not best:
        return []
    seen = study.user_attrs.get(DATA_ATTR, {})
    train = as_rows(dataset.train.head(seen.get("train") or None).images)
    val = as_rows(dataset.val.head(seen.get("val") or None).images)
    pca = pca_mse(train, val, sorted(best))
    rows = [
        {"latent": k, "trial": n, "ae": v, "pca": pca[k], "ratio": v / pca[k] if pca[k] else None}
        for k, (n, v) in sorted(best.items())
    ]
    columns = [("latent", "latent size"), ("trial", "best trial"), ("ae", "its val MSE"),
               ("pca", "PCA's val MSE"), ("ratio", "AE / PCA")]  # fmt: skip
    return [
        "",
        "## Against PCA: what the non-linear code buys",
        "",
        f"PCA fitted by the harness on the same {len(train)} training images, scored on the "
        f"same {len(val)} validation images, with as many components as the latent size "
        f"(at most {MAX_PIXELS}, where it is exact). PCA is the best linear code of each size; "
        "a ratio below 1 is what the autoencoder's non-linearity buys.",
        "",
        md_table(rows, columns),
    ]
