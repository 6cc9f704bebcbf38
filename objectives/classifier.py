"""``classifier``: validation accuracy of a classifier on a learned latent space."""

from __future__ import annotations

import optuna

from models import FREEZE_CHOICES, ClassifierConfig

from ._base import Objective, TrialSpec
from ._space import ACTIVATION_CHOICES, suggest_autoencoder, suggest_train, suggest_vae


def suggest(trial: optuna.Trial, *, max_epochs: int) -> TrialSpec:
    """Encoder family and architecture, freeze choice, head, and training settings."""
    family = trial.suggest_categorical("enc.family", ["ae", "vae"])
    encoder = suggest_vae(trial, "enc") if family == "vae" else suggest_autoencoder(trial, "enc")
    freeze = trial.suggest_categorical("clf.freeze", list(FREEZE_CHOICES))
    layers = trial.suggest_int("clf.head_layers", 0, 3)
    head = tuple(trial.suggest_int(f"clf.head_width{i}", 16, 256, log=True) for i in range(layers))
    extra = {}
    if freeze in ("frozen", "finetune"):
        extra["pretrain_epochs"] = trial.suggest_int(
            "clf.pretrain_epochs", 1, max(1, max_epochs // 2)
        )
    else:
        extra["pretrain_epochs"] = 0
    if freeze == "joint":
        extra["recon_weight"] = trial.suggest_float("clf.recon_weight", 0.01, 10.0, log=True)
    if layers:
        extra["head_activation"] = trial.suggest_categorical(
            "clf.head_activation", ACTIVATION_CHOICES
        )
        extra["dropout"] = trial.suggest_float("clf.dropout", 0.0, 0.5)
    model = ClassifierConfig(encoder=encoder, head=head, freeze=freeze, **extra)
    return TrialSpec("classifier", model, suggest_train(trial, max_epochs=max_epochs))


OBJECTIVE = Objective(
    "classifier",
    "maximize",
    "acc",
    suggest,
    "validation accuracy of a classifier on a learned latent space",
)
