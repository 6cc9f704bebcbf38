"""Family name -> config class and builder."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from ._autoencoder import ConvAEConfig, MLPAEConfig, build_conv_ae, build_mlp_ae
from ._classifier import ClassifierConfig, build_classifier
from ._config import ConfigBase, ConfigError
from ._vae import VAEConfig, build_vae

CONFIGS: dict[str, type] = {
    c.family: c for c in (MLPAEConfig, ConvAEConfig, VAEConfig, ClassifierConfig)
}
_BUILDERS = {
    MLPAEConfig: build_mlp_ae,
    ConvAEConfig: build_conv_ae,
    VAEConfig: build_vae,
    ClassifierConfig: build_classifier,
}


def config_from_dict(data: dict[str, Any]) -> ConfigBase:
    """Rebuild a model config from ``config.to_dict()`` (the ``family`` key picks the class)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a model config must be a mapping, but got {data!r}")
    family = data.get("family")
    if family not in CONFIGS:
        raise ConfigError(f"unknown model family {family!r}; choose one of {sorted(CONFIGS)}")
    return CONFIGS[family].from_dict(data)


def build_model(config: ConfigBase) -> nn.Module:
    """``nn.Module`` for any model config."""
    try:
        builder = _BUILDERS[type(config)]
    except KeyError:
        raise ConfigError(f"not a model config: {config!r}") from None
    return builder(config)
