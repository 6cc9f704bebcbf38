"""Several workers on one study over PostgreSQL and an MLflow tracking server (real servers).

Each worker runs in its own working directory: nothing is shared but the two servers, as
on separate machines. Artifacts travel over HTTP (``mlflow server --serve-artifacts``). Both
servers want passwords, as shared deployments do: PostgreSQL with scram-sha-256, MLflow with
its basic-auth app; the credentials come from the environment (PGPASSWORD,
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD).
"""

import os
import signal
import subprocess
import sys

import optuna
import pytest
import torch
from mlflow import MlflowClient

from study.artifacts import checkpoint
from tests.servers import mlflow_server, postgres, wait_until

from .. import stall

pytestmark = pytest.mark.servers

TINY = ["--epochs", "2", "--limit-train", "300", "--limit-val", "200"]


DB_SECRET = "pg-Secret-4f7e91"
MLFLOW_SECRET = "mlflow-Secret-c2d5a8"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """PostgreSQL and an MLflow server, both with passwords given through the environment."""
    work = tmp_path_factory.mktemp("servers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGPASSWORD", DB_SECRET)
        mp.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        mp.setenv("MLFLOW_TRACKING_PASSWORD", MLFLOW_SECRET)
        with (
            postgres(password=DB_SECRET) as pg,
            mlflow_server(
                f"{pg}/mlflow", work, serve_artifacts=True, admin_password=MLFLOW_SECRET
            ) as url,
        ):
            yield {"pg": pg, "storage": f"{pg}/optuna", "tracking": url, "work": work}


@pytest.fixture(scope="module")
def cluster(servers):
    return servers["storage"], servers["tracking"]


def worker(cwd, storage, tracking, *args, refit=False):
    cwd.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "study.run", "--storage", storage, "--tracking-uri", tracking]
    return subprocess.Popen(
        [*cmd, "--objective", "ae", "--threads", "1", *([] if refit else ["--no-refit"]), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )


def finish(procs, timeout=300):
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        outs.append(out)
    return outs


def runs_by_trial(tracking, name):
    client = MlflowClient(tracking_uri=tracking)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return client, {
        int(r.data.tags["optuna.trial_number"]): r
        for r in runs
        if "optuna.trial_number" in r.data.tags
    }


def test_three_workers_share_one_study_and_artifacts_travel_over_http(cluster, tmp_path):
    storage, tracking = cluster
    name = "three-workers"
    args = [*TINY, "--trials", "7", "--study-name", name, "--heartbeat", "2"]
    procs = [worker(tmp_path / f"host{i}", storage, tracking, *args) for i in range(3)]
    outs = finish(procs)
    assert [p.returncode for p in procs] == [0, 0, 0], outs

    study = optuna.load_study(study_name=name, storage=storage)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == 7
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    client, runs = runs_by_trial(tracking, name)
    assert set(runs) == {t.number for t in study.trials}
    for t in study.trials:
        run = runs[t.number]
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # served, not a path
        assert len(client.get_metric_history(run.info.run_id, "val_mse")) >= 1
        if t.state.name == "COMPLETE":
            uri = f"runs:/{run.info.run_id}/checkpoint/model.pt"
            with checkpoint.fetched(uri, tracking_uri=tracking) as local:
                blob = torch.load(local, weights_only=True)
            assert not local.exists()  # the downloaded copy is not left behind
            assert blob["spec"] == t.user_attrs["spec"]
            names = {a.path for a in client.list_artifacts(run.info.run_id, "pictures")}
            assert "pictures/reconstructions.png" in names
    # No file of the study lives in a worker's directory: only the report each one wrote.
    for i in range(3):
        assert not list((tmp_path / f"host{i}").glob("**/*.db"))

    # Export, encode and retrain from a fourth "machine".
    other = tmp_path / "laptop"
    other.mkdir()
    common = {"cwd": other, "capture_output": True, "text": True, "timeout": 300}
    py = [sys.executable, "-m"]
    out = subprocess.run(
        [*py, "study.export", "--study-name", name, "--storage", storage]
        + ["--tracking-uri", tracking, "--out", "best.yaml"],
        **common,
    )
    assert out.returncode == 0, out.stderr
    out = subprocess.run(
        [*py, "study.encode", "--config", "best.yaml", "--limit", "20", "--out", "z.npz"],
        **common,
    )
    assert out.returncode == 0, out.stderr
    assert (other / "z.npz").is_file()
    out = subprocess.run(
        [*py, "study.train", "--config", "best.yaml", "--from-checkpoint"]
        + ["--tracking-uri", tracking],
        **common,
    )
    assert out.returncode == 0, out.stderr
    assert "test mse" in out.stdout


def test_a_worker_killed_mid_trial_is_retried_by_the_others(cluster, tmp_path):
    storage, tracking = cluster
    name = "killed-worker"
    # Trials of a few seconds, never pruned, so one can be caught mid-training.
    args = ["--epochs", "5", "--limit-train", "3000", "--limit-val", "300", "--pruner", "none"]
    args += ["--trials", "5", "--study-name", name, "--heartbeat", "1", "--snapshot-every", "0"]
    procs = [worker(tmp_path / f"host{i}", storage, tracking, *args) for i in range(3)]
    pids = {p.pid: p for p in procs}

    def running_trial_with_an_epoch():
        study = optuna.load_study(study_name=name, storage=storage)
        for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
            pid = int(t.user_attrs.get("worker", ":0").rsplit(":", 1)[1])
            if t.intermediate_values and pid in pids:
                return t.number, pid
        return None

    victim_trial, victim_pid = wait_until(running_trial_with_an_epoch, timeout=240, what="epoch")
    os.kill(victim_pid, signal.SIGKILL)
    outs = finish(procs)
    assert pids[victim_pid].returncode == -signal.SIGKILL
    others = [p for p in procs if p.pid != victim_pid]
    assert [p.returncode for p in others] == [0, 0], outs

    study = optuna.load_study(study_name=name, storage=storage)
    by_number = {t.number: t for t in study.trials}
    assert by_number[victim_trial].state.name == "FAIL"
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim_trial]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == by_number[victim_trial].params
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 5
    client, runs = runs_by_trial(tracking, name)
    assert runs[victim_trial].info.status == "FAILED"  # closed by a surviving worker
    retry_run = runs[retries[0].number]
    assert retry_run.info.status == "FINISHED"
    # The retry continued from the killed trial's last epoch, fetched over HTTP.
    assert retry_run.data.tags["resumed_from_trial"] == str(victim_trial)
    steps = [m.step for m in client.get_metric_history(retry_run.info.run_id, "val_mse")]
    assert sorted(steps) == [1, 2, 3, 4, 5]


