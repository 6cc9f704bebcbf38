"""Several processes on one study: exact total, unique trial numbers, every run tracked."""

import multiprocessing
import subprocess
import sys

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput

from study.tracking.records import log_inputs

from ..conftest import TINY, stores
from ..helpers import load

# Heartbeats every 2 s (more writes contending for the stores), but a trial is only taken
# over after 60 s of silence: a worker starved on a busy machine is not a failure here.
ARGS = [
    *TINY,
    "--no-refit",
    "--objective",
    "ae",
    "--trials",
    "6",
    "--heartbeat",
    "2",
    "--heartbeat-grace",
    "60",
]


def _check(path, output):
    assert "database is locked" not in output
    study, client, parents, runs = load(path, "ae-fashion-mnist")
    numbers = [t.number for t in study.trials]
    seen = [(t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in study.trials]
    assert sorted(numbers) == list(range(6)), (seen, output)
    assert [t.state.name for t in study.trials].count("FAIL") == 0, (seen, output)
    assert len(parents) == 1
    assert sorted(r.data.tags["optuna.trial_number"] for r in runs) == [str(n) for n in numbers]
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED"}
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {r.info.run_id for r in runs}
    # MLflow's context tags, as its fluent API would set them (this is a git checkout).
    for r in runs:
        assert r.data.tags["mlflow.source.name"].endswith("study/run.py")
        assert len(r.data.tags["mlflow.source.git.commit"]) == 40


def test_workers_option_runs_the_study_in_parallel(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "study.run", *ARGS, *stores(tmp_path), "--workers", "3"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    workers = {
        line.split("]")[0] for line in result.stdout.splitlines() if line.startswith("[worker")
    }
    assert len(workers) >= 2  # the trials really were shared out
    assert "6 finished trials" in result.stdout
    _check(tmp_path, result.stdout + result.stderr)


def test_same_command_in_two_shells(tmp_path):
    cmd = [sys.executable, "-m", "study.run", *ARGS, *stores(tmp_path)]
    procs = [
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    _check(tmp_path, "".join(outputs))


def _log_new_data_at_once(uri, barrier, rounds):
    """Each round: a new run logs a dataset no run has logged yet, all processes at once."""
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("race").experiment_id
    for k in range(rounds):
        run = client.create_run(experiment)
        data = Dataset(name=f"data-{k}", digest=f"{k:08x}", source_type="local", source="{}")
        barrier.wait()
        try:
            log_inputs(client, run.info.run_id, [DatasetInput(data)])
        except BaseException:
            barrier.abort()  # the others stop waiting for this process (BrokenBarrierError)
            raise
    return rounds


def test_processes_logging_the_same_new_data_at_once_all_record_it(tmp_path):
    # The first to insert the dataset row wins; the others' inserts fail (UNIQUE constraint
    # failed: a third of these calls, measured) and log_inputs' second try links to the row.
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(tracking_uri=uri).create_experiment("race", artifact_location=str(tmp_path))
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager, spawn.Pool(3) as pool:
        barrier = manager.Barrier(3)
        done = pool.starmap(_log_new_data_at_once, [(uri, barrier, 8)] * 3, chunksize=1)
    assert done == [8, 8, 8]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
    assert len(runs) == 24
    assert all(len(r.inputs.dataset_inputs) == 1 for r in runs)
