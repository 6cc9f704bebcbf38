"""Latent classifier (S0): an autoencoder's encoder plus a small fully connected head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ._autoencoder import ConvAEConfig, MLPAEConfig, build_conv_ae, build_mlp_ae
from ._config import (
    ACTIVATIONS,
    ConfigBase,
    ConfigError,
    as_int_tuple,
    check_choice,
    check_float,
    check_int,
    make_activation,
)
from ._vae import VAEConfig, build_vae

FREEZE_CHOICES = ("frozen", "finetune", "joint", "scratch")
NUM_CLASSES = 10
ENCODER_CONFIGS = {c.family: c for c in (MLPAEConfig, ConvAEConfig, VAEConfig)}


def encoder_config_from_dict(data: Any):
    if isinstance(data, ConfigBase):
        return data
    if not isinstance(data, dict) or data.get("family") not in ENCODER_CONFIGS:
        raise ConfigError(
            "encoder must be a dict with 'family' one of "
            f"{sorted(ENCODER_CONFIGS)}, but got {data!r}"
        )
    return ENCODER_CONFIGS[data["family"]].from_dict(data)


@dataclass(frozen=True)
class ClassifierConfig(ConfigBase):
    """A classifier on the latent vector of an autoencoder or VAE.

    Attributes:
        encoder: the autoencoder whose encoder feeds the head (an ``MLPAEConfig``,
            ``ConvAEConfig`` or ``VAEConfig``, or its dict).
        head: hidden widths of the head, 0 to 3 layers (S0 uses two).
        head_activation: activation between head layers.
        dropout: dropout after every hidden head layer.
        freeze: ``frozen`` (pre-train the autoencoder on reconstruction, then train only the
            head: no gradient reaches the encoder), ``finetune`` (pre-train, then train end to
            end), ``joint`` (cross-entropy + ``recon_weight`` * reconstruction from the start),
            ``scratch`` (cross-entropy only, no pre-training).
        pretrain_epochs: reconstruction epochs before the classifier phase (frozen/finetune).
        recon_weight: weight of the reconstruction term (joint).
    """

    family = "classifier"
    encoder: Any = MLPAEConfig()
    head: tuple[int, ...] = (64, 32)
    head_activation: str = "relu"
    dropout: float = 0.0
    freeze: str = "frozen"
    pretrain_epochs: int = 2
    recon_weight: float = 1.0

    def __post_init__(self) -> None:
        self._set("encoder", encoder_config_from_dict(self.encoder))
        self._set("head", as_int_tuple("head", self.head))
        if len(self.head) > 3:
            raise ConfigError(f"head must have 0 to 3 hidden layers, but got {list(self.head)}")
        check_choice("head_activation", self.head_activation, ACTIVATIONS)
        check_float("dropout", self.dropout, 0.0, 0.95)
        check_choice("freeze", self.freeze, FREEZE_CHOICES)
        check_int("pretrain_epochs", self.pretrain_epochs, 0)
        if self.freeze in ("frozen", "finetune") and self.pretrain_epochs < 1:
            raise ConfigError(
                f"freeze={self.freeze!r} pre-trains the encoder, so pretrain_epochs must be "
                f">= 1, but got {self.pretrain_epochs}"
            )
        check_float("recon_weight", self.recon_weight, 0.0)

    @property
    def latent_dim(self) -> int:
        return self.encoder.latent_dim

    @property
    def pretrains(self) -> bool:
        return self.freeze in ("frozen", "finetune")


def build_encoder_model(config) -> nn.Module:
    if isinstance(config, MLPAEConfig):
        return build_mlp_ae(config)
    if isinstance(config, ConvAEConfig):
        return build_conv_ae(config)
    if isinstance(config, VAEConfig):
        return build_vae(config)
    raise ConfigError(f"not an encoder config: {config!r}")


class LatentClassifier(nn.Module):
    """``forward(x) -> logits`` through ``autoencoder.encode`` and the head.

    With ``freeze='frozen'`` call ``freeze_encoder()`` after pre-training: the encoder's
    parameters stop requiring gradients and it stays in eval mode (BatchNorm statistics
    stop moving too), so its weights are bit-identical after any number of head steps.
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        self.autoencoder = build_encoder_model(config.encoder)
        self.latent_dim = config.latent_dim
        sizes = [config.latent_dim, *config.head, NUM_CLASSES]
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(make_activation(config.head_activation))
                if config.dropout > 0:
                    layers.append(nn.Dropout(config.dropout))
        self.head = nn.Sequential(*layers)
        self.encoder_frozen = False

    def encoder_parameters(self):
        return self.autoencoder.parameters()

    def freeze_encoder(self) -> None:
        self.encoder_frozen = True
        for p in self.autoencoder.parameters():
            p.requires_grad_(False)
        self.autoencoder.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.encoder_frozen:
            self.autoencoder.eval()
        return self

    @property
    def code_layer(self) -> nn.Module:
        """The layer whose output ``encode`` returns."""
        return self.autoencoder.code_layer

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x))


def build_classifier(config: ClassifierConfig) -> LatentClassifier:
    return LatentClassifier(config)
