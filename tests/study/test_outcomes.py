"""Pruned and failed trials are mirrored in MLflow with their reasons."""

import optuna
import pytest
import torch

import objectives
from objectives import OBJECTIVES
from study import run
from study.data import Dataset
from study.tracking import StudyTracker

from .conftest import TINY, stores
from .helpers import artifacts, load


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def _diverging(trial, *, max_epochs):
    """A linear AE with a far too large SGD step: diverges in the first epoch."""
    import models as m

    trial.suggest_float("train.sgd.lr", 1.0, 1.0)
    model = m.MLPAEConfig(
        hidden=(16,), latent_dim=2, activation="identity", output_activation="identity"
    )
    return objectives.TrialSpec("ae", model, m.TrainConfig(optimizer="sgd", lr=1.0, epochs=2))


@pytest.fixture
def harness(tmp_path, small):
    args = run.build_parser().parse_args([*TINY, *stores(tmp_path), "--objective", "ae"])
    train, val = small
    data = Dataset("fashion-mnist", train, val, val, "test")

    def make(pruner, objective):
        study = optuna.create_study(
            study_name="ae-fashion-mnist", storage=args.storage, pruner=pruner
        )
        tracker = StudyTracker(args.tracking_uri, study, settings={})
        func = run.TrialFunction(
            objective, data, device=torch.device("cpu"), args=args, tracker=tracker
        )
        return study, func

    return tmp_path, make


def test_pruned_trial_is_killed_with_reason_and_pictures(harness):
    path, make = harness
    study, func = make(AlwaysPrune(), OBJECTIVES["ae"])
    study.optimize(func, n_trials=1)
    _, client, _, runs = load(path, "ae-fashion-mnist")
    (r,) = runs
    assert study.trials[0].state.name == "PRUNED"
    assert r.info.status == "KILLED" and r.data.tags["optuna.state"] == "PRUNED"
    assert "pruned after epoch 1" in r.data.tags["prune_reason"]
    assert artifacts(client, r.info.run_id, "pictures") == [
        "pictures/latent.png",
        "pictures/reconstructions.png",
    ]
    assert artifacts(client, r.info.run_id, "checkpoint") == []
    assert func.last.state == "PRUNED" and func.last.value is not None


def test_non_finite_loss_fails_the_trial_with_its_reason(harness):
    path, make = harness
    objective = objectives.Objective("ae", "minimize", "mse", _diverging, "diverges")
    study, func = make(optuna.pruners.NopPruner(), objective)
    study.optimize(func, n_trials=2, catch=(Exception,))
    _, client, _, runs = load(path, "ae-fashion-mnist")
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
    assert "non-finite" in study.trials[0].user_attrs["fail_reason"]
    assert len(runs) == 2
    for r in runs:
        assert r.info.status == "FAILED"
        assert "lr=1" in r.data.tags["fail_reason"]
        assert "traceback.txt" not in artifacts(client, r.info.run_id)  # expected, not a bug


def test_unexpected_exception_is_recorded_with_traceback(harness):
    path, make = harness

    def broken(trial, *, max_epochs):
        raise RuntimeError("boom in suggest")

    study, func = make(
        optuna.pruners.NopPruner(), objectives.Objective("ae", "minimize", "mse", broken, "broken")
    )
    study.optimize(func, n_trials=1, catch=(Exception,))
    _, client, _, (r,) = load(path, "ae-fashion-mnist")
    assert r.info.status == "FAILED" and "boom in suggest" in r.data.tags["fail_reason"]
    assert "traceback.txt" in artifacts(client, r.info.run_id)
