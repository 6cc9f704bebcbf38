"""A trained model as one tensor-in, tensor-out module: what gets logged, exported and served.

Every family's ``forward`` differs (an AE gives decoder logits, a VAE a tuple, a classifier
class logits); a ``ServingModule`` picks one view of it with a single float32 output, so it
has an MLflow signature and exports with ``torch.export``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ._config import ConfigError

VIEWS = ("encode", "reconstruct", "classify")


class ServingModule(nn.Module):
    """``forward(images)`` for images float32 [B, 1, 28, 28] in [0, 1]:

    - ``encode``: the latent vectors [B, latent_dim] (a VAE's posterior mean);
    - ``reconstruct``: the reconstructions [B, 1, 28, 28] in [0, 1] (decoded from the mean);
    - ``classify``: class logits [B, 10] (latent classifiers).
    """

    def __init__(self, model: nn.Module, view: str):
        super().__init__()
        if view not in VIEWS:
            raise ConfigError(f"view must be one of {VIEWS}, but got {view!r}")
        if view == "classify" and not hasattr(model, "head"):
            raise ConfigError(
                f"only a latent classifier can classify, not a {type(model).__name__}"
            )
        self.model = model
        self.view = view

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.view == "encode":
            return self.model.encode(x)
        if self.view == "classify":
            return self.model(x)
        autoencoder = getattr(self.model, "autoencoder", self.model)
        return autoencoder.decode(autoencoder.encode(x))


def default_view(model: nn.Module) -> str:
    """What a trained model is for: classes for a classifier, reconstructions otherwise."""
    return "classify" if hasattr(model, "head") else "reconstruct"
