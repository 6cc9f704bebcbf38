"""Each objective's baseline: a textbook configuration, run as a new study's first trial.

SMAC evaluates a search space's default configuration first, and for the same two reasons:
the search starts from a known-good point rather than from ten random ones (on a small
budget, that point is often the best a cold start reaches), and the study records what the
search buys over the textbook choice (the report compares the two). The values are the
space's own parameters, so the trial informs TPE like any other observation; like a seed
system it does not use up a random start-up slot and is never pruned. ``study.run
--no-baseline`` leaves it out.

- ``classifier``: a small two-stage CNN (16-32 channels, 3x3, max-pooling, BatchNorm), a
  dense layer of 128 with dropout 0.25, trained from scratch: the Fashion-MNIST tutorial CNN.
- ``ae``: an MLP autoencoder 784-256-128-32 and mirror, MSE (S0's autoencoder).
- ``vae``: PyTorch's example VAE, 784-400-20 and mirror, summed BCE, beta 1.

Each trains with Adam at 1e-3, batches of 128, for the study's full ``--epochs``.
"""

from __future__ import annotations

BASELINE_ATTR = "baseline"  # user attribute (True) of the baseline trial

_CNN = {
    "arch": "conv",
    "activation": "relu",
    "conv.stages": 2,
    "conv.ch0": 16,
    "conv.ch1": 32,
    "conv.downsample": "maxpool",
    "conv.batch_norm": True,
}


def _prefixed(prefix: str, params: dict) -> dict:
    return {f"{prefix}.{k}": v for k, v in params.items()}


_MODELS = {
    "classifier": {
        "enc.family": "ae",
        **_prefixed("enc", _CNN),
        "enc.conv.fc_bottleneck": False,
        "clf.freeze": "scratch",
        "clf.head_layers": 1,
        "clf.head_width0": 128,
        "clf.head_activation": "relu",
        "clf.dropout": 0.25,
    },
    "ae": {
        "ae.recon_loss": "mse",
        **_prefixed(
            "ae",
            {
                "arch": "mlp",
                "activation": "relu",
                "mlp.layers": 2,
                "mlp.width0": 256,
                "mlp.width1": 128,
                "latent_dim": 32,
            },
        ),
    },
    "vae": _prefixed(
        "vae",
        {
            "arch": "mlp",
            "activation": "relu",
            "mlp.layers": 1,
            "mlp.width0": 400,
            "latent_dim": 20,
            "beta": 1.0,
        },
    ),
}


def baseline_params(objective: str, *, max_epochs: int) -> dict:
    """The baseline of ``objective`` as its search space's parameters, for ``--epochs
    max_epochs``."""
    train = {
        "train.optimizer": "adam",
        "train.adam.lr": 1e-3,
        "train.batch_size": 128,
        "train.epochs": max_epochs,
    }
    return {**_MODELS[objective], **train}
