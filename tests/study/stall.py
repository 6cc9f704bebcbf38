"""A worker paused (SIGSTOP) in the middle of a trial until another worker takes the trial
over, then woken (SIGCONT): shared by the SQLite and PostgreSQL tests."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import optuna
from mlflow import MlflowClient
from optuna.trial import TrialState

from tests.servers import wait_until

ARGS = ["--objective", "ae", "--epochs", "4", "--limit-train", "3000", "--limit-val", "300"]
ARGS += ["--pruner", "none", "--heartbeat", "1", "--heartbeat-grace", "4", "--no-report"]
ARGS += [
    "--device",
    "cpu",
    "--no-refit",
]  # on a GPU a trial ends before a poller can catch it mid-epoch


def start(cwd, storage: str, tracking: str, name: str, trials: int) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "study.run", *ARGS, "--trials", str(trials)]
    cmd += ["--study-name", name, "--storage", storage, "--tracking-uri", tracking]
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [*cmd, "--threads", "1"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def sqlite_locked(files) -> bool:
    """Whether a (paused) process holds the write lock of one of these SQLite files."""
    for path in files:
        con = sqlite3.connect(path, timeout=0)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.rollback()
        except sqlite3.OperationalError:
            return True
        finally:
            con.close()
    return False


def pause_mid_epoch(procs, storage: str, name: str, sqlite_files=()) -> tuple[int, int]:
    """SIGSTOP a worker right after its trial reported an epoch, while it trains. A process
    stopped inside a SQLite write would hold the database's lock (no worker could go on,
    on a real machine too): then it is woken and paused again at its next epoch."""
    pids = {p.pid for p in procs}

    def epochs():
        study = optuna.load_study(study_name=name, storage=storage)
        out = {}
        for t in study.get_trials(deepcopy=False, states=[TrialState.RUNNING]):
            pid = int(t.user_attrs.get("worker", ":0").rsplit(":", 1)[1])
            if pid in pids:
                out[t.number] = (pid, len(t.intermediate_values))
        return out

    for _ in range(20):
        seen = wait_until(epochs, timeout=300, what="a running trial")

        def next_epoch(seen=seen):
            now = epochs()
            done = [(n, pid) for n, (pid, k) in now.items() if k > seen.get(n, (0, 0))[1]]
            return done[0] if done else None

        number, pid = wait_until(next_epoch, timeout=300, what="an epoch reported")
        os.kill(pid, signal.SIGSTOP)
        if not sqlite_locked(sqlite_files):
            return number, pid
        os.kill(pid, signal.SIGCONT)
    raise AssertionError("never caught a worker outside a SQLite write")


def pause_one_until_taken_over(procs, storage: str, name: str, sqlite_files=()):
    """SIGSTOP the worker of a trial that is training, wait (on the store) until another
    worker fails that trial, SIGCONT it; (trial number, paused pid)."""
    number, pid = pause_mid_epoch(procs, storage, name, sqlite_files)
    try:

        def taken_over():
            study = optuna.load_study(study_name=name, storage=storage)
            return study.trials[number].state == TrialState.FAIL

        wait_until(taken_over, timeout=300, what=f"trial {number} failed by the other worker")
    finally:
        os.kill(pid, signal.SIGCONT)
    return number, pid


def check_takeover(storage: str, tracking: str, name: str, trials: int, number: int, outs):
    """Exact total, the paused trial FAIL with its reason, its retry COMPLETE, no MLflow
    run left RUNNING, the paused run FAILED as taken over, one line and no traceback."""
    study = optuna.load_study(study_name=name, storage=storage)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == trials
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    paused = study.trials[number]
    assert paused.state == TrialState.FAIL
    assert paused.user_attrs["fail_reason"].startswith("no heartbeat from ")
    assert paused.user_attrs["worker"] in paused.user_attrs["fail_reason"]
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == number]
    assert retry.state == TrialState.COMPLETE and retry.params == paused.params
    assert "fail_reason" not in retry.user_attrs  # the retry's own record starts clean
    client = MlflowClient(tracking_uri=tracking)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    by_id = {r.info.run_id: r for r in runs}
    paused_run = by_id[paused.user_attrs["mlflow_run_id"]]
    assert paused_run.info.status == "FAILED"
    assert paused_run.data.tags["taken_over"].startswith("taken over: no heartbeat for ")
    # The other worker may close it first with the trial's reason; either is a true account.
    reason = paused_run.data.tags["fail_reason"]
    assert reason.startswith(("taken over: no heartbeat for ", "no heartbeat from ")), reason
    assert by_id[retry.user_attrs["mlflow_run_id"]].info.status == "FINISHED"
    text = "\n".join(outs)
    assert "Traceback" not in text, text
    # The paused worker may hold two trials: one whose records wait to be written while
    # the next one trains (records are written at a fixed point of the next trial). Each
    # trial it held is then taken over, and said so once.
    lines = [line for line in text.splitlines() if "taken over" in line]
    taken = [int(line.split()[1]) for line in lines]
    assert number in taken and len(taken) == len(set(taken)) <= 2, text
    for n, line in zip(taken, lines, strict=True):
        assert line.startswith(f"trial {n:>4}  taken over: no heartbeat for "), text
        assert study.trials[n].state == TrialState.FAIL, text
