"""``ae``: validation reconstruction loss (mean squared error per pixel) of an autoencoder."""

from __future__ import annotations

import optuna

from ._base import Objective, TrialSpec
from ._space import suggest_autoencoder, suggest_train


def suggest(trial: optuna.Trial, *, max_epochs: int) -> TrialSpec:
    """MLP or conv autoencoder (FC bottleneck on/off), training loss, training settings.

    The score is validation MSE whichever loss trains the model, so trials compare fairly.
    """
    recon_loss = trial.suggest_categorical("ae.recon_loss", ["mse", "bce"])
    model = suggest_autoencoder(trial, "ae", recon_loss=recon_loss)
    return TrialSpec("ae", model, suggest_train(trial, max_epochs=max_epochs))


OBJECTIVE = Objective(
    "ae",
    "minimize",
    "mse",
    suggest,
    "validation reconstruction loss (MSE per pixel) of an autoencoder",
)
