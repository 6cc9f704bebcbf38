"""Search-space pieces shared by the objectives. Parameter names are stable: renaming one
breaks resumed studies, so add new names instead of changing old ones."""

from __future__ import annotations

import optuna

from models import ConvAEConfig, MLPAEConfig, TrainConfig, VAEConfig

ACTIVATION_CHOICES = ["relu", "leaky_relu", "gelu", "elu", "tanh"]
FIRST_CHANNELS = [8, 16, 32]  # the first stage runs at full resolution: keep it cheap
CHANNEL_CHOICES = [16, 32, 64]
BATCH_CHOICES = [64, 128, 256, 512]


def suggest_train(trial: optuna.Trial, *, max_epochs: int) -> TrainConfig:
    """Optimiser, log-scale learning rate, batch size and the epoch budget."""
    optimizer = trial.suggest_categorical("train.optimizer", ["adam", "adamw", "sgd"])
    # SGD (Nesterov momentum 0.9) diverged above ~0.05 in the default study: kept below it.
    # (VAE losses are minimised per pixel, like the others, so this range suits them too.)
    lr_low, lr_high = (1e-3, 3e-2) if optimizer == "sgd" else (3e-4, 1e-2)
    lr = trial.suggest_float(f"train.{optimizer}.lr", lr_low, lr_high, log=True)
    weight_decay = 0.0
    if optimizer == "adamw":
        weight_decay = trial.suggest_float("train.adamw.weight_decay", 1e-5, 1e-1, log=True)
    return TrainConfig(
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=trial.suggest_categorical("train.batch_size", BATCH_CHOICES),
        epochs=trial.suggest_int("train.epochs", max(1, max_epochs // 2), max_epochs),
    )


def suggest_mlp_hidden(trial: optuna.Trial, prefix: str, *, max_layers: int = 3) -> tuple:
    """Depth (1 to ``max_layers`` hidden layers) and a width per layer."""
    depth = trial.suggest_int(f"{prefix}.mlp.layers", 1, max_layers)
    return tuple(
        trial.suggest_int(f"{prefix}.mlp.width{i}", 32, 512, log=True) for i in range(depth)
    )


def suggest_conv(trial: optuna.Trial, prefix: str) -> dict:
    """Stages (2 or 3, i.e. down to 7x7 or 4x4), channels per stage, downsampling, BN."""
    stages = trial.suggest_int(f"{prefix}.conv.stages", 2, 3)
    return {
        "channels": tuple(
            trial.suggest_categorical(
                f"{prefix}.conv.ch{i}", FIRST_CHANNELS if i == 0 else CHANNEL_CHOICES
            )
            for i in range(stages)
        ),
        "downsample": trial.suggest_categorical(f"{prefix}.conv.downsample", ["stride", "maxpool"]),
        "batch_norm": trial.suggest_categorical(f"{prefix}.conv.batch_norm", [True, False]),
    }


def suggest_latent(trial: optuna.Trial, prefix: str) -> int:
    return trial.suggest_int(f"{prefix}.latent_dim", 2, 64, log=True)


def suggest_autoencoder(trial: optuna.Trial, prefix: str, *, recon_loss: str = "mse"):
    """An MLP or conv autoencoder; conv has the FC bottleneck as a searchable boolean."""
    arch = trial.suggest_categorical(f"{prefix}.arch", ["mlp", "conv"])
    activation = trial.suggest_categorical(f"{prefix}.activation", ACTIVATION_CHOICES)
    if arch == "mlp":
        return MLPAEConfig(
            hidden=suggest_mlp_hidden(trial, prefix),
            latent_dim=suggest_latent(trial, prefix),
            activation=activation,
            recon_loss=recon_loss,
        )
    conv = suggest_conv(trial, prefix)
    fc = trial.suggest_categorical(f"{prefix}.conv.fc_bottleneck", [True, False])
    return ConvAEConfig(
        **conv,
        fc_latent=suggest_latent(trial, prefix) if fc else None,
        activation=activation,
        recon_loss=recon_loss,
    )


def suggest_vae(trial: optuna.Trial, prefix: str) -> VAEConfig:
    """An MLP or conv VAE (summed BCE) with a log-scale beta."""
    arch = trial.suggest_categorical(f"{prefix}.arch", ["mlp", "conv"])
    activation = trial.suggest_categorical(f"{prefix}.activation", ACTIVATION_CHOICES)
    common = {"activation": activation, "recon_loss": "bce"}
    if arch == "mlp":
        hidden = suggest_mlp_hidden(trial, prefix)
        autoencoder = MLPAEConfig(hidden=hidden, latent_dim=suggest_latent(trial, prefix), **common)
    else:
        conv = suggest_conv(trial, prefix)
        autoencoder = ConvAEConfig(**conv, fc_latent=suggest_latent(trial, prefix), **common)
    return VAEConfig(autoencoder, beta=trial.suggest_float(f"{prefix}.beta", 0.1, 4.0, log=True))
