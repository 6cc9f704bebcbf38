"""MLP and convolutional autoencoders (S1, S2, S4) and the conv blocks the VAE reuses."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ._config import (
    ACTIVATIONS,
    IMAGE_PIXELS,
    IMAGE_SHAPE,
    OUTPUT_ACTIVATIONS,
    RECON_LOSSES,
    ConfigBase,
    ConfigError,
    as_int_tuple,
    check_choice,
    check_int,
    make_activation,
)

DOWNSAMPLING = ("stride", "maxpool")


def check_output(recon_loss: str, output_activation: str) -> None:
    check_choice("recon_loss", recon_loss, RECON_LOSSES)
    check_choice("output_activation", output_activation, OUTPUT_ACTIVATIONS)
    if recon_loss == "bce" and output_activation != "sigmoid":
        raise ConfigError(
            "recon_loss='bce' needs output_activation='sigmoid', "
            f"but got output_activation={output_activation!r}"
        )


@dataclass(frozen=True)
class MLPAEConfig(ConfigBase):
    """Fully connected autoencoder 784 -> hidden... -> latent -> mirror -> 784.

    Attributes:
        hidden: widths of the encoder's hidden layers; the decoder mirrors them. Empty gives
            the one-layer AE 784-latent-784 (S1a).
        latent_dim: size of the latent vector (2 and up).
        activation: activation after every hidden layer (not after the latent layer).
        output_activation: ``sigmoid`` (pixels in [0, 1]) or ``identity``.
        recon_loss: ``mse`` or ``bce`` (mean per pixel) used for training.
    """

    family = "mlp_ae"
    hidden: tuple[int, ...] = (128, 64)
    latent_dim: int = 16
    activation: str = "relu"
    output_activation: str = "sigmoid"
    recon_loss: str = "mse"

    def __post_init__(self) -> None:
        self._set("hidden", as_int_tuple("hidden", self.hidden))
        check_int("latent_dim", self.latent_dim, 2)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_output(self.recon_loss, self.output_activation)


@dataclass(frozen=True)
class ConvAEConfig(ConfigBase):
    """Convolutional autoencoder with a transposed-conv decoder back to 28x28.

    Every stage halves the spatial size (28 -> 14 -> 7 -> 4), by a stride-2 conv or by a
    conv followed by 2x2 max-pooling. Optionally a conv whose kernel covers the whole
    feature map turns it into a 1x1 code (S4's 7x7x32 -> 1x1x64), and optionally a fully
    connected bottleneck maps the flattened code to a small latent vector (S4's 64 -> 10).

    Attributes:
        channels: output channels of each stage.
        downsample: ``stride`` or ``maxpool``.
        batch_norm: BatchNorm after every conv except the decoder's last.
        kernel_size: odd kernel size of the stage convs.
        code_channels: if set, channels of the 1x1 code after the stages.
        fc_latent: if set, size of the FC bottleneck's latent vector; otherwise the
            flattened code is the latent.
        activation, output_activation, recon_loss: as in ``MLPAEConfig``.
    """

    family = "conv_ae"
    channels: tuple[int, ...] = (16, 32)
    downsample: str = "stride"
    batch_norm: bool = True
    kernel_size: int = 3
    code_channels: int | None = None
    fc_latent: int | None = None
    activation: str = "relu"
    output_activation: str = "sigmoid"
    recon_loss: str = "mse"

    def __post_init__(self) -> None:
        self._set("channels", as_int_tuple("channels", self.channels))
        if not 1 <= len(self.channels) <= 4:
            raise ConfigError(f"channels must have 1 to 4 stages, but got {list(self.channels)}")
        check_choice("downsample", self.downsample, DOWNSAMPLING)
        check_choice("batch_norm", self.batch_norm, (True, False))
        check_int("kernel_size", self.kernel_size, 1, 7)
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd, but got {self.kernel_size}")
        if self.code_channels is not None:
            check_int("code_channels", self.code_channels, 1)
        if self.fc_latent is not None:
            check_int("fc_latent", self.fc_latent, 2)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_output(self.recon_loss, self.output_activation)

    @property
    def latent_dim(self) -> int:
        if self.fc_latent is not None:
            return self.fc_latent
        if self.code_channels is not None:
            return self.code_channels
        side = conv_sizes(len(self.channels))[-1]
        return self.channels[-1] * side * side


def conv_sizes(stages: int) -> list[int]:
    """Spatial side after each stage, starting with the input's 28."""
    sizes = [IMAGE_SHAPE[1]]
    for _ in range(stages):
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


class ConvEncoder(nn.Sequential):
    """The downsampling stages: 1x28x28 -> channels[-1] x s x s."""

    def __init__(self, channels, downsample, batch_norm, kernel_size, activation):
        layers: list[nn.Module] = []
        pad = kernel_size // 2
        c_in = IMAGE_SHAPE[0]
        for c in channels:
            stride = 2 if downsample == "stride" else 1
            layers.append(
                nn.Conv2d(c_in, c, kernel_size, stride=stride, padding=pad, bias=not batch_norm)
            )
            if batch_norm:
                layers.append(nn.BatchNorm2d(c))
            layers.append(make_activation(activation))
            if downsample == "maxpool":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            c_in = c
        super().__init__(*layers)


class ConvDecoder(nn.Sequential):
    """Transposed convs that undo ``ConvEncoder``: channels[-1] x s x s -> 1x28x28 logits."""

    def __init__(self, channels, batch_norm, kernel_size, activation):
        layers: list[nn.Module] = []
        pad = kernel_size // 2
        sizes = conv_sizes(len(channels))
        outs = list(reversed(channels[:-1])) + [IMAGE_SHAPE[0]]
        c_in = channels[-1]
        for i, c in enumerate(outs):
            size_in, size_out = sizes[-1 - i], sizes[-2 - i]
            # output_padding picks the exact target size (7 -> 14 needs 1, 4 -> 7 needs 0).
            natural = (size_in - 1) * 2 - 2 * pad + kernel_size
            last = i == len(outs) - 1
            layers.append(
                nn.ConvTranspose2d(
                    c_in,
                    c,
                    kernel_size,
                    stride=2,
                    padding=pad,
                    output_padding=size_out - natural,
                    bias=last or not batch_norm,
                )
            )
            if not last:
                if batch_norm:
                    layers.append(nn.BatchNorm2d(c))
                layers.append(make_activation(activation))
            c_in = c
        super().__init__(*layers)


def mlp(sizes: list[int], activation: str, last_activation: bool = False) -> nn.Sequential:
    """Linear layers between consecutive ``sizes`` with ``activation`` between them."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_activation:
            layers.append(make_activation(activation))
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """Common interface: ``encode(x) -> z``, ``decode(z) -> images``, ``forward(x) -> logits``.

    ``forward`` returns the decoder's raw output (before the output activation) so that BCE
    can use the numerically stable, autocast-safe ``binary_cross_entropy_with_logits``.
    """

    def __init__(self, config, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = config.latent_dim
        self.output_activation = make_activation(config.output_activation)

    @property
    def code_layer(self) -> nn.Module:
        """The layer whose output ``encode`` returns."""
        return self.encoder

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.output_activation(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_logits(self.encode(x))


def build_mlp_ae(config: MLPAEConfig) -> Autoencoder:
    widths = [IMAGE_PIXELS, *config.hidden, config.latent_dim]
    encoder = nn.Sequential(nn.Flatten(), mlp(widths, config.activation))
    decoder = nn.Sequential(mlp(widths[::-1], config.activation), nn.Unflatten(1, IMAGE_SHAPE))
    return Autoencoder(config, encoder, decoder)


def build_conv_ae(config: ConvAEConfig) -> Autoencoder:
    c = config
    side = conv_sizes(len(c.channels))[-1]
    enc: list[nn.Module] = [
        ConvEncoder(c.channels, c.downsample, c.batch_norm, c.kernel_size, c.activation)
    ]
    dec: list[nn.Module] = []
    feat_shape = (c.channels[-1], side, side)
    if c.code_channels is not None:
        enc += [nn.Conv2d(c.channels[-1], c.code_channels, side), make_activation(c.activation)]
        dec += [
            nn.ConvTranspose2d(c.code_channels, c.channels[-1], side),
            make_activation(c.activation),
        ]
        feat_shape = (c.code_channels, 1, 1)
    flat = feat_shape[0] * feat_shape[1] * feat_shape[2]
    enc.append(nn.Flatten())
    if c.fc_latent is not None:
        enc.append(nn.Linear(flat, c.fc_latent))
        fc_dec: list[nn.Module] = [nn.Linear(c.fc_latent, flat), make_activation(c.activation)]
    else:
        fc_dec = []
    decoder = nn.Sequential(
        *fc_dec,
        nn.Unflatten(1, feat_shape),
        *dec,
        ConvDecoder(c.channels, c.batch_norm, c.kernel_size, c.activation),
    )
    return Autoencoder(config, nn.Sequential(*enc), decoder)
