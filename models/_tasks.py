"""Loss strategies: one small object per family, all driven by the same engine.

A task maps (model, images, labels) to the loss to minimise (a mean over the batch) and a
dict of per-batch *sums* (e.g. summed per-image loss, number correct). The engine adds the
sums up on the device and divides by the number of images once per epoch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._autoencoder import ConvAEConfig, MLPAEConfig
from ._classifier import ClassifierConfig
from ._config import IMAGE_PIXELS, ConfigError
from ._vae import VAEConfig


def pixel_loss(logits: torch.Tensor, x: torch.Tensor, recon_loss: str, out_act) -> torch.Tensor:
    """Per-pixel reconstruction loss, shape [B, pixels]."""
    if recon_loss == "bce":
        loss = F.binary_cross_entropy_with_logits(logits.float(), x, reduction="none")
    else:
        loss = F.mse_loss(out_act(logits.float()), x, reduction="none")
    return loss.flatten(1)


class ReconTask:
    """Autoencoder: mean per-pixel loss of the config's kind; ``mse`` is always reported."""

    metric = "mse"
    direction = "minimize"
    names = ("loss", "mse")
    aux_scale = 1.0  # already per pixel

    def __init__(self, recon_loss: str):
        self.recon_loss = recon_loss

    def terms(self, model, x):
        """(latent, per-image loss, per-batch sums)."""
        z = model.encode(x)
        logits = model.decode_logits(z)
        per_img = pixel_loss(logits, x, self.recon_loss, model.output_activation).mean(1)
        if self.recon_loss == "mse":
            mse = per_img
        else:
            mse = (model.output_activation(logits.float()) - x).square().flatten(1).mean(1)
        return z, per_img, {"loss": per_img.sum(), "mse": mse.sum()}

    def __call__(self, model, x, y):
        _, per_img, sums = self.terms(model, x)
        return per_img.mean(), sums


EVAL_SEED = 0


class VAETask:
    """VAE: per image, reconstruction summed over pixels + beta * KL.

    ``nelbo`` (reconstruction + KL, i.e. beta = 1) is the comparable metric across betas. In
    evaluation too the reconstruction term is taken at a sample z ~ q(z|x), as the ELBO is
    defined (decoding the mean instead underestimates it by ~8 nats per MNIST image); the
    noise comes from a generator of its own, reset by ``prepare_eval``, so an evaluation is
    repeatable and leaves the training random stream untouched.
    """

    metric = "nelbo"
    direction = "minimize"
    names = ("loss", "recon", "kl", "nelbo")
    aux_scale = 1.0 / IMAGE_PIXELS  # bring a per-image sum to the per-pixel scale

    def __init__(self, recon_loss: str, beta: float):
        self.recon_loss = recon_loss
        self.beta = beta
        self.noise: torch.Generator | None = None

    def prepare_eval(self, device: torch.device) -> None:
        self.noise = torch.Generator(device=device).manual_seed(EVAL_SEED)

    def sample(self, model, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        if model.training:
            return model.reparameterise(mu, logvar)
        if self.noise is None or self.noise.device.type != mu.device.type:
            self.prepare_eval(mu.device)
        eps = torch.randn(mu.shape, generator=self.noise, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar)

    def terms(self, model, x):
        mu, logvar = model.encode_stats(x)
        mu, logvar = mu.float(), logvar.float()
        z = self.sample(model, mu, logvar)
        logits = model.decode_logits(z)
        recon = pixel_loss(logits, x, self.recon_loss, model.output_activation).sum(1)
        kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1)
        per_img = recon + self.beta * kl
        sums = {
            "loss": per_img.sum(),
            "recon": recon.sum(),
            "kl": kl.sum(),
            "nelbo": (recon + kl).sum(),
        }
        return mu, per_img, sums

    def __call__(self, model, x, y):
        # Minimised per pixel, as the autoencoders and the classifier's losses are: one
        # learning rate means the same step in every family (the per-image sum's gradients
        # are 784x larger, and SGD diverged on them at learning rates that suit the others).
        # Adam's steps do not depend on the scale; the reported metrics stay per image.
        _, per_img, sums = self.terms(model, x)
        return per_img.mean() * self.aux_scale, sums


class ClassifierTask:
    """Cross-entropy on the latent, plus ``recon_weight`` * reconstruction when joint."""

    metric = "acc"
    direction = "maximize"

    def __init__(self, aux=None, recon_weight: float = 0.0):
        self.aux = aux
        self.recon_weight = recon_weight
        self.names = ("loss", "ce", "acc") + (("recon",) if aux is not None else ())

    def prepare_eval(self, device: torch.device) -> None:
        prepare_eval(self.aux, device)

    def __call__(self, model, x, y):
        if self.aux is None:
            z = model.encode(x)
        else:
            z, aux_img, _ = self.aux.terms(model.autoencoder, x)
        logits = model.head(z).float()
        ce = F.cross_entropy(logits, y, reduction="none")
        acc = (logits.argmax(1) == y).sum().float()
        if self.aux is None:
            return ce.mean(), {"loss": ce.sum(), "ce": ce.sum(), "acc": acc}
        recon = aux_img * self.aux.aux_scale
        per_img = ce + self.recon_weight * recon
        return per_img.mean(), {
            "loss": per_img.sum(),
            "ce": ce.sum(),
            "acc": acc,
            "recon": recon.sum(),
        }


def prepare_eval(task, device: torch.device) -> None:
    """Reset a task's evaluation noise (VAE tasks sample z in evaluation too)."""
    prepare = getattr(task, "prepare_eval", None)
    if prepare is not None:
        prepare(device)


def recon_task(config):
    """The reconstruction task of an autoencoder or VAE config."""
    if isinstance(config, (MLPAEConfig, ConvAEConfig)):
        return ReconTask(config.recon_loss)
    if isinstance(config, VAEConfig):
        return VAETask(config.recon_loss, config.beta)
    raise ConfigError(f"no reconstruction task for {type(config).__name__}")


def task_for(config):
    """The task that trains and scores ``config`` in its main phase."""
    if isinstance(config, ClassifierConfig):
        if config.freeze == "joint":
            return ClassifierTask(recon_task(config.encoder), config.recon_weight)
        return ClassifierTask()
    return recon_task(config)