def test_a_paused_worker_wakes_up_and_goes_on_over_postgresql(cluster, tmp_path):
    storage, tracking = cluster
    name, trials = "paused-worker", 5
    procs = [stall.start(tmp_path / f"host{i}", storage, tracking, name, trials) for i in (0, 1)]
    try:
        number, _ = stall.pause_one_until_taken_over(procs, storage, name)
        outs = finish(procs)
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs
    stall.check_takeover(storage, tracking, name, trials, number, outs)


def run_cli(cwd, module, *args, env=None, timeout=600):
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env or {**os.environ, "PYTHONPATH": os.getcwd()},
        timeout=timeout,
    )


def env_with(**changes):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for k, v in changes.items():
        env.pop(k, None) if v is None else env.__setitem__(k, v)
    return env


def test_wrong_or_missing_credentials_are_one_line_exit_2_and_write_nothing(servers, tmp_path):
    storage, tracking = servers["storage"], servers["tracking"]
    argv = [*TINY, "--objective", "ae", "--trials", "1", "--study-name", "refused"]
    argv += ["--storage", storage, "--tracking-uri", tracking]
    cases = [
        ({"PGPASSWORD": "wrong-secret-1"}, ["refused the credentials", "127.0.0.1", "PGPASSWORD"]),
        (
            {"MLFLOW_TRACKING_PASSWORD": "wrong-secret-2"},
            [f"MLflow tracking server '{tracking}' refused the credentials (401)",
             "MLFLOW_TRACKING_USERNAME"],
        ),
        (
            {"MLFLOW_TRACKING_USERNAME": None, "MLFLOW_TRACKING_PASSWORD": None},
            ["needs credentials (401)", "MLFLOW_TRACKING_PASSWORD"],
        ),
    ]  # fmt: skip
    for changes, needles in cases:
        r = run_cli(tmp_path, "study.run", *argv, env=env_with(**changes))
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, (r.stdout, r.stderr)
        for needle in needles:
            assert needle in lines[0], lines[0]
        assert "wrong-secret" not in r.stdout + r.stderr
    assert "refused" not in optuna.get_all_study_names(storage)
    assert MlflowClient(tracking_uri=tracking).get_experiment_by_name("refused") is None


