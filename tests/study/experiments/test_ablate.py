"""study.ablate: one factor varied on a trial's configuration, every level x seed run once,
resumable after kill -9, its table the runs' own numbers."""

import signal
import sqlite3
import statistics
import subprocess
import sys
import time

import optuna
import pytest

from study import ablate, run
from study.experiments.cells import CELLS_ATTR

from ..conftest import TINY, stores
from ..helpers import load
from ..test_bad_input import _assert_refused

ABLATE = [*TINY, "--epochs", "1", "--seeds", "2"]
NAME = "classifier-fashion-mnist-ablate-freeze"


def _cells(path, name=NAME):
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{path}/optuna.db")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    return study, [t.user_attrs["cell"]["name"] for t in done]


def test_freeze_ablation_runs_each_level_and_seed_once_and_tabulates_the_runs(study_copy, capsys):
    assert ablate.main(["--factor", "freeze", *ABLATE, *stores(study_copy)]) == 0
    out = capsys.readouterr().out
    study, names = _cells(study_copy)
    planned = [c["name"] for c in study.user_attrs[CELLS_ATTR]]
    assert len(planned) == 8  # frozen, finetune, joint, scratch x 2 seeds
    assert sorted(names) == sorted(planned)
    # Each run is an MLflow run named after its cell, under one parent in the study's
    # experiment; the table's means are the means of the runs' logged values.
    source, client, parents, runs = load(study_copy)
    cell_runs = {r.info.run_name: r for r in runs if r.info.run_name.startswith("ablate-")}
    assert set(cell_runs) == set(planned)
    assert len({r.data.tags["mlflow.parentRunId"] for r in cell_runs.values()}) == 1
    report = study_copy / "reports" / source.study_name / "ablate-freeze.md"
    text = report.read_text()
    assert text in out.replace("\r", "")
    for level in ("frozen", "finetune", "joint", "scratch"):
        logged = [
            r.data.metrics["objective_value"]
            for name, r in cell_runs.items()
            if name.startswith(f"ablate-freeze-{level}-")
        ]
        row = next(line for line in text.splitlines() if line.startswith(f"| {level}"))
        assert row.split("|")[2].strip() == f"{statistics.fmean(logged):.4f}", row
    assert "**Verdict:**" in text
    parent = study.user_attrs["mlflow_parent_run_id"]
    assert "ablate-freeze.md" in [a.path for a in client.list_artifacts(parent)]
    # Run again: nothing to do, the same table.
    assert ablate.main(["--factor", "freeze", *ABLATE, *stores(study_copy)]) == 0
    assert sorted(_cells(study_copy)[1]) == sorted(planned)


def _completed_cells(path):
    try:
        db = sqlite3.connect(f"file:{path}/optuna.db?mode=ro", uri=True, timeout=10)
        try:
            (n,) = db.execute(
                "SELECT COUNT(*) FROM trials t JOIN studies s ON t.study_id = s.study_id "
                "WHERE s.study_name = ? AND t.state = 'COMPLETE'",
                (NAME,),
            ).fetchone()
        finally:
            db.close()
        return n
    except sqlite3.OperationalError:
        return 0


def test_an_ablation_killed_mid_way_resumes_without_redoing_finished_cells(study_copy):
    cmd = [sys.executable, "-m", "study.ablate", "--factor", "freeze", *ABLATE]
    cmd += [*stores(study_copy), "--heartbeat", "1"]  # the killed run is retried 3 s later
    proc = subprocess.Popen(cmd, cwd=study_copy, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _completed_cells(study_copy) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no cell completed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    study, before = _cells(study_copy)
    finished = {
        t.number: t.user_attrs["cell"]["name"] for t in study.trials if t.state.name == "COMPLETE"
    }
    r = subprocess.run(
        cmd,
        cwd=study_copy,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr, r.stderr  # no library noise on the console
    study, after = _cells(study_copy)
    assert sorted(after) == sorted(c["name"] for c in study.user_attrs[CELLS_ATTR])
    assert len(after) == len(set(after)) == 8  # every cell completed exactly once
    for number, name in finished.items():  # finished cells were kept, not run again
        assert study.trials[number].state.name == "COMPLETE"
        assert study.trials[number].user_attrs["cell"]["name"] == name


@pytest.fixture(scope="module")
def ae_study(tmp_path_factory):
    path = tmp_path_factory.mktemp("ae")
    assert run.main([*TINY, *stores(path), "--no-refit", "--objective", "ae", "--trials", "2"]) == 0
    return path


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--factor", "bogus"], ["--factor 'bogus'", "freeze"]),
        (["--factor", "freeze", "--objective", "ae"], ["--factor freeze", "factors that do"]),
        (["--factor", "freeze", "--seeds", "1"], ["--seeds 1", "at least 2"]),
        (["--factor", "freeze", "--levels", "frozen,melted"], ["--levels", "finetune"]),
        # the ae study's best trial has a latent size (the classifier's may be the baseline
        # CNN, which has none)
        (
            ["--factor", "latent", "--levels", "1", "--objective", "ae"],
            ["--levels", "latent sizes"],
        ),
        (["--factor", "freeze", "--trial", "99"], ["--trial 99", "COMPLETE"]),
        (["--factor", "freeze", "--study-name", "nope"], ["'nope'", "--study-name"]),
    ],
)
def test_bad_ablations_are_refused(ae_study, study_copy, capsys, extra, needles):
    path = ae_study if "ae" in extra else study_copy
    _assert_refused(ablate.main, [*ABLATE, *stores(path), *extra], path, capsys, *needles)


def test_a_study_without_a_completed_trial_is_refused(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="classifier-fashion-mnist", storage=storage)
    study.enqueue_trial({})
    argv = ["--factor", "freeze", *ABLATE, *stores(tmp_path)]
    _assert_refused(ablate.main, argv, tmp_path, capsys, "no completed trial")
