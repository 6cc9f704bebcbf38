import pytest
import torch
import yaml

from models import flush_denormals
from objectives import TrialSpec
from study import export, run, train
from study.data import loading as data

from .conftest import TINY, run_study, stores
from .helpers import artifacts, load

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def check_study(path, name, n, metric):
    study, client, parents, runs = load(path, name)
    assert len(study.trials) == n
    assert len(parents) == 1
    assert len(runs) == n
    by_id = {r.info.run_id: r for r in runs}
    for trial in study.trials:
        r = by_id[trial.user_attrs["mlflow_run_id"]]
        assert r.info.run_name == f"trial-{trial.number}"
        assert r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert r.data.tags["optuna.trial_number"] == str(trial.number)
        assert r.data.tags["optuna.state"] == trial.state.name
        assert r.info.status == STATUS[trial.state.name]
        assert r.data.params["train.batch_size"] == str(
            trial.user_attrs["spec"]["train"]["batch_size"]
        )
        history = client.get_metric_history(r.info.run_id, f"val_{metric}")
        assert [h.step for h in history] == list(range(1, len(history) + 1))
        assert len(history) == len(trial.intermediate_values)
        assert {"train_loss", "val_loss", "epoch_time"} <= set(r.data.metrics)
        # The data it saw, as MLflow dataset inputs (the runs table's Dataset column).
        seen = {d.dataset.name: d for d in r.inputs.dataset_inputs}
        assert sorted(seen) == ["fashion-mnist-train", "fashion-mnist-val"]
        digest = data.digest_of("fashion-mnist")
        assert seen["fashion-mnist-val"].dataset.digest == data.split_digest(digest, "val", 200)
        assert seen["fashion-mnist-train"].tags[0].value == "training"
        # One vocabulary: Optuna's parameter names and the trial number, as MLflow params.
        for name, value in trial.params.items():
            assert r.data.params[name] == str(value)
        assert r.data.params["trial_number"] == str(trial.number)
        assert r.data.metrics["trial_number"] == trial.number
        assert {"mlflow.user", "mlflow.source.name"} <= set(r.data.tags)
        if trial.state.name == "COMPLETE":
            # Its model, logged to its run (mlflow.pytorch, with a signature).
            found = client.search_logged_models(
                [r.info.experiment_id], filter_string=f"source_run_id = '{r.info.run_id}'"
            )
            (logged,) = [m for m in found if m.name == "model"]  # the best's also has "encode"
            assert str(logged.status) in ("READY", "LoggedModelStatus.READY")
            assert history[-1].value == pytest.approx(trial.value)
            assert artifacts(client, r.info.run_id, "checkpoint") == ["checkpoint/model.pt"]
            assert "pictures/latent.png" in artifacts(client, r.info.run_id, "pictures")
    # The study run lists the same data, logged under the study lock as the study opened: so
    # workers starting their first trials at once link to the dataset rows, and none of them
    # fails creating a row another just created (UNIQUE constraint failed: datasets).
    study_data = {(d.dataset.name, d.dataset.digest) for d in parents[0].inputs.dataset_inputs}
    for r in runs:
        assert {(d.dataset.name, d.dataset.digest) for d in r.inputs.dataset_inputs} == study_data
    return study, client, parents, runs


@pytest.mark.parametrize("objective, metric", [("ae", "mse"), ("vae", "nelbo")])
def test_three_trial_study(tmp_path, objective, metric):
    assert run_study(tmp_path, "--trials", "3", "--objective", objective) == 0
    study, client, _, runs = check_study(tmp_path, f"{objective}-fashion-mnist", 3, metric)
    for r in runs:
        if r.info.status == "FINISHED":
            assert "pictures/reconstructions.png" in artifacts(client, r.info.run_id, "pictures")
    if objective == "vae":
        assert {"val_recon", "val_kl", "val_nelbo"} <= set(runs[0].data.metrics)


