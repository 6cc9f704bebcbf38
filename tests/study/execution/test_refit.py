"""The refit: a finished study's best configuration retrained on the training data, scored
once on the test split, logged as its own MLflow run and registered as ``@best`` (real
stores, tiny models, a small refit slice)."""

import os
import signal
import sqlite3
import subprocess
import sys

import optuna
import pytest
from mlflow import MlflowClient

from study import run
from study.execution.refit import REFIT_ATTR
from study.search.results import best_trial

from ..conftest import TINY, stores
from ..helpers import wait_for

NAME = "ae-fashion-mnist"
AE = [*TINY, "--objective", "ae", "--refit-limit", "600"]


def refit_runs(path, status=None):
    client = MlflowClient(tracking_uri=f"sqlite:///{path}/mlflow.db")
    exp = client.get_experiment_by_name(NAME)
    runs = client.search_runs([exp.experiment_id], "tags.kind = 'refit'", max_results=100)
    return client, [r for r in runs if status is None or r.info.status == status]


def study_of(path):
    return optuna.load_study(study_name=NAME, storage=f"sqlite:///{path}/optuna.db")


def test_a_finished_study_is_refit_once_logged_and_registered_as_best(tmp_path, capsys):
    assert run.main([*AE, *stores(tmp_path), "--trials", "3"]) == 0
    out = capsys.readouterr().out
    study = study_of(tmp_path)
    best = best_trial(study)
    refit = study.user_attrs[REFIT_ATTR]
    assert refit["trial"] == best.number and refit["candidates"] == [best.number]
    assert refit["images"] == 600 and refit["seed"] == 0 and refit["held_out"] is None
    assert refit["epochs"] == 2 * best.user_attrs["spec"]["train"]["epochs"]  # the default rule
    assert 0 < refit["test"]["mse"] < 1
    client, runs = refit_runs(tmp_path)
    assert len(runs) == 1
    r = runs[0]
    assert r.info.status == "FINISHED" and r.info.run_name == f"refit-trial-{best.number}"
    parent = client.get_run(best.user_attrs["mlflow_run_id"]).data.tags["mlflow.parentRunId"]
    assert r.data.tags["mlflow.parentRunId"] == parent
    assert r.data.tags["source_run_id"] == best.user_attrs["mlflow_run_id"]
    assert r.data.metrics["test_mse"] == refit["test"]["mse"] and "train_loss" in r.data.metrics
    assert not any(k.startswith("val_") for k in r.data.metrics)
    assert [a.path for a in client.list_artifacts(r.info.run_id, "checkpoint")] == [
        "checkpoint/model.pt"
    ]
    assert r.data.params["images"] == "600" and r.data.params["seed"] == "0"
    at_best = client.get_model_version_by_alias(f"{NAME}-encoder", "best")
    at_trial = client.get_model_version_by_alias(f"{NAME}-encoder", "best-trial")
    assert at_best.run_id == r.info.run_id
    assert at_trial.run_id == best.user_attrs["mlflow_run_id"]
    line = f"test mse = {refit['test']['mse']:.4f} -> models:/{NAME}-encoder@best"
    assert f"Refit of trial {best.number} on 600 images" in out and line in out
    report = (tmp_path / "reports" / NAME / "report.md").read_text()
    assert f"test mse = {refit['test']['mse']:.4f}, against the best trial's validation" in report

    # The same command again: nothing to do, no second refit.
    assert run.main([*AE, *stores(tmp_path), "--trials", "3"]) == 0
    assert "Nothing to do" in capsys.readouterr().out
    assert len(refit_runs(tmp_path)[1]) == 1
    # More trials: a refit again only if the best changed.
    assert run.main([*AE, *stores(tmp_path), "--trials", "5"]) == 0
    changed = best_trial(study_of(tmp_path)).number != best.number
    assert len(refit_runs(tmp_path)[1]) == (2 if changed else 1)
    assert study_of(tmp_path).user_attrs[REFIT_ATTR]["trial"] == best_trial(study).number


def test_no_refit_registers_the_best_trial_as_best(tmp_path, capsys):
    assert run.main([*AE, *stores(tmp_path), "--trials", "2", "--no-refit"]) == 0
    assert "Refit" not in capsys.readouterr().out
    assert REFIT_ATTR not in study_of(tmp_path).user_attrs
    client, runs = refit_runs(tmp_path)
    assert runs == []
    at_best = client.get_model_version_by_alias(f"{NAME}-encoder", "best")
    at_trial = client.get_model_version_by_alias(f"{NAME}-encoder", "best-trial")
    assert at_best.version == at_trial.version


