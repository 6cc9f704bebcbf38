"""Pruned and failed trials are mirrored in MLflow with their reasons."""

import optuna
import pytest

import objectives
from objectives import OBJECTIVES

from ..helpers import Harness, artifacts, load


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
    def make(pruner, objective):
        h = Harness(tmp_path, small, pruner=pruner)
        return h, objective

    return tmp_path, make


def test_pruned_trial_is_killed_with_reason_and_pictures(harness):
    path, make = harness
    h, objective = make(AlwaysPrune(), OBJECTIVES["ae"])
    outcome = h.run(objective)
    _, client, _, runs = load(path, "ae-fashion-mnist")
    (r,) = runs
    assert h.study.trials[0].state.name == "PRUNED"
    assert r.info.status == "KILLED" and r.data.tags["optuna.state"] == "PRUNED"
    assert "pruned after epoch 1" in r.data.tags["prune_reason"]
    assert artifacts(client, r.info.run_id, "pictures") == [
        "pictures/latent.png",
        "pictures/reconstructions.png",
    ]
    assert artifacts(client, r.info.run_id, "checkpoint") == []
    assert outcome.state == "PRUNED" and outcome.value is not None


def test_non_finite_loss_fails_the_trial_with_its_reason(harness):
    path, make = harness
    h, objective = make(
        optuna.pruners.NopPruner(),
        objectives.Objective("ae", "minimize", "mse", _diverging, "diverges"),
    )
    assert [h.run(objective).state for _ in range(2)] == ["FAIL", "FAIL"]
    _, client, _, runs = load(path, "ae-fashion-mnist")
    assert [t.state.name for t in h.study.trials] == ["FAIL", "FAIL"]
    assert "non-finite" in h.study.trials[0].user_attrs["fail_reason"]
    assert len(runs) == 2
    for r in runs:
        assert r.info.status == "FAILED"
        assert "lr=1" in r.data.tags["fail_reason"]
        assert "traceback.txt" not in artifacts(client, r.info.run_id)  # expected, not a bug


def test_unexpected_exception_is_recorded_with_traceback(harness):
    path, make = harness

    def broken(trial, *, max_epochs):
        raise RuntimeError("boom in suggest")

    h, objective = make(
        optuna.pruners.NopPruner(), objectives.Objective("ae", "minimize", "mse", broken, "broken")
    )
    assert h.run(objective).state == "FAIL"
    _, client, _, (r,) = load(path, "ae-fashion-mnist")
    assert r.info.status == "FAILED" and "boom in suggest" in r.data.tags["fail_reason"]
    assert "traceback.txt" in artifacts(client, r.info.run_id)


def test_a_run_its_trial_never_recorded_is_closed_once_the_trial_has_ended(harness, monkeypatch):
    """The storage went away between creating a trial's MLflow run and linking it to the
    trial: once the trial has ended, the next worker closes that run too."""
    from optuna.trial import TrialState

    from study.stores.outage import OutageError

    path, make = harness
    h, objective = make(optuna.pruners.NopPruner(), OBJECTIVES["ae"])
    link = optuna.trial.Trial.set_user_attr

    def cut_off(self, key, value):
        if key == "mlflow_run_id":
            raise OutageError("the Optuna storage sqlite:///optuna.db", 5, 4)
        return link(self, key, value)

    monkeypatch.setattr(optuna.trial.Trial, "set_user_attr", cut_off)
    with pytest.raises(OutageError):
        h.run(objective)
    monkeypatch.undo()
    # A run of another study's trial 0 in the same experiment (as study.ablate's studies
    # share theirs) is not this study's to close.
    other = h.tracker.client.create_run(
        h.tracker.experiment_id,
        run_name="trial-0",
        tags={"optuna.study": "another", "optuna.trial_number": "0"},
    ).info.run_id
    _, client, _, (orphan,) = load(path, "ae-fashion-mnist")
    assert "mlflow_run_id" not in h.study.trials[0].user_attrs
    assert h.tracker.mirror(h.study) == 0, "its trial is RUNNING: its worker may be alive"
    h.study.tell(0, state=TrialState.FAIL)
    assert h.tracker.mirror(h.study) == 1
    run = client.get_run(orphan.info.run_id)
    assert run.info.status == "FAILED"
    assert "trial 0 never recorded this run" in run.data.tags["fail_reason"]
    assert client.get_run(other).info.status == "RUNNING"


def test_a_trials_records_are_uploaded_without_re_reading_its_run(harness, monkeypatch):
    """Artifacts go where the run's (and the logged model's) creation said they go: MLflow's
    ``log_artifact`` would first re-read the whole run to find out (~10 ms a trial)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path, make = harness
    h, objective = make(optuna.pruners.NopPruner(), OBJECTIVES["ae"])
    reads = []

    def counting(name):
        read = getattr(SqlAlchemyStore, name)

        def counted(self, *args, **kwargs):
            reads.append(name)
            return read(self, *args, **kwargs)

        return counted

    for name in ("get_run", "get_logged_model"):
        monkeypatch.setattr(SqlAlchemyStore, name, counting(name))
    h.run(objective)
    monkeypatch.undo()
    assert reads == []
    _, client, _, (run,) = load(path, "ae-fashion-mnist")
    assert h.study.trials[0].state.name == "COMPLETE"
    run_id = run.info.run_id
    assert artifacts(client, run_id, "checkpoint") == ["checkpoint/model.pt"]
    assert artifacts(client, run_id, "pictures") == [
        "pictures/latent.png",
        "pictures/reconstructions.png",
    ]
    (model,) = client.search_logged_models([run.info.experiment_id])
    assert model.source_run_id == run_id
    files = {a.path for a in client.list_logged_model_artifacts(model.model_id)}
    assert {"MLmodel", "data", "requirements.txt"} <= files
