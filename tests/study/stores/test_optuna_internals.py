"""The Optuna internals the harness relies on (``study/optuna_internals.py``) still exist and
behave as used: an Optuna upgrade that renames one fails here, loudly, not in a study."""

import time

import optuna
import pytest
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import TrialState

from study.stores import optuna_internals as internals


def test_the_private_attributes_are_still_there():
    assert hasattr(RDBStorage, "_get_stale_trial_ids"), "Optuna removed _get_stale_trial_ids"
    study = optuna.create_study()
    trial = study.ask()
    assert isinstance(internals.storage_of(study), BaseStorage)
    assert isinstance(internals.trial_id(trial), int)
    assert isinstance(study._study_id, int)
    assert internals.current(study, trial).number == trial.number
    assert internals.heartbeat_interval(study) is None  # in memory: no heartbeats
    assert internals.stale_trial_ids(study) == []


def test_a_silent_trial_is_reported_stale_after_the_grace_period(tmp_path):
    storage = RDBStorage(f"sqlite:///{tmp_path}/o.db", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    storage.record_heartbeat(internals.trial_id(trial))
    assert internals.heartbeat_interval(study) == 1
    deadline = time.monotonic() + 60
    while internals.stale_trial_ids(study) != [internals.trial_id(trial)]:  # the store decides
        assert time.monotonic() < deadline, "the trial never went stale"
        time.sleep(0.2)
    # Reading its state by id sees another process's change (here: failed behind its back).
    storage.set_trial_state_values(internals.trial_id(trial), TrialState.FAIL)
    assert internals.current(study, trial).state == TrialState.FAIL


def test_the_harness_reads_finished_trials_once_and_unfinished_ones_each_time(tmp_path):
    """``open_storage`` puts Optuna's cache of finished trials in front of the database (as
    ``optuna.create_study(storage=URL)`` does); another process's changes to trials that are
    not finished still show, and finished trials are not fetched again."""
    from optuna.storages import _CachedStorage

    from study.stores.locations import open_storage, parse_storage

    url = f"sqlite:///{tmp_path}/o.db"
    storage = open_storage(parse_storage(url), heartbeat=60)
    assert isinstance(storage, _CachedStorage)
    study = optuna.create_study(study_name="s", storage=storage)
    for _ in range(3):
        study.tell(study.ask(), 1.0)
    running = study.ask()
    other = RDBStorage(url)  # another worker's connection
    other.set_trial_state_values(internals.trial_id(running), TrialState.FAIL)
    assert internals.current(study, running).state == TrialState.FAIL
    assert [t.state for t in study.get_trials()][-1] == TrialState.FAIL

    fetched = []
    backend = storage._backend
    read = backend._get_trials

    def spy(*args, **kwargs):  # the real read, noting which trials it returned
        trials = read(*args, **kwargs)
        fetched.extend(t.number for t in trials)
        return trials

    backend._get_trials = spy
    other_study = optuna.load_study(study_name="s", storage=other)
    other_study.tell(other_study.ask(), 2.0)  # a trial this worker has not seen yet
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE] * 3 + [TrialState.FAIL, TrialState.COMPLETE]
    assert fetched == [4]  # only the new trial came from the database
    study.get_trials()
    assert fetched == [4]  # and nothing again: every trial is finished


@pytest.mark.parametrize("length", [80, 2045, 5000], ids=["short", "one chunk", "three chunks"])
def test_a_trials_note_reads_back_in_the_installed_optuna_dashboard(tmp_path, length):
    """The note is written in optuna-dashboard's own format without importing it: its
    reader, and a user editing the note in it afterwards, see the same note."""
    import optuna_dashboard

    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/optuna.db")
    first, trial = study.ask(), study.ask()
    body = ("MLflow run [trial-1](http://127.0.0.1:5000/#/experiments/1/runs/ab) " * 80)[:length]
    internals.save_dashboard_note(trial, body)
    assert optuna_dashboard.get_note(trial) == body
    assert optuna_dashboard.get_note(first) == ""  # another trial's note is its own
    optuna_dashboard.save_note(trial, "edited in the dashboard")
    assert optuna_dashboard.get_note(trial) == "edited in the dashboard"
