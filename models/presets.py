"""The five seed systems of SEEDS.md as named, ready-to-train configs.

S1 and S4 each compare two variants, so they ship as two presets each.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._autoencoder import ConvAEConfig, MLPAEConfig
from ._classifier import ClassifierConfig
from ._config import ConfigBase
from ._engine import TrainConfig
from ._vae import VAEConfig


@dataclass(frozen=True)
class Preset:
    """A seed system: its model config, training settings and the write-up's data set."""

    name: str
    seed: str
    description: str
    dataset: str
    model: ConfigBase
    train: TrainConfig


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "s0-latent-classifier",
            "S0",
            "MLP AE whose (detached) latent feeds a classifier with two hidden layers",
            "fashion-mnist",
            ClassifierConfig(
                encoder=MLPAEConfig(hidden=(256, 128), latent_dim=32),
                head=(64, 32),
                freeze="frozen",
                pretrain_epochs=5,
            ),
            TrainConfig(lr=1e-3, batch_size=128, epochs=10),
        ),
        Preset(
            "s1a-linear-ae",
            "S1",
            "one-layer 'stacked' linear AE 784-20-784, MSE, Adam",
            "mnist",
            MLPAEConfig(
                hidden=(),
                latent_dim=20,
                activation="identity",
                output_activation="identity",
                recon_loss="mse",
            ),
            TrainConfig(lr=1e-3, batch_size=128, epochs=10),
        ),
        Preset(
            "s1b-conv-ae",
            "S1",
            "conv AE with BatchNorm and max-pooling, 28x28 -> 7x7x256, ConvTranspose2d decoder",
            "mnist",
            ConvAEConfig(channels=(128, 256), downsample="maxpool", batch_norm=True),
            TrainConfig(lr=1e-3, batch_size=128, epochs=10),
        ),
        Preset(
            "s2-mlp-ae-3d",
            "S2",
            "MLP AE 784-128-64-12-3 and mirror, 3-d latent for a scatter of the codes",
            "fashion-mnist",
            MLPAEConfig(hidden=(128, 64, 12), latent_dim=3, activation="relu"),
            TrainConfig(lr=1e-3, batch_size=128, epochs=10),
        ),
        Preset(
            "s3-mlp-vae",
            "S3",
            "MLP VAE 784-400-400, latent 200, LeakyReLU(0.2), summed BCE + KL",
            "mnist",
            VAEConfig(
                MLPAEConfig(
                    hidden=(400, 400), latent_dim=200, activation="leaky_relu", recon_loss="bce"
                ),
                beta=1.0,
            ),
            TrainConfig(lr=1e-3, batch_size=128, epochs=10),
        ),
        Preset(
            "s4-conv-ae-fc",
            "S4",
            "conv AE 28x28 -> 7x7x32 -> 1x1x64 with an FC bottleneck 64 -> 10 -> 64",
            "fashion-mnist",
            ConvAEConfig(channels=(16, 32), code_channels=64, fc_latent=10),
            TrainConfig(lr=1e-3, batch_size=128, epochs=10),
        ),
        Preset(
            "s4-conv-ae-nofc",
            "S4",
            "the same conv AE without the FC bottleneck (the 1x1x64 code is the latent)",
            "fashion-mnist",
            ConvAEConfig(channels=(16, 32), code_channels=64, fc_latent=None),
            TrainConfig(lr=1e-3, batch_size=128, epochs=10),
        ),
    )
}
