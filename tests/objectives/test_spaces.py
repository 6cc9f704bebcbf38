import optuna
import pytest
import torch

import models as m
from objectives import OBJECTIVES, NullReporter, TrialSpec, run_trial, trial_spec

BASE_TRAIN = {
    "train.optimizer": "adam",
    "train.adam.lr": 1e-3,
    "train.batch_size": 64,
    "train.epochs": 2,
}
MLP = {
    "arch": "mlp",
    "activation": "relu",
    "mlp.layers": 2,
    "mlp.width0": 64,
    "mlp.width1": 32,
    "latent_dim": 3,
}
CONV = {
    "arch": "conv",
    "activation": "gelu",
    "conv.stages": 2,
    "conv.ch0": 8,
    "conv.ch1": 16,
    "conv.downsample": "maxpool",
    "conv.batch_norm": True,
}


def _prefixed(prefix, params):
    return {f"{prefix}.{k}": v for k, v in params.items()}


def _fixed(objective, params, max_epochs=4):
    return OBJECTIVES[objective].suggest(optuna.trial.FixedTrial(params), max_epochs=max_epochs)


def test_classifier_mlp_ae_frozen():
    spec = _fixed(
        "classifier",
        {
            "enc.family": "ae",
            **_prefixed("enc", MLP),
            "clf.freeze": "frozen",
            "clf.head_layers": 2,
            "clf.head_width0": 32,
            "clf.head_width1": 16,
            "clf.head_activation": "relu",
            "clf.dropout": 0.1,
            "clf.pretrain_epochs": 2,
            **BASE_TRAIN,
        },
    )
    c = spec.model
    assert isinstance(c, m.ClassifierConfig) and isinstance(c.encoder, m.MLPAEConfig)
    assert c.encoder.hidden == (64, 32) and c.latent_dim == 3
    assert c.head == (32, 16) and c.freeze == "frozen" and c.pretrain_epochs == 2
    assert spec.train == m.TrainConfig(optimizer="adam", lr=1e-3, batch_size=64, epochs=2)


@pytest.mark.parametrize("fc", [True, False])
def test_classifier_conv_ae_fc_bottleneck_is_a_choice(fc):
    params = {
        "enc.family": "ae",
        **_prefixed("enc", CONV),
        "enc.conv.fc_bottleneck": fc,
        "clf.freeze": "joint",
        "clf.recon_weight": 0.5,
        "clf.head_layers": 0,
        **BASE_TRAIN,
    }
    if fc:
        params["enc.latent_dim"] = 6
    c = _fixed("classifier", params).model
    assert c.encoder.fc_latent == (6 if fc else None)
    assert c.latent_dim == (6 if fc else 16 * 7 * 7)
    assert c.freeze == "joint" and c.recon_weight == 0.5 and c.pretrain_epochs == 0


def test_classifier_vae_encoder_scratch():
    c = _fixed(
        "classifier",
        {
            "enc.family": "vae",
            **_prefixed("enc", MLP),
            "enc.beta": 2.0,
            "clf.freeze": "scratch",
            "clf.head_layers": 0,
            **BASE_TRAIN,
        },
    ).model
    assert isinstance(c.encoder, m.VAEConfig) and c.encoder.beta == 2.0
    assert c.freeze == "scratch"


def test_ae_space():
    spec = _fixed(
        "ae",
        {
            "ae.recon_loss": "bce",
            **_prefixed("ae", CONV),
            "ae.conv.fc_bottleneck": True,
            "ae.latent_dim": 10,
            "train.optimizer": "sgd",
            "train.sgd.lr": 0.05,
            "train.batch_size": 128,
            "train.epochs": 3,
        },
    )
    assert spec.model == m.ConvAEConfig(
        channels=(8, 16),
        downsample="maxpool",
        batch_norm=True,
        fc_latent=10,
        activation="gelu",
        recon_loss="bce",
    )
    assert spec.train.optimizer == "sgd" and spec.train.lr == 0.05


def test_vae_space():
    spec = _fixed(
        "vae",
        {
            **_prefixed("vae", CONV),
            "vae.latent_dim": 8,
            "vae.beta": 0.5,
            "train.optimizer": "adamw",
            "train.adamw.lr": 3e-3,
            "train.adamw.weight_decay": 1e-4,
            "train.batch_size": 256,
            "train.epochs": 2,
        },
    )
    assert spec.model.encoder == "conv" and spec.model.latent_dim == 8
    assert spec.model.beta == 0.5 and spec.model.recon_loss == "bce"
    # The VAE is the sampled conv autoencoder: no fields of an MLP it is not.
    assert spec.model.to_dict()["autoencoder"]["channels"] == [8, 16]
    assert "hidden" not in str(spec.to_dict())
    assert spec.train.weight_decay == 1e-4


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_sampled_config_builds_and_round_trips(name):
    objective = OBJECTIVES[name]
    study = optuna.create_study(
        direction=objective.direction, sampler=optuna.samplers.RandomSampler(seed=1)
    )
    x = torch.rand(2, 1, 28, 28)
    for _ in range(40):
        trial = study.ask()
        spec = objective.suggest(trial, max_epochs=6)
        assert TrialSpec.from_dict(spec.to_dict()) == spec
        assert all(k.split(".")[0] in ("enc", "clf", "train", "ae", "vae") for k in trial.params)
        model = m.build_model(spec.model)
        out = model(x)
        assert (out if torch.is_tensor(out) else out[0]).shape[0] == 2
        assert 3 <= spec.train.epochs <= 6
        study.tell(trial, 0.0)


def test_objective_reports_every_epoch_and_prunes(small):
    train, val = small

    class PruneAtTwo(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return max(trial.intermediate_values, default=0) >= 2

    study = optuna.create_study(direction="minimize", pruner=PruneAtTwo())
    fixed = {
        "ae.recon_loss": "mse",
        **_prefixed("ae", MLP),
        "train.optimizer": "adam",
        "train.adam.lr": 1e-3,
        "train.batch_size": 128,
        "train.epochs": 4,
    }
    study.enqueue_trial(fixed)
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned):
        run_trial(
            trial,
            trial_spec(trial, OBJECTIVES["ae"], max_epochs=4),
            train=train,
            val=val,
            device=torch.device("cpu"),
            reporter=NullReporter(),
        )
    (frozen,) = study.get_trials(deepcopy=False)
    assert sorted(frozen.intermediate_values) == [1, 2]
