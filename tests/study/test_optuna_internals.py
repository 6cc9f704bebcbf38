"""The Optuna internals the harness relies on (``study/optuna_internals.py``) still exist and
behave as used: an Optuna upgrade that renames one fails here, loudly, not in a study."""

import time

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import TrialState

from study import optuna_internals as internals


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
