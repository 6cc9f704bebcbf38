"""Variational autoencoder (S3) with an MLP or conv encoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ._autoencoder import (
    DOWNSAMPLING,
    ConvDecoder,
    ConvEncoder,
    check_output,
    conv_sizes,
    mlp,
)
from ._config import (
    ACTIVATIONS,
    IMAGE_PIXELS,
    IMAGE_SHAPE,
    ConfigBase,
    ConfigError,
    as_int_tuple,
    check_choice,
    check_float,
    check_int,
    make_activation,
)

ENCODERS = ("mlp", "conv")


@dataclass(frozen=True)
class VAEConfig(ConfigBase):
    """VAE: encoder -> (mean, log-variance), reparameterised sample, decoder.

    Loss per image: reconstruction summed over pixels (``bce`` or ``mse``) + ``beta`` * KL.

    Attributes:
        encoder: ``mlp`` or ``conv``.
        hidden: MLP hidden widths (``encoder='mlp'``); the decoder mirrors them.
        channels, downsample, batch_norm, kernel_size: conv stages (``encoder='conv'``).
        latent_dim: size of the latent vector.
        activation: hidden activation (S3 uses ``leaky_relu``, slope 0.2).
        beta: weight of the KL term (1 is the plain ELBO).
        recon_loss: ``bce`` (Bernoulli likelihood) or ``mse``.
    """

    family = "vae"
    encoder: str = "mlp"
    hidden: tuple[int, ...] = (400, 400)
    channels: tuple[int, ...] = (32, 64)
    downsample: str = "stride"
    batch_norm: bool = False
    kernel_size: int = 3
    latent_dim: int = 20
    activation: str = "leaky_relu"
    beta: float = 1.0
    recon_loss: str = "bce"
    output_activation: str = "sigmoid"

    def __post_init__(self) -> None:
        check_choice("encoder", self.encoder, ENCODERS)
        self._set("hidden", as_int_tuple("hidden", self.hidden))
        self._set("channels", as_int_tuple("channels", self.channels))
        if self.encoder == "conv" and not 1 <= len(self.channels) <= 4:
            raise ConfigError(f"channels must have 1 to 4 stages, but got {list(self.channels)}")
        check_choice("downsample", self.downsample, DOWNSAMPLING)
        check_choice("batch_norm", self.batch_norm, (True, False))
        check_int("kernel_size", self.kernel_size, 1, 7)
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd, but got {self.kernel_size}")
        check_int("latent_dim", self.latent_dim, 2)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_float("beta", self.beta, 0.0, low_open=True)
        self._set("beta", float(self.beta))
        check_output(self.recon_loss, self.output_activation)


class VAE(nn.Module):
    """``encode`` gives the mean; ``encode_stats`` gives (mean, log-variance).

    ``forward(x)`` returns (decoder logits, mean, log-variance) with a reparameterised
    sample in training mode and the mean in eval mode.
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        c = self.config = config
        self.latent_dim = c.latent_dim
        if c.encoder == "mlp":
            widths = [IMAGE_PIXELS, *c.hidden]
            self.features = nn.Sequential(
                nn.Flatten(), mlp(widths, c.activation, last_activation=True)
            )
            feat = widths[-1]
            self.decoder = nn.Sequential(
                mlp([c.latent_dim, *widths[::-1]], c.activation), nn.Unflatten(1, IMAGE_SHAPE)
            )
        else:
            side = conv_sizes(len(c.channels))[-1]
            shape = (c.channels[-1], side, side)
            feat = shape[0] * side * side
            self.features = nn.Sequential(
                ConvEncoder(c.channels, c.downsample, c.batch_norm, c.kernel_size, c.activation),
                nn.Flatten(),
            )
            self.decoder = nn.Sequential(
                nn.Linear(c.latent_dim, feat),
                make_activation(c.activation),
                nn.Unflatten(1, shape),
                ConvDecoder(c.channels, c.batch_norm, c.kernel_size, c.activation),
            )
        self.mean = nn.Linear(feat, c.latent_dim)
        self.logvar = nn.Linear(feat, c.latent_dim)
        self.output_activation = make_activation(c.output_activation)

    def encode_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mean(h), self.logvar(h)

    def encode(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        mu, logvar = self.encode_stats(x)
        return self.reparameterise(mu, logvar) if sample else mu

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.output_activation(self.decode_logits(z))

    def forward(self, x: torch.Tensor):
        mu, logvar = self.encode_stats(x)
        z = self.reparameterise(mu, logvar) if self.training else mu
        return self.decode_logits(z), mu, logvar


def build_vae(config: VAEConfig) -> VAE:
    return VAE(config)