def test_three_trial_classifier_study(classifier_study):
    study, _, parents, runs = check_study(classifier_study, "classifier-fashion-mnist", 3, "acc")
    assert study.user_attrs["objective"] == "classifier"
    assert study.user_attrs["mlflow_parent_run_id"] == parents[0].info.run_id
    assert parents[0].info.status == "FINISHED"
    assert {"train_acc", "val_acc", "val_ce"} <= set(runs[0].data.metrics)


def test_rerun_continues_to_the_new_total_in_the_same_parent_run(study_copy, capsys):
    study, _, parents, _ = load(study_copy)
    assert run_study(study_copy, "--trials", "5") == 0
    assert "3 of 5 trials already finished" in capsys.readouterr().out
    study2, _, parents2, runs2 = check_study(study_copy, "classifier-fashion-mnist", 5, "acc")
    assert [p.info.run_id for p in parents2] == [parents[0].info.run_id]
    assert [t.number for t in study2.trials] == [0, 1, 2, 3, 4]
    # Already there: nothing runs, nothing is added.
    assert run_study(study_copy, "--trials", "4") == 0
    assert len(load(study_copy)[0].trials) == 5


def test_export_then_train_round_trips(study_copy, tmp_path, capsys):
    out = tmp_path / "best.yaml"
    assert export.main([*stores(study_copy), "--out", str(out)]) == 0
    cfg = yaml.safe_load(out.read_text())
    study, client, _, _ = load(study_copy)
    best = study.best_trial
    assert cfg["trial"] == best.number and cfg["value"] == pytest.approx(best.value)
    assert cfg["objective"] == "classifier" and cfg["dataset"] == "fashion-mnist"
    assert cfg["metric"] == "acc" and cfg["mlflow_run_id"] == best.user_attrs["mlflow_run_id"]
    assert cfg["checkpoint_uri"].endswith("checkpoint/model.pt")
    assert cfg["data_digest"] == data.digest_of("fashion-mnist")
    spec = TrialSpec.from_dict(cfg)
    assert spec == TrialSpec.from_dict(best.user_attrs["spec"])

    capsys.readouterr()
    assert (
        train.main(
            [
                "--config",
                str(out),
                "--from-checkpoint",
                "--tracking-uri",
                f"sqlite:///{study_copy}/mlflow.db",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "test acc = " in text
    test_acc = float(text.split("test acc = ")[1].split()[0])
    assert abs(test_acc - best.value) < 0.1  # 200 validation images vs 10k test images

    assert (
        train.main(
            [
                "--config",
                str(out),
                "--epochs",
                "1",
                "--limit-train",
                "500",
                "--tracking-uri",
                f"sqlite:///{study_copy}/mlflow.db",
            ]
        )
        == 0
    )
    assert "Retraining classifier" in capsys.readouterr().out
    _, client, _, _ = load(study_copy)
    exp = client.get_experiment_by_name("classifier-fashion-mnist")
    kinds = [r.data.tags.get("kind") for r in client.search_runs([exp.experiment_id])]
    assert kinds.count("retrain") == 1 and kinds.count("checkpoint") == 1


def test_export_as_json(study_copy, tmp_path):
    out = tmp_path / "best.json"
    assert export.main([*stores(study_copy), "--out", str(out), "--trial", "0"]) == 0
    import json

    assert json.loads(out.read_text())["trial"] == 0


@pytest.mark.parametrize(
    "main, options",
    [
        (
            run.main,
            [
                "--trials",
                "--objective",
                "--dataset",
                "--study-name",
                "--storage",
                "--tracking-uri",
                "--epochs",
                "--limit-train",
                "--limit-val",
                "--sampler",
                "--pruner",
                "--seed",
                "--device",
                "--timeout",
                "--data-dir",
            ],
        ),
        (export.main, ["--study-name", "--storage", "--tracking-uri", "--out", "--trial"]),
        (
            train.main,
            [
                "--config",
                "--from-checkpoint",
                "--epochs",
                "--limit-train",
                "--device",
                "--seed",
                "--tracking-uri",
            ],
        ),
    ],
)
def test_help_lists_every_option(main, options, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in options:
        assert option in text


def test_resuming_with_another_objective_is_refused(study_copy, capsys):
    code = run.main(
        [
            *TINY,
            *stores(study_copy),
            "--study-name",
            "classifier-fashion-mnist",
            "--objective",
            "ae",
            "--trials",
            "4",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "holds objective 'classifier'" in err and len(err.strip().splitlines()) == 1
    assert len(load(study_copy)[0].trials) == 3


def test_export_without_completed_trials_is_refused(tmp_path, capsys):
    import optuna

    optuna.create_study(
        study_name="classifier-fashion-mnist", storage=f"sqlite:///{tmp_path}/optuna.db"
    )
    assert export.main([*stores(tmp_path), "--out", str(tmp_path / "b.yaml")]) == 2
    assert "no completed trial" in capsys.readouterr().err
    assert not (tmp_path / "b.yaml").exists()


def test_timeout_stops_starting_trials_and_exits_zero(tmp_path, capsys):
    assert run_study(tmp_path, "--trials", "50", "--timeout", "0.001") == 0
    out = capsys.readouterr().out
    assert "Stopped: --timeout 0.001s reached." in out
    study, _, _, runs = load(tmp_path)
    # No trial started: the baseline, enqueued first, is still waiting (a resume runs it).
    assert [t.state.name for t in study.trials] == ["WAITING"] and runs == []


def test_a_study_flushes_subnormal_floats_before_it_trains(tmp_path):
    # Unflushed, Adam's decaying averages made the S2 epoch 1.5x slower (benchmark 1).
    torch.set_flush_denormal(False)
    try:
        assert run_study(tmp_path, "--trials", "1", "--timeout", "0.001") == 0
        assert float(torch.tensor([1e-39]) * 2) == 0.0
    finally:
        flush_denormals()  # as the suite runs (tests/conftest.py)


def test_train_warns_when_the_config_came_from_other_data(study_copy, tmp_path, capsys):
    out = tmp_path / "best.yaml"
    assert export.main([*stores(study_copy), "--out", str(out)]) == 0
    cfg = yaml.safe_load(out.read_text())
    cfg["data_digest"] = "000000000000"
    out.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    argv = ["--config", str(out), "--from-checkpoint", "--tracking-uri", "none"]
    assert train.main(argv) == 0
    err = capsys.readouterr().err
    assert "digest 000000000000" in err and data.digest_of("fashion-mnist") in err


def test_resuming_a_vae_study_scored_at_the_posterior_mean_warns(tmp_path, capsys):
    import optuna

    study = optuna.create_study(
        study_name="vae-fashion-mnist", storage=f"sqlite:///{tmp_path}/optuna.db"
    )
    study.add_trial(optuna.trial.create_trial(value=300.0))  # an older version's trial
    assert (
        run.main([*TINY, *stores(tmp_path), "--no-refit", "--objective", "vae", "--trials", "1"])
        == 0
    )
    assert "scored the negative ELBO at the posterior mean" in capsys.readouterr().err
    assert (
        "nelbo_estimator"
        not in optuna.load_study(
            study_name="vae-fashion-mnist", storage=f"sqlite:///{tmp_path}/optuna.db"
        ).user_attrs
    )  # it still is such a study: the warning stays


def test_the_tracking_uri_defaults_to_the_mlflow_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/from-env.db")
    argv = [*TINY, "--storage", f"sqlite:///{tmp_path}/optuna.db", "--trials", "1"]
    assert run.main([*argv, "--objective", "ae", "--no-report", "--no-refit"]) == 0
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/from-env.db")
    exp = client.get_experiment_by_name("ae-fashion-mnist")
    assert len(client.search_runs([exp.experiment_id])) == 2  # the parent and the trial
