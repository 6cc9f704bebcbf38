"""A finished trial's records are written while the next trial trains (``--records
background``, the default on a GPU), and that loses nothing: a worker killed meanwhile leaves
the trial to be retried (never COMPLETE without its checkpoint); Ctrl-C waits for the
records. Either way (``inline``, the default on a CPU, too) every trial is sampled before
the last is told. Real processes, real stores."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from ..conftest import stores
from ..execution.test_reliability import ARGS, MLP, NAME, SLOW, _finish, _prepare
from ..helpers import artifacts, load

# study.run whose trial pictures (the last records before the run is closed and the trial
# told) announce themselves in $MARKER and then wait for $RELEASE to exist.
HELD_RECORDS = """
import os, pathlib, runpy, signal, sys, time
import study.tracking.runs as tracking
marker, release = pathlib.Path(os.environ["MARKER"]), pathlib.Path(os.environ["RELEASE"])
pictures = tracking.TrialRun._pictures
def held(self, tmp):
    if not marker.exists():
        marker.write_text(str(self.trial.number))
        while not release.exists():
            time.sleep(0.05)
    return pictures(self, tmp)
tracking.TrialRun._pictures = held
if os.environ.get("WAITING"):  # announce when the next trial starts waiting for the records
    import study.tracking.writer as writer
    waiting, wait = pathlib.Path(os.environ["WAITING"]), writer.RecordWriter.wait
    def announced(self):
        if self.thread is not None and marker.exists():
            waiting.touch()
        return wait(self)
    writer.RecordWriter.wait = announced
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.argv[0] = "study.run"
runpy.run_module("study.run", run_name="__main__")
"""


def _start_held(path, **extra):
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        MARKER=str(path / "writing"),
        RELEASE=str(path / "release"),
        **extra,
    )
    return subprocess.Popen(
        [sys.executable, "-c", HELD_RECORDS, *ARGS, *stores(path), "--records", "background"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=path,
    )


def _wait_for(proc, condition, what, limit=300):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the worker exited before {what}: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"never saw {what}: {proc.communicate()}")


def _state(path, number):
    """Trial ``number``'s state, read from the Optuna store alone: polling the MLflow store
    too, while the worker writes to it, could fail on a busy machine ("database is locked")
    and leave the worker holding its records for ever."""
    from sqlalchemy.exc import OperationalError

    try:
        study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{path}/optuna.db")
        trials = study.get_trials(deepcopy=False)
    except OperationalError:  # locked for a moment: not seen yet
        return None
    return trials[number].state if number < len(trials) else None


@pytest.fixture
def reap():
    """Kills, after the test, the workers it started and left running (a failed assertion
    would otherwise leave one holding its records for ever)."""
    started = []
    yield started.append
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _held_while_the_next_trains(path, reap, **extra):
    """A worker holding a finished trial's records while its next trial trains: (the
    process, the number of the trial whose records are held)."""
    _prepare(path, MLP, SLOW)
    proc = _start_held(path, **extra)
    reap(proc)
    marker = path / "writing"
    _wait_for(proc, marker.exists, "a finished trial's records being written")
    number = int(marker.read_text())
    _wait_for(proc, lambda: _state(path, number + 1) is not None, "the next trial")
    return proc, number


def test_a_worker_killed_while_writing_a_trials_records_leaves_it_to_be_retried(tmp_path, reap):
    proc, number = _held_while_the_next_trains(tmp_path, reap)
    # Its records are not all written: Optuna has not been told, the next trial trains.
    assert _state(tmp_path, number) == TrialState.RUNNING
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _finish(tmp_path)  # waits for the silent trials' heartbeats to go stale, retries them
    study, client, _, runs = load(tmp_path, NAME)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 3
    killed = study.trials[number]
    assert killed.state == TrialState.FAIL
    assert killed.user_attrs["fail_reason"].startswith("no heartbeat from ")
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert all(r.info.status != "RUNNING" for r in runs)
    by_id = {r.info.run_id: r for r in runs}
    assert by_id[killed.user_attrs["mlflow_run_id"]].info.status == "FAILED"
    for t in study.trials:
        if t.state == TrialState.COMPLETE:  # never without its checkpoint and pictures
            run_id = t.user_attrs["mlflow_run_id"]
            assert by_id[run_id].info.status == "FINISHED"
            assert artifacts(client, run_id, "checkpoint") == ["checkpoint/model.pt"]
            assert "pictures/latent.png" in artifacts(client, run_id, "pictures")


@pytest.mark.parametrize("when", ["while the next trial trains", "while it waits for them"])
def test_ctrl_c_waits_for_the_finished_trials_records(tmp_path, when, reap):
    waiting = tmp_path / "waiting"
    extra = {"WAITING": str(waiting)} if "waits" in when else {}
    proc, number = _held_while_the_next_trains(tmp_path, reap, **extra)
    if extra:  # its first epoch done, the next trial waits to report it (a GPU's usual case)
        _wait_for(proc, waiting.exists, "the next trial waiting for the records")
    proc.send_signal(signal.SIGINT)
    # The trial that was training is recorded as interrupted; the process then waits for
    # the records still being written (held until now) instead of leaving them behind.
    _wait_for(proc, lambda: _state(tmp_path, number + 1) == TrialState.FAIL, "the interrupt")
    assert _state(tmp_path, number) == TrialState.RUNNING
    (tmp_path / "release").touch()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out, err)
    study, client, parents, runs = load(tmp_path, NAME)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    run_id = study.trials[number].user_attrs["mlflow_run_id"]
    assert {r.info.run_id: r for r in runs}[run_id].info.status == "FINISHED"
    assert artifacts(client, run_id, "checkpoint") == ["checkpoint/model.pt"]
    assert "pictures/latent.png" in artifacts(client, run_id, "pictures")
    assert parents[0].info.status == "KILLED"


def _asked_before_the_last_was_told(study):
    trials = study.get_trials(deepcopy=False)
    return [
        b.datetime_start < a.datetime_complete for a, b in zip(trials[:-1], trials[1:], strict=True)
    ]


def test_each_trial_is_sampled_before_the_last_is_told_however_records_are_written(
    classifier_study, tmp_path
):
    """The order that makes a seeded study sample the same trials however long records
    take (the tracked study: ``classifier_study``; here the same study untracked)."""
    from ..conftest import TINY

    study, *_ = load(classifier_study, "classifier-fashion-mnist")
    assert all(_asked_before_the_last_was_told(study))
    from study import run

    storage = f"sqlite:///{tmp_path}/optuna.db"
    argv = [*TINY, "--trials", "3", "--storage", storage, "--tracking-uri", "none"]
    assert run.main([*argv, "--no-report", "--no-refit"]) == 0
    untracked = optuna.load_study(study_name="classifier-fashion-mnist", storage=storage)
    assert all(_asked_before_the_last_was_told(untracked))
    assert [t.params for t in untracked.trials] == [t.params for t in study.trials]
    assert [t.values for t in untracked.trials] == [t.values for t in study.trials]
    # Records written from a thread beside training (the default on a GPU): the same.
    assert run.main([*TINY, "--no-refit", "--trials", "3", *stores(tmp_path / "bg"), "--records", "background",
                     "--no-report"]) == 0  # fmt: skip
    background, *_ = load(tmp_path / "bg", "classifier-fashion-mnist")
    assert all(_asked_before_the_last_was_told(background))
    assert [t.params for t in background.trials] == [t.params for t in study.trials]
    assert [t.values for t in background.trials] == [t.values for t in study.trials]


def test_pictures_that_fail_are_said_once_tagged_on_every_run_and_the_study_goes_on(
    tmp_path, monkeypatch, capsys
):
    from study.tracking import pictures

    from ..conftest import run_study

    def broken(*args, **kwargs):
        raise RuntimeError("Expected all tensors to be on the same device")

    monkeypatch.setattr(pictures, "latent_scatter", broken)
    assert run_study(tmp_path, "--objective", "ae", "--trials", "3", "--pruner", "none") == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, notes
    assert "pictures could not be written" in notes[0] and "same device" in notes[0]
    study, client, _, runs = load(tmp_path, NAME)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    for r in runs:
        assert r.data.tags["pictures_error"].startswith("RuntimeError: Expected all tensors")
        assert artifacts(client, r.info.run_id, "checkpoint") == ["checkpoint/model.pt"]