def test_refit_top_k_picks_on_validation_and_tests_only_the_pick(tmp_path):
    assert run.main([*AE, *stores(tmp_path), "--trials", "3", "--pruner", "none",
                     "--refit-top", "2", "--refit-epochs", "1"]) == 0  # fmt: skip
    refit = study_of(tmp_path).user_attrs[REFIT_ATTR]
    assert refit["epochs"] == 1
    assert len(refit["candidates"]) == 2 and refit["trial"] in refit["candidates"]
    assert set(refit["held_out"]) >= {"mse"}
    _, runs = refit_runs(tmp_path, "FINISHED")
    assert len(runs) == 2
    picked = [r for r in runs if r.data.tags.get("refit_picked") == "true"]
    assert len(picked) == 1 and picked[0].data.tags["optuna.trial_number"] == str(refit["trial"])
    assert all(("test_mse" in r.data.metrics) == (r in picked) for r in runs)
    assert all("heldout_val_mse" in r.data.metrics for r in runs)
    held = {r.data.tags["optuna.trial_number"]: r.data.metrics["heldout_val_mse"] for r in runs}
    assert held[str(refit["trial"])] == min(held.values())  # mse: lower is better


def complete_trials(db) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_kill_during_the_refit_leaves_the_study_and_the_next_run_refits(tmp_path):
    # S4's conv autoencoder refit on all 60,000 images takes long enough to be caught.
    argv = [*TINY, "--objective", "ae", "--trials", "1", "--epochs", "1", "--no-baseline",
            "--enqueue-seeds", "s4-conv-ae-fc", *stores(tmp_path)]  # fmt: skip
    # (--threads only in the child: in this process it would stay set for later tests)
    proc = subprocess.Popen([sys.executable, "-m", "study.run", *argv, "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        # Read the Optuna store with sqlite3 until its trial is COMPLETE (opening either store
        # with its library while the study creates it would race its schema migration);
        # both stores exist by then, and the refit follows.
        wait_for(lambda: complete_trials(tmp_path / "optuna.db") == 1, "a complete trial", proc)
        wait_for(lambda: refit_runs(tmp_path, "RUNNING")[1], "a running refit", proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    study = study_of(tmp_path)
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    assert REFIT_ATTR not in study.user_attrs
    # The next run (the study is full) refits, closing the killed refit's run first.
    assert run.main([*argv, "--refit-limit", "600"]) == 0
    assert study_of(tmp_path).user_attrs[REFIT_ATTR]["images"] == 600
    client, runs = refit_runs(tmp_path)
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]
    killed = [r for r in runs if r.info.status == "KILLED"][0]
    assert "stopped mid-refit" in killed.data.tags["refit_error"]
    at_best = client.get_model_version_by_alias(f"{NAME}-encoder", "best")
    assert at_best.run_id == [r for r in runs if r.info.status == "FINISHED"][0].info.run_id


def test_two_processes_ending_one_study_refit_it_once(tmp_path):
    argv = [*AE, *stores(tmp_path), "--trials", "4", "--threads", "1", "--heartbeat", "2",
            "--heartbeat-grace", "60"]  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "study.run", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    _, runs = refit_runs(tmp_path)
    assert [r.info.status for r in runs] == ["FINISHED"], outs
    assert sum("Refit of trial" in o and "test mse" in o for o in outs) >= 1


def test_a_classifier_studys_report_sets_its_refit_beside_published_figures(tmp_path):
    argv = [*TINY, "--trials", "1", "--epochs", "1", "--refit-limit", "600", *stores(tmp_path)]
    assert run.main(argv) == 0
    name = "classifier-fashion-mnist"
    acc = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/optuna.db").user_attrs[
        REFIT_ATTR
    ]["test"]["acc"]
    report = (tmp_path / "reports" / name / "report.md").read_text()
    section = report.split("## Against published figures")[1]
    assert f"test accuracy **{acc:.4f}**" in section
    assert "an MLP 256-128-64: about 0.90" in section and "zalandoresearch" in section


def test_bad_refit_values_are_one_line_and_exit_2(tmp_path, capsys):
    for option, bad in (("--refit-top", "0"), ("--refit-epochs", "-2"), ("--refit-limit", "-1")):
        with pytest.raises(SystemExit) as stop:  # argparse's exit, as from the shell
            run.main([*AE, *stores(tmp_path), "--trials", "1", option, bad])
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and option in err[0] and bad in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_a_study_run_with_workers_is_refit_once_by_the_process_that_started_them(tmp_path):
    argv = [*AE, *stores(tmp_path), "--trials", "4", "--workers", "2", "--heartbeat", "2",
            "--heartbeat-grace", "60"]  # fmt: skip
    assert run.main(argv) == 0
    _, runs = refit_runs(tmp_path)
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert study_of(tmp_path).user_attrs[REFIT_ATTR]["run_id"] == runs[0].info.run_id
