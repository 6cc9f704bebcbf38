"""Several processes on one study: exact total, unique trial numbers, every run tracked."""

import subprocess
import sys

from .conftest import TINY, stores
from .helpers import load

ARGS = [*TINY, "--objective", "ae", "--trials", "6", "--heartbeat", "2"]


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
