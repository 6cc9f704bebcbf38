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


IWAE_SAMPLES = 100  # k of the importance-weighted bound in the report
IWAE_IMAGES = 1000  # test images it is estimated on (the first ones)


def iwae_nll(model, x: torch.Tensor, k: int, *, seed: int = 0, chunk: int = 100) -> torch.Tensor:
    """Per image, the negative importance-weighted bound on log p(x) with ``k`` samples
    (Burda et al. 2015): -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x), in nats,
    with the Bernoulli likelihood of a BCE-trained VAE (the one its ELBO uses). It is at most
    the negative ELBO and tends to -log p(x) as ``k`` grows; ``k = 1`` is the ELBO's sample."""
    import math

    import torch.nn.functional as F

    g = torch.Generator(device=x.device).manual_seed(seed)
    out = []
    model.eval()
    with torch.inference_mode():
        for xs in x.split(chunk):
            mu, logvar = (t.float() for t in model.encode_stats(xs))
            std = torch.exp(0.5 * logvar)
            eps = torch.randn((k, *mu.shape), generator=g, device=x.device)
            z = mu + eps * std  # [k, B, d]
            logits = model.decode_logits(z.flatten(0, 1)).float()
            target = xs.flatten(1).float().repeat(k, 1)
            log_px = (
                -F.binary_cross_entropy_with_logits(logits.flatten(1), target, reduction="none")
                .sum(1)
                .view(k, -1)
            )
            log_pz = (-0.5 * z.square() - 0.5 * math.log(2 * math.pi)).sum(-1)
            log_qz = (-0.5 * eps.square() - 0.5 * math.log(2 * math.pi) - std.log()).sum(-1)
            log_w = log_px + log_pz - log_qz
            out.append(-(torch.logsumexp(log_w, 0) - math.log(k)))
    return torch.cat(out)


def iwae_section(study, dataset, best, client, k: int = IWAE_SAMPLES) -> list[str]:
    """For a ``vae`` study: the negative ELBO of its model (the refit's when there is one,
    else the best trial's) on the first test images, beside the IWAE bound on them."""
    from models import evaluate, task_for
    from study.artifacts.encoder import Encoder
    from study.settings import REFIT_ATTR

    refit = study.user_attrs.get(REFIT_ATTR) or {}
    run_id = refit.get("run_id") or best.user_attrs.get("mlflow_run_id")
    if study.user_attrs.get("objective") != "vae" or client is None or not run_id:
        return []
    enc = Encoder.from_run(run_id, tracking_uri=client.tracking_uri)
    which = f"the refit of trial {refit['trial']}" if refit.get("run_id") else (
        f"trial {best.number}'s checkpoint")  # fmt: skip
    head = ["", "## Test log-likelihood: the ELBO and the IWAE bound", ""]
    if getattr(enc.spec.model, "recon_loss", "bce") != "bce":
        return head + [f"The model ({which}) was trained with MSE reconstruction: its loss is "
                       "not a likelihood, so no log-likelihood is estimated."]  # fmt: skip
    test = dataset.test.head(IWAE_IMAGES)
    device = torch.device("cpu")
    nelbo = evaluate(enc.model, task_for(enc.spec.model), test, device=device)["nelbo"]
    x = test.images.float().div(255)
    bound = float(iwae_nll(enc.model, x, k).mean())
    return head + [
        f"On the first {len(test)} test images, {which}: negative ELBO {nelbo:.2f} nats per "
        f"image; negative IWAE bound with k = {k} importance samples (Burda et al. "
        f"2015) {bound:.2f} nats, the closer estimate of -log p(x) (the bound tightens as k "
        "grows). Pixels are the data set's grey levels in [0, 1] under a Bernoulli likelihood, "
        "so these are not comparable with published figures on binarized MNIST (~86.8 nats)."
    ]


# Published test accuracies on Fashion-MNIST, as quoted from the benchmark table of the data
# set's repository (github.com/zalandoresearch/fashion-mnist, "Benchmark"); approximate.
CLASSIFIER_REFERENCES = (
    ("an MLP 256-128-64", "about 0.90"),
    ("small networks of two convolutions", "about 0.92-0.93"),
)


def classifier_section(study) -> list[str]:
    """For a ``classifier`` study on Fashion-MNIST: its refit's test accuracy beside the
    published figures."""
    from study.settings import REFIT_ATTR

    if study.user_attrs.get("dataset", "fashion-mnist") != "fashion-mnist":
        return []
    refit = study.user_attrs.get(REFIT_ATTR)
    ours = (
        f"This study's refit (trial {refit['trial']}'s configuration on {refit['images']} "
        f"images): test accuracy **{refit['test']['acc']:.4f}**."
        if refit and "acc" in refit.get("test", {})
        else "This study has no refit yet, so no test accuracy (the trials are scored on "
        "validation images only)."
    )
    quoted = "; ".join(f"{what}: {acc}" for what, acc in CLASSIFIER_REFERENCES)
    return [
        "",
        "## Against published figures",
        "",
        f"{ours} Published test accuracies on Fashion-MNIST (the benchmark table of "
        f"github.com/zalandoresearch/fashion-mnist, quoted, not re-run here): {quoted}.",
    ]
