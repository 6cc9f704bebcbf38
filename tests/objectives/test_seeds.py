"""Seed systems as trials, and a trial resumed after its very last epoch."""

import optuna
import pytest
import torch

from models import PRESETS, ClassifierConfig, ConfigError, VAEConfig
from objectives import OBJECTIVES, NullReporter, run_trial, trial_spec
from objectives.seeds import SEED_ATTR, seed_names, seed_spec


def test_every_seed_system_is_a_trial_of_some_objective():
    covered = {n for o in OBJECTIVES for n in seed_names(o)}
    assert covered == set(PRESETS)
    assert seed_names("vae") == ["s3-mlp-vae"]
    for objective in OBJECTIVES:
        for name in seed_names(objective):
            spec = seed_spec(objective, name, max_epochs=4)
            assert spec.objective == objective and spec.train.epochs == 4
            assert spec.train.lr == PRESETS[name].train.lr
    # A seed's autoencoder becomes the encoder of S0's classifier.
    clf = seed_spec("classifier", "s4-conv-ae-fc", max_epochs=4).model
    assert isinstance(clf, ClassifierConfig) and clf.encoder == PRESETS["s4-conv-ae-fc"].model
    assert clf.head == PRESETS["s0-latent-classifier"].model.head
    assert isinstance(seed_spec("vae", "s3-mlp-vae", max_epochs=2).model, VAEConfig)
    with pytest.raises(ConfigError, match="cannot train"):
        seed_spec("vae", "s2-mlp-ae-3d", max_epochs=2)


class Keep(NullReporter):
    def __init__(self):
        self.snapshots, self.model = [], None

    def epoch(self, result):
        self.snapshots.append(result.snapshot())

    def done(self, model):
        self.model = model


def seed_trial(study):
    study.enqueue_trial({}, user_attrs={SEED_ATTR: "s2-mlp-ae-3d"})
    return study.ask()


def test_a_trial_resumed_after_its_last_epoch_still_hands_over_its_model(small):
    train, val = small
    study = optuna.create_study()
    first = Keep()
    kwargs = {"train": train, "val": val, "device": torch.device("cpu")}

    def spec(trial):
        return trial_spec(trial, OBJECTIVES["ae"], max_epochs=2)

    trial = seed_trial(study)
    value = run_trial(trial, spec(trial), reporter=first, **kwargs)
    again = Keep()
    trial = seed_trial(study)
    resumed = run_trial(trial, spec(trial), reporter=again, resume=first.snapshots[-1], **kwargs)
    assert again.snapshots == []  # no epoch left to train
    assert resumed == value
    assert again.model is not None
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k])
