"""The seed systems (SEEDS.md, ``models.PRESETS``) as trial specs of each objective.

``study.run --enqueue-seeds`` enqueues them as a study's first trials; a trial carrying the
user attribute ``seed_preset`` trains that preset instead of sampling from the space.

- ``classifier``: S0 as written; every other seed's autoencoder (or VAE) becomes the encoder
  of S0's classifier (head 64-32, frozen after pre-training), so the study can compare the
  seeds' latent spaces by accuracy.
- ``ae``: the seeds that are autoencoders (S1a, S1b, S2, S4 with and without FC) and S0's
  autoencoder.
- ``vae``: S3.
"""

from __future__ import annotations

from dataclasses import replace

import optuna

from models import PRESETS, ClassifierConfig, ConfigError, VAEConfig

from ._base import Objective, TrialSpec

SEED_ATTR = "seed_preset"
S0 = PRESETS["s0-latent-classifier"]


def _model(objective: str, preset, max_epochs: int):
    model = preset.model
    pretrain = max(1, max_epochs // 2)
    if objective == "classifier":
        if isinstance(model, ClassifierConfig):
            return replace(model, pretrain_epochs=min(model.pretrain_epochs, pretrain))
        return replace(S0.model, encoder=model, pretrain_epochs=pretrain)
    if isinstance(model, ClassifierConfig):
        model = model.encoder
    if objective == "vae":
        return model if isinstance(model, VAEConfig) else None
    return None if isinstance(model, VAEConfig) else model


def seed_names(objective: str) -> list[str]:
    """The presets that ``objective`` can train, in SEEDS.md order."""
    return [name for name, p in PRESETS.items() if _model(objective, p, 2) is not None]


def seed_spec(objective: str, name: str, *, max_epochs: int) -> TrialSpec:
    """Preset ``name`` as a trial spec of ``objective``, trained for ``max_epochs`` epochs."""
    if name not in PRESETS:
        raise ConfigError(f"unknown seed preset {name!r}; choose from {sorted(PRESETS)}")
    preset = PRESETS[name]
    model = _model(objective, preset, max_epochs)
    if model is None:
        raise ConfigError(
            f"seed preset {name!r} is a {preset.model.family}, which the {objective!r} "
            f"objective cannot train; its seeds are {seed_names(objective)}"
        )
    return TrialSpec(objective, model, replace(preset.train, epochs=max_epochs))


def trial_spec(trial: optuna.Trial, objective: Objective, *, max_epochs: int) -> TrialSpec:
    """What ``trial`` trains: its seed system's preset if it carries one, else a sample."""
    preset = trial.user_attrs.get(SEED_ATTR)
    if preset is not None:
        return seed_spec(objective.name, preset, max_epochs=max_epochs)
    return objective.suggest(trial, max_epochs=max_epochs)
