"""Workers ride out a restart of PostgreSQL or of the MLflow tracking server, and stop with a
line and exit code 75 when one stays away longer than --outage-wait (real servers)."""

import os
import subprocess
import sys
import threading
import time

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from tests.servers import mlflow_server, postgres, wait_until

pytestmark = pytest.mark.servers

# --epochs 4: the search picks 2 to 4 epochs, so every trial is caught mid-training for at
# least one epoch (with 1-epoch trials a study could finish before it was ever seen so).
ARGS = ["--objective", "ae", "--epochs", "4", "--limit-train", "3000", "--limit-val", "300"]
ARGS += ["--pruner", "none", "--heartbeat", "1", "--heartbeat-grace", "3", "--no-report"]
ARGS += ["--threads", "1", "--no-refit"]


@pytest.fixture
def servers(tmp_path):
    """PostgreSQL holding both stores (Optuna's and the MLflow server's), as deployed."""
    with (
        postgres() as pg,
        mlflow_server(f"{pg}/mlflow", tmp_path, serve_artifacts=True) as tracking,
    ):
        yield pg, tracking


class Worker:
    """``study.run`` in a directory of its own, its output collected line by line."""

    def __init__(self, cwd, storage, tracking, name, trials, *extra):
        cwd.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "study.run", *ARGS, "--trials", str(trials)]
        cmd += ["--study-name", name, "--storage", storage, "--tracking-uri", tracking, *extra]
        env = {**os.environ, "PYTHONPATH": os.getcwd(), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def wait(self, timeout=600) -> int:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


def training(storage: str, name: str, done: int):
    """True once ``done`` trials are complete and another has finished an epoch."""
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return complete >= done and any(
        t.state == TrialState.RUNNING and t.intermediate_values for t in trials
    )


def wait_mid_training(workers: list[Worker], storage: str, name: str) -> None:
    """Until a trial is complete and another mid-training; fails at once, with the workers'
    output, if they have all exited first."""

    def ready():
        return training(storage, name, 1) or all(w.proc.poll() is not None for w in workers)

    try:
        wait_until(ready, timeout=300, what="a trial mid-training")
    except TimeoutError as e:
        raise TimeoutError(f"{e}; the workers printed: {[w.output for w in workers]}") from None
    assert any(w.proc.poll() is None for w in workers), [w.output for w in workers]


def check_study(storage: str, tracking: str, name: str, trials: int, *, failed=0):
    study = optuna.load_study(study_name=name, storage=storage)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == trials
    reasons = [t.user_attrs.get("fail_reason") for t in study.trials if t.state == TrialState.FAIL]
    assert states.count(TrialState.FAIL) == failed, reasons
    assert TrialState.RUNNING not in states
    client = MlflowClient(tracking_uri=tracking)
    exp = client.get_experiment_by_name(name)
    runs = {r.info.run_id: r for r in client.search_runs([exp.experiment_id], max_results=100)}
    assert [r.info.run_name for r in runs.values() if r.info.status == "RUNNING"] == []
    for t in study.trials:
        if t.state != TrialState.COMPLETE:
            continue
        run_id = t.user_attrs["mlflow_run_id"]
        assert runs[run_id].info.status == "FINISHED"
        names = {a.path for a in client.list_artifacts(run_id, "checkpoint")}
        assert names == {"checkpoint/model.pt"}
        steps = [m.step for m in client.get_metric_history(run_id, "val_mse")]
        assert steps == list(range(1, len(t.intermediate_values) + 1))  # whole, no duplicates
    return study


def test_postgresql_restarted_mid_study_both_workers_wait_and_go_on(servers, tmp_path):
    pg, tracking = servers
    storage, name, trials = f"{pg}/optuna", "db-restart", 6
    workers = [Worker(tmp_path / f"w{i}", storage, tracking, name, trials) for i in (0, 1)]
    wait_mid_training(workers, storage, name)
    pg.stop()
    try:
        for w in workers:
            wait_until(lambda w=w: w.said("is unreachable"), timeout=120, what="waiting")
        # Down for longer than the grace period (3 s): nobody may be declared dead for it.
        time.sleep(8)
    finally:
        pg.start()
    codes = [w.wait() for w in workers]
    outputs = [w.output for w in workers]
    assert codes == [0, 0], outputs
    for out in outputs:
        assert "Traceback" not in out, out
        assert "waiting up to 300 s for it (--outage-wait), then going on" in out, out
        assert " is back after " in out, out
    check_study(storage, tracking, name, trials, failed=0)


def test_mlflow_server_restarted_mid_study_records_are_written_when_it_is_back(servers, tmp_path):
    pg, tracking = servers
    storage, name, trials = f"{pg}/optuna", "tracking-restart", 5
    workers = [Worker(tmp_path / f"w{i}", storage, tracking, name, trials) for i in (0, 1)]
    wait_mid_training(workers, storage, name)
    tracking.stop()
    try:
        wait_until(
            lambda: any(w.said("MLflow tracking server") for w in workers),
            timeout=120,
            what="a worker waiting for the tracking server",
        )
    finally:
        tracking.start()
    codes = [w.wait() for w in workers]
    assert codes == [0, 0], [w.output for w in workers]
    assert all("Traceback" not in w.output for w in workers)
    check_study(storage, tracking, name, trials, failed=0)


def test_an_outage_longer_than_the_wait_stops_workers_and_a_rerun_finishes(servers, tmp_path):
    pg, tracking = servers
    storage, name, trials = f"{pg}/optuna", "long-outage", 4
    extra = ["--outage-wait", "4"]
    workers = [Worker(tmp_path / f"w{i}", storage, tracking, name, trials, *extra) for i in (0, 1)]
    wait_mid_training(workers, storage, name)
    pg.stop()
    try:
        codes = [w.wait(timeout=300) for w in workers]
    finally:
        pg.start()
    assert codes == [75, 75], [w.output for w in workers]
    for w in workers:
        errors = [line for line in w.lines if line.startswith("error: ")]
        # The MLflow server keeps its runs in the same PostgreSQL: either may be named.
        assert len(errors) == 1, w.output
        assert "the Optuna storage postgresql://" in errors[0] or (
            f"the MLflow tracking server {tracking}" in errors[0]
        )
        assert "(--outage-wait 4); this worker stops" in errors[0]
        assert "re-run the same command" in errors[0] and "Traceback" not in w.output
    again = Worker(tmp_path / "w0", storage, tracking, name, trials)
    assert again.wait() == 0, again.output
    study = optuna.load_study(study_name=name, storage=storage)
    interrupted = [t for t in study.trials if t.state == TrialState.FAIL]
    assert interrupted, "the trials the outage interrupted are failed and retried"
    check_study(storage, tracking, name, trials, failed=len(interrupted))
    for t in interrupted:
        (retry,) = [r for r in study.trials if r.system_attrs.get("failed_trial") == t.number]
        assert retry.state == TrialState.COMPLETE
