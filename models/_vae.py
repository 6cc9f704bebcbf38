"""Variational autoencoder (S3): an MLP or conv autoencoder whose latent layer gives a mean
and a log-variance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ._autoencoder import ConvAEConfig, ConvDecoder, ConvEncoder, MLPAEConfig, conv_sizes, mlp
from ._config import (
    IMAGE_PIXELS,
    IMAGE_SHAPE,
    ConfigBase,
    ConfigError,
    check_float,
    make_activation,
)

AUTOENCODERS = {c.family: c for c in (MLPAEConfig, ConvAEConfig)}
# Field names of the flat VAE config that studies made before the composed one stored
# (checkpoints, trial specs); ``VAEConfig.from_dict`` still reads them.
LEGACY_FIELDS = {
    "encoder", "hidden", "channels", "downsample", "batch_norm", "kernel_size",
    "latent_dim", "activation", "recon_loss", "output_activation",
}  # fmt: skip


def autoencoder_from(value: Any) -> MLPAEConfig | ConvAEConfig:
    if isinstance(value, (MLPAEConfig, ConvAEConfig)):
        return value
    if isinstance(value, dict) and value.get("family") in AUTOENCODERS:
        return AUTOENCODERS[value["family"]].from_dict(value)
    raise ConfigError(
        f"a VAE's autoencoder must be an MLPAEConfig or ConvAEConfig (or its dict with family "
        f"one of {sorted(AUTOENCODERS)}), but got {value!r}"
    )


S3_AUTOENCODER = MLPAEConfig(
    hidden=(400, 400), latent_dim=20, activation="leaky_relu", recon_loss="bce"
)


@dataclass(frozen=True)
class VAEConfig(ConfigBase):
    """VAE: an autoencoder config whose latent layer is split into mean and log-variance.

    Loss per image: reconstruction summed over pixels (the autoencoder's ``recon_loss``,
    ``bce`` or ``mse``) + ``beta`` * KL.

    Attributes:
        autoencoder: the network, an ``MLPAEConfig`` (784 -> hidden -> latent, mirrored) or a
            ``ConvAEConfig`` whose ``fc_latent`` is the latent size; its ``latent_dim``,
            ``activation``, ``recon_loss`` and ``output_activation`` are the VAE's.
        beta: weight of the KL term (1 is the plain ELBO).
    """

    family = "vae"
    autoencoder: Any = S3_AUTOENCODER
    beta: float = 1.0

    def __post_init__(self) -> None:
        self._set("autoencoder", autoencoder_from(self.autoencoder))
        if isinstance(self.autoencoder, ConvAEConfig) and self.autoencoder.fc_latent is None:
            raise ConfigError(
                "a conv VAE's latent is its fully connected layer: set the autoencoder's "
                "fc_latent to the latent size, but got fc_latent=None"
            )
        check_float("beta", self.beta, 0.0, low_open=True)
        self._set("beta", float(self.beta))

    @property
    def latent_dim(self) -> int:
        return self.autoencoder.latent_dim

    @property
    def encoder(self) -> str:
        """``mlp`` or ``conv``."""
        return "conv" if isinstance(self.autoencoder, ConvAEConfig) else "mlp"

    @property
    def recon_loss(self) -> str:
        return self.autoencoder.recon_loss

    @classmethod
    def mlp(cls, hidden=(400, 400), latent_dim: int = 20, *, beta: float = 1.0, **ae) -> VAEConfig:
        """An MLP VAE; ``ae`` are further ``MLPAEConfig`` fields (S3's LeakyReLU and BCE
        unless given)."""
        ae = {"activation": "leaky_relu", "recon_loss": "bce", **ae}
        return cls(MLPAEConfig(hidden=hidden, latent_dim=latent_dim, **ae), beta=beta)

    @classmethod
    def conv(cls, channels=(32, 64), latent_dim: int = 20, *, beta: float = 1.0, **ae):
        """A conv VAE; ``ae`` are further ``ConvAEConfig`` fields (no BatchNorm, LeakyReLU
        and BCE unless given)."""
        ae = {"activation": "leaky_relu", "recon_loss": "bce", "batch_norm": False, **ae}
        return cls(ConvAEConfig(channels=channels, fc_latent=latent_dim, **ae), beta=beta)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VAEConfig:
        if isinstance(data, dict) and isinstance(data.get("encoder"), str):
            data = legacy_to_composed(data)
        return super().from_dict(data)


def legacy_to_composed(data: dict[str, Any]) -> dict[str, Any]:
    """A flat VAE dict (``encoder: mlp|conv``, ``hidden``, ``channels``...) as a composed one."""
    data = dict(data)
    unknown = sorted(set(data) - LEGACY_FIELDS - {"family", "beta"})
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} for a 'vae' config")
    shared = {k: data[k] for k in ("activation", "recon_loss", "output_activation") if k in data}
    shared.setdefault("activation", "leaky_relu")
    shared.setdefault("recon_loss", "bce")
    latent = data.get("latent_dim", 20)
    if data["encoder"] == "conv":
        fields = ("channels", "downsample", "batch_norm", "kernel_size")
        ae = {"family": "conv_ae", **{k: data[k] for k in fields if k in data}}
        ae.setdefault("channels", (32, 64))
        ae.setdefault("batch_norm", False)
        ae["fc_latent"] = latent
    elif data["encoder"] == "mlp":
        ae = {"family": "mlp_ae", "hidden": data.get("hidden", (400, 400)), "latent_dim": latent}
    else:
        raise ConfigError(f"encoder must be one of ('mlp', 'conv'), but got {data['encoder']!r}")
    return {"family": "vae", "autoencoder": {**ae, **shared}, "beta": data.get("beta", 1.0)}


class VAE(nn.Module):
    """``encode`` gives the mean; ``encode_stats`` gives (mean, log-variance).

    ``forward(x)`` returns (decoder logits, mean, log-variance) with a reparameterised
    sample in training mode and the mean in eval mode. The layers are the autoencoder's,
    with its last encoder layer doubled into ``mean`` and ``logvar``.
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        ae = config.autoencoder
        self.latent_dim = config.latent_dim
        if isinstance(ae, MLPAEConfig):
            widths = [IMAGE_PIXELS, *ae.hidden]
            self.features = nn.Sequential(
                nn.Flatten(), mlp(widths, ae.activation, last_activation=True)
            )
            feat = widths[-1]
            self.decoder = nn.Sequential(
                mlp([ae.latent_dim, *widths[::-1]], ae.activation), nn.Unflatten(1, IMAGE_SHAPE)
            )
        else:
            self.features, self.decoder, feat = conv_vae_layers(ae)
        self.mean = nn.Linear(feat, ae.latent_dim)
        self.logvar = nn.Linear(feat, ae.latent_dim)
        self.output_activation = make_activation(ae.output_activation)

    @property
    def code_layer(self) -> nn.Module:
        """The layer whose output ``encode`` returns (the mean)."""
        return self.mean

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