def database_text(url: str) -> str:
    """Every row of every table of a database, as text."""
    import psycopg

    out = []
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        for (table,) in tables:
            out += [row[0] for row in conn.execute(f'SELECT CAST(t AS text) FROM "{table}" t')]
    return "\n".join(out)


def test_no_secret_lands_in_any_record(servers, tmp_path):
    """A study over each way of giving the database password (URL userinfo, URL query,
    PGPASSWORD) with the MLflow password from the environment, then export, report, encode
    and train from its records: neither password is in any store, file or output."""
    pg, tracking = servers["pg"], servers["tracking"]
    address = pg.split("@", 1)[1]
    forms = {
        "userinfo": (f"postgresql://postgres:{DB_SECRET}@{address}/optuna", {"PGPASSWORD": None}),
        "query": (f"{pg}/optuna?password={DB_SECRET}", {"PGPASSWORD": None}),
        "environment": (f"{pg}/optuna", {}),
    }
    outputs = []
    for form, (storage, changes) in forms.items():
        env, cwd = env_with(**changes), tmp_path / form
        common = ["--objective", "ae", "--study-name", f"secret-{form}", "--storage", storage]
        common += ["--tracking-uri", tracking]
        workers = ["--workers", "2"] if form == "userinfo" else []
        steps = [
            (
                "study.run",
                *TINY,
                "--trials",
                "3",
                "--threads",
                "1",
                "--no-refit",
                *common,
                *workers,
            ),
            ("study.export", *common, "--out", "best.yaml"),
        ]
        if form == "query":  # the rest reads the stores through the exported file (one
            # form is enough) or, like study.run, through the URL as given
            steps += [
                ("study.report", *common),
                ("study.encode", "--config", "best.yaml", "--limit", "10", "--out", "z.npz"),
                ("study.train", "--config", "best.yaml", "--from-checkpoint"),
            ]
        for module, *args in steps:
            r = run_cli(cwd, module, *args, env=env)
            assert r.returncode == 0, (module, r.stdout, r.stderr)
            outputs.append(r.stdout + r.stderr)
        assert (cwd / "mlruns" / "reports" / f"secret-{form}" / "report.html").is_file()
    haystacks = {f"output {i}": text for i, text in enumerate(outputs)}
    haystacks["optuna database"] = database_text(f"{pg}/optuna")
    haystacks["mlflow database"] = database_text(f"{pg}/mlflow")
    for root in (tmp_path, servers["work"]):
        for path in root.rglob("*"):
            if path.is_file() and path.name != "basic-auth.ini":  # the test server's own config
                haystacks[str(path)] = path.read_bytes().decode("latin-1")
    assert any("secret-environment" in text for text in haystacks.values())  # it did look
    for secret in (DB_SECRET, MLFLOW_SECRET):
        found = [where for where, text in haystacks.items() if secret in text]
        assert found == [], f"{secret} found in {found}"


def test_two_machines_ending_one_study_refit_it_once(cluster, tmp_path):
    """Two workers on PostgreSQL and an MLflow server end the same study at about the same
    time: the refit lock (a PostgreSQL advisory lock) lets one refit, the other finds it done."""
    storage, tracking = cluster
    name = "refit-once"
    args = [*TINY, "--trials", "4", "--study-name", name, "--heartbeat", "2",
            "--refit-limit", "600"]  # fmt: skip
    procs = [worker(tmp_path / f"host{i}", storage, tracking, *args, refit=True) for i in (0, 1)]
    outs = finish(procs)
    assert [p.returncode for p in procs] == [0, 0], outs
    client = MlflowClient(tracking_uri=tracking)
    exp = client.get_experiment_by_name(name)
    refits = client.search_runs([exp.experiment_id], "tags.kind = 'refit'")
    assert [r.info.status for r in refits] == ["FINISHED"], outs
    study = optuna.load_study(study_name=name, storage=storage)
    assert study.user_attrs["refit"]["run_id"] == refits[0].info.run_id
    version = client.get_model_version_by_alias(f"{name}-encoder", "best")
    assert version.run_id == refits[0].info.run_id
