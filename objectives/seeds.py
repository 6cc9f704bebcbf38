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
# A trial of a controlled experiment (study.ablate, study.confirm): it trains the spec it
# carries with the seed it carries, to the end ({"spec", "seed", "name", ...}).
CELL_ATTR = "cell"
IN_SPACE_ATTR = "seed_in_space"  # the seed was enqueued with its own parameter values
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
    """What ``trial`` trains: the spec of its experiment cell or seed system's preset if it
    carries one, else a sample."""
    cell = trial.user_attrs.get(CELL_ATTR)
    if cell is not None:
        return TrialSpec.from_dict(cell["spec"])
    preset = trial.user_attrs.get(SEED_ATTR)
    if preset is not None and not trial.user_attrs.get(IN_SPACE_ATTR):
        return seed_spec(objective.name, preset, max_epochs=max_epochs)
    # A seed enqueued with its parameters: suggesting records them, and rebuilds its spec.
    return objective.suggest(trial, max_epochs=max_epochs)


def _encoder_params(prefix: str, config, *, with_recon: bool = False) -> dict:
    """``config`` (an MLP or conv AE, or a VAE's) as the space's parameters under ``prefix``."""
    from models import MLPAEConfig

    ae = config.autoencoder if isinstance(config, VAEConfig) else config
    p = {f"{prefix}.activation": ae.activation}
    if isinstance(ae, MLPAEConfig):
        p[f"{prefix}.arch"] = "mlp"
        p[f"{prefix}.mlp.layers"] = len(ae.hidden)
        p.update({f"{prefix}.mlp.width{i}": w for i, w in enumerate(ae.hidden)})
        p[f"{prefix}.latent_dim"] = ae.latent_dim
    else:
        p[f"{prefix}.arch"] = "conv"
        p[f"{prefix}.conv.stages"] = len(ae.channels)
        p.update({f"{prefix}.conv.ch{i}": c for i, c in enumerate(ae.channels)})
        p[f"{prefix}.conv.downsample"] = ae.downsample
        p[f"{prefix}.conv.batch_norm"] = ae.batch_norm
        if not isinstance(config, VAEConfig):
            p[f"{prefix}.conv.fc_bottleneck"] = ae.fc_latent is not None
        if ae.fc_latent is not None:
            p[f"{prefix}.latent_dim"] = ae.fc_latent
    if isinstance(config, VAEConfig):
        p[f"{prefix}.beta"] = config.beta
    if with_recon:
        p["ae.recon_loss"] = ae.recon_loss
    return p


def _train_params(train) -> dict:
    p = {
        "train.optimizer": train.optimizer,
        f"train.{train.optimizer}.lr": train.lr,
        "train.batch_size": train.batch_size,
        "train.epochs": train.epochs,
    }
    if train.optimizer == "adamw":
        p["train.adamw.weight_decay"] = train.weight_decay
    return p


def _candidate(objective: str, spec: TrialSpec) -> dict:
    m = spec.model
    if objective == "ae":
        return {**_encoder_params("ae", m, with_recon=True), **_train_params(spec.train)}
    if objective == "vae":
        return {**_encoder_params("vae", m), **_train_params(spec.train)}
    p = {"enc.family": "vae" if isinstance(m.encoder, VAEConfig) else "ae"}
    p.update(_encoder_params("enc", m.encoder))
    p["clf.freeze"] = m.freeze
    p["clf.head_layers"] = len(m.head)
    p.update({f"clf.head_width{i}": w for i, w in enumerate(m.head)})
    if m.head:
        p["clf.head_activation"], p["clf.dropout"] = m.head_activation, m.dropout
    if m.pretrains:
        p["clf.pretrain_epochs"] = m.pretrain_epochs
    if m.freeze == "joint":
        p["clf.recon_weight"] = m.recon_weight
    return {**p, **_train_params(spec.train)}


def seed_params(objective: Objective, name: str, *, max_epochs: int) -> dict | None:
    """Preset ``name`` as the objective's own parameters, or None where the search space
    cannot express it (a width, latent size, activation or layer it has no value for).

    Checked by round trip: the objective's ``suggest`` must rebuild exactly the seed's spec
    from these values, every one inside its distribution.
    """
    import warnings

    spec = seed_spec(objective.name, name, max_epochs=max_epochs)
    try:
        params = _candidate(objective.name, spec)
        fixed = optuna.trial.FixedTrial(params)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # FixedTrial warns for a value out of range
            rebuilt = objective.suggest(fixed, max_epochs=max_epochs)
    except (ValueError, UserWarning, ConfigError, AttributeError):
        return None
    if rebuilt != spec or set(fixed.params) != set(params):
        return None
    return params
