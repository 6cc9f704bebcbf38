"""Crashes, interrupts and bad trials lose nothing (real processes, real stores)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest
import torch

from study import run
from study.execution.scheduler import MAX_FAILURES_IN_A_ROW

from ..conftest import stores
from ..helpers import Harness, artifacts, load

NAME = "ae-fashion-mnist"
MLP = {
    "ae.recon_loss": "mse",
    "ae.arch": "mlp",
    "ae.activation": "relu",
    "ae.mlp.layers": 1,
    "ae.mlp.width0": 32,
    "ae.latent_dim": 4,
    "train.optimizer": "adam",
    "train.adam.lr": 1e-3,
    "train.batch_size": 256,
    "train.epochs": 3,
}
# Slow enough (several seconds) to be caught mid-trial.
SLOW = {
    **MLP,
    "ae.arch": "conv",
    "ae.conv.stages": 2,
    "ae.conv.ch0": 32,
    "ae.conv.ch1": 64,
    "ae.conv.downsample": "maxpool",
    "ae.conv.batch_norm": True,
    "ae.conv.fc_bottleneck": False,
    "train.batch_size": 64,
    "train.epochs": 6,
}
ARGS = [
    "--no-refit",
    "--objective",
    "ae",
    "--trials",
    "3",
    "--epochs",
    "6",
    "--limit-train",
    "1500",
    "--limit-val",
    "200",
    "--pruner",
    "none",
    "--heartbeat",
    "1",
    "--snapshot-every",  # resume snapshots after every epoch: a killed trial resumes
    "0",
]


def _prepare(path, *enqueued):
    study = optuna.create_study(study_name=NAME, storage=f"sqlite:///{path}/optuna.db")
    for params in enqueued:
        study.enqueue_trial(params)


# ``python -m study.run`` with Ctrl-C's usual meaning even where this test process was started
# with SIGINT ignored (a background job of a non-interactive shell is), which a child
# would otherwise inherit.
RUN_WITH_SIGINT = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'study.run'; runpy.run_module('study.run', run_name='__main__')"
)


def _start(path, *extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-c", RUN_WITH_SIGINT, *ARGS, *stores(path), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=path,
    )


def _epochs_of_running_trial(path, number):
    db = sqlite3.connect(f"file:{path}/optuna.db?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute(
            "SELECT trial_id, state FROM trials WHERE number = ?", (number,)
        ).fetchone()
        if row is None or row[1] != "RUNNING":
            return -1
        (n,) = db.execute(
            "SELECT COUNT(*) FROM trial_intermediate_values WHERE trial_id = ?", (row[0],)
        ).fetchone()
        return n
    except sqlite3.OperationalError:  # not created yet, or locked for a moment
        return -1
    finally:
        db.close()


def _wait_for_epochs(proc, path, number, epochs, limit=240):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if _epochs_of_running_trial(path, number) >= epochs:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"trial {number} never reached epoch {epochs}: {proc.communicate()}")


def _finish(path):
    result = subprocess.run(
        [sys.executable, "-m", "study.run", *ARGS, *stores(path)],
        capture_output=True,
        text=True,
        cwd=path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _check_retry(path, failed_number, min_epoch):
    study, client, parents, runs = load(path, NAME)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == 3
    assert states[failed_number] == "FAIL"
    by_id = {r.info.run_id: r for r in runs}
    assert all(r.info.status != "RUNNING" for r in runs)
    failed = by_id[study.trials[failed_number].user_attrs["mlflow_run_id"]]
    assert failed.info.status == "FAILED" and failed.data.tags["optuna.state"] == "FAIL"
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == failed_number]
    assert retry.state.name == "COMPLETE" and retry.params == study.trials[failed_number].params
    retry_run = by_id[retry.user_attrs["mlflow_run_id"]]
    assert retry_run.info.status == "FINISHED"
    phase, _, epoch = retry_run.data.tags["resumed_after"].split()
    assert phase == "train" and int(epoch) >= min_epoch
    steps = [m.step for m in client.get_metric_history(retry_run.info.run_id, "val_mse")]
    assert steps == list(range(1, 7))  # the whole curve, restored + new epochs
    for t in study.trials:
        if t.state.name == "COMPLETE":
            run_id = t.user_attrs["mlflow_run_id"]
            assert artifacts(client, run_id, "checkpoint") == ["checkpoint/model.pt"]
    return study


def test_sigkill_mid_trial_then_rerun_resumes_and_ends_with_exact_total(tmp_path):
    _prepare(tmp_path, MLP, SLOW)
    proc = _start(tmp_path)
    _wait_for_epochs(proc, tmp_path, 1, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(3.5)  # the dead trial's heartbeat goes stale (3 x --heartbeat 1)
    out = _finish(tmp_path)
    assert "queued again (their process stopped or was interrupted): trials [1]" in out
    _check_retry(tmp_path, 1, min_epoch=3)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_closes_the_trial_in_both_stores_and_rerun_continues(tmp_path, sig):
    _prepare(tmp_path, MLP, SLOW)
    proc = _start(tmp_path)
    _wait_for_epochs(proc, tmp_path, 1, 2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert err.strip().splitlines()[-1] == (
        "Interrupted: finished trials are saved; re-run the same command to continue."
    )
    study, client, parents, runs = load(tmp_path, NAME)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]
    assert study.trials[1].user_attrs["interrupted"] is True
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    assert parents[0].info.status == "KILLED"
    _finish(tmp_path)
    _check_retry(tmp_path, 1, min_epoch=2)


def test_cuda_out_of_memory_fails_the_trial_and_the_study_goes_on(tmp_path, small, monkeypatch):
    from objectives import OBJECTIVES, Objective

    harness = Harness(tmp_path, small)
    calls = []

    def release():
        calls.append("empty_cache")

    monkeypatch.setattr(torch.cuda, "empty_cache", release)

    def oom(trial, *, max_epochs):
        OBJECTIVES["ae"].suggest(trial, max_epochs=max_epochs)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    first = harness.run(Objective("ae", "minimize", "mse", oom, "oom"))
    second = harness.run(OBJECTIVES["ae"])
    assert (first.state, second.state) == ("FAIL", "COMPLETE")
    assert calls == ["empty_cache"]
    t0 = harness.study.trials[0]
    assert "CUDA out of memory" in t0.user_attrs["fail_reason"]
    _, client, _, runs = load(tmp_path, NAME)
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert len(failed) == 1 and "CUDA out of memory" in failed[0].data.tags["fail_reason"]
    assert "traceback.txt" in artifacts(client, failed[0].info.run_id)


def test_many_failures_in_a_row_stop_the_study(tmp_path, monkeypatch, capsys):
    import objectives
    from objectives import Objective

    def broken(trial, *, max_epochs):
        trial.suggest_int("x", 0, 10)
        raise ValueError("this objective is broken")

    monkeypatch.setitem(
        objectives.OBJECTIVES, "ae", Objective("ae", "minimize", "mse", broken, "broken")
    )
    code = run.main([*ARGS, *stores(tmp_path), "--trials", "20"])
    assert code == 1
    out = capsys.readouterr().out
    assert f"Stopped: {MAX_FAILURES_IN_A_ROW} trials failed in a row" in out
    study, _, _, runs = load(tmp_path, NAME)
    assert len(study.trials) == MAX_FAILURES_IN_A_ROW
    assert all(r.info.status == "FAILED" for r in runs)
