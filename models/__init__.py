"""Model configs, builders, losses and the shared training engine (torch only)."""

from ._autoencoder import Autoencoder, ConvAEConfig, MLPAEConfig
from ._classifier import FREEZE_CHOICES, ClassifierConfig, LatentClassifier
from ._config import ACTIVATIONS, ConfigBase, ConfigError
from ._data import Split
from ._device import autocast, flush_denormals, prepare_model, resolve_device
from ._engine import (
    CompiledTask,
    EpochResult,
    FitResult,
    NonFiniteLossError,
    TrainConfig,
    eval_batch_size,
    evaluate,
    fit,
    make_optimizer,
    train_epoch,
)
from ._graphs import GraphedStep
from ._registry import build_model, config_from_dict
from ._serving import ServingModule, default_view
from ._tasks import ClassifierTask, ReconTask, VAETask, recon_task, task_for
from ._vae import VAE, VAEConfig
from .presets import PRESETS, Preset

__all__ = [
    "ACTIVATIONS",
    "FREEZE_CHOICES",
    "PRESETS",
    "VAE",
    "Autoencoder",
    "ClassifierConfig",
    "ClassifierTask",
    "CompiledTask",
    "ConfigBase",
    "ConfigError",
    "ConvAEConfig",
    "EpochResult",
    "FitResult",
    "GraphedStep",
    "LatentClassifier",
    "MLPAEConfig",
    "NonFiniteLossError",
    "Preset",
    "ReconTask",
    "ServingModule",
    "Split",
    "TrainConfig",
    "VAEConfig",
    "VAETask",
    "autocast",
    "build_model",
    "config_from_dict",
    "default_view",
    "eval_batch_size",
    "evaluate",
    "fit",
    "flush_denormals",
    "make_optimizer",
    "prepare_model",
    "recon_task",
    "resolve_device",
    "task_for",
    "train_epoch",
]