def conv_vae_layers(ae: ConvAEConfig) -> tuple[nn.Module, nn.Module, int]:
    """(features, decoder, feature width) of a conv VAE: the conv AE without its FC layer."""
    side = conv_sizes(len(ae.channels))[-1]
    features: list[nn.Module] = [
        ConvEncoder(ae.channels, ae.downsample, ae.batch_norm, ae.kernel_size, ae.activation)
    ]
    shape = (ae.channels[-1], side, side)
    code: list[nn.Module] = []
    if ae.code_channels is not None:
        features += [nn.Conv2d(ae.channels[-1], ae.code_channels, side)]
        features += [make_activation(ae.activation)]
        code = [
            nn.ConvTranspose2d(ae.code_channels, ae.channels[-1], side),
            make_activation(ae.activation),
        ]
        shape = (ae.code_channels, 1, 1)
    feat = shape[0] * shape[1] * shape[2]
    decoder = nn.Sequential(
        nn.Linear(ae.latent_dim, feat),
        make_activation(ae.activation),
        nn.Unflatten(1, shape),
        *code,
        ConvDecoder(ae.channels, ae.batch_norm, ae.kernel_size, ae.activation),
    )
    return nn.Sequential(*features, nn.Flatten()), decoder, feat


def build_vae(config: VAEConfig) -> VAE:
    return VAE(config)
