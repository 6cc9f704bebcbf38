"""``vae``: validation negative ELBO per image (summed BCE + KL) of a VAE."""

from __future__ import annotations

import optuna

from ._base import Objective, TrialSpec
from ._space import suggest_train, suggest_vae


def suggest(trial: optuna.Trial, *, max_epochs: int) -> TrialSpec:
    """MLP or conv VAE, latent size, beta, training settings.

    Training minimises reconstruction + beta * KL; the score is the plain negative ELBO
    (beta = 1), so a small beta cannot win by ignoring the KL term.
    """
    return TrialSpec("vae", suggest_vae(trial, "vae"), suggest_train(trial, max_epochs=max_epochs))


OBJECTIVE = Objective(
    "vae",
    "minimize",
    "nelbo",
    suggest,
    "validation negative ELBO per image (reconstruction + KL) of a VAE",
)
