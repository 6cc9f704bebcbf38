"""The few Optuna internals the harness needs, each in one place with the reason why.

Everything else goes through Optuna's public API. ``tests/study/stores/test_optuna_internals.py``
fails loudly if an Optuna upgrade renames or removes one of these.
"""

from __future__ import annotations

import optuna
from optuna.storages import BaseStorage

# Why: Optuna turns heartbeats on only for storages that are instances of this class; the
# harness's ResilientStorage wraps an RDB storage and must keep them on.
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "FINISHED",
    "BaseHeartbeat",
    "StudyView",
    "cached",
    "current",
    "heartbeat_interval",
    "save_dashboard_note",
    "stale_trial_ids",
]


def cached(storage: BaseStorage) -> BaseStorage:
    """An RDB storage behind Optuna's cache of finished trials, as ``optuna.create_study``
    builds it from a URL (other storages unchanged).

    Why: Optuna wraps an ``RDBStorage`` in ``_CachedStorage`` only when it is handed the
    storage itself; the harness hands it a ``ResilientStorage`` around one, and without the
    cache every ``get_all_trials`` re-reads every trial from the database. TPE reads them once
    per parameter group (constant liar turns its own cache off) and the pruner once per
    report: ~4.5 s of every trial by the 100th trial of the default study on SQLite.
    Finished trials never change, so the cache reads only the unfinished ones again.
    (``optuna.storages.get_storage`` is public but documented "only for internal usage".)
    """
    from optuna.storages import get_storage  # wraps an RDBStorage in _CachedStorage

    return get_storage(storage)


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage object.

    Why: heartbeats (``record_heartbeat``) and reading one trial's current state by id
    (``get_trial``) are storage methods; ``Study`` has no public accessor for its storage.
    """
    return study._storage


def trial_id(trial: optuna.Trial) -> int:
    """The storage id of an asked trial (storage methods take ids, not numbers).

    Why: to record heartbeats for it and to re-read its state while it trains.
    """
    return trial._trial_id


NOTE_CHUNK = 2045  # optuna-dashboard's SYSTEM_ATTR_MAX_LENGTH


def save_dashboard_note(trial: optuna.Trial, body: str) -> None:
    """A new trial's note, stored as ``optuna_dashboard.save_note`` stores a first one:
    version 1 in the study system attribute ``dashboard:<trial id>:note_ver``, the text in
    ``dashboard:<trial id>:note_str:<i>``, chunks of 2,045 characters.

    Why not ``save_note`` itself: importing optuna-dashboard imports scikit-learn (through
    Optuna's fANOVA importance, ~0.75 s for every worker process), and each save re-reads
    every study system attribute twice, two more for each trial of the study. A trial's note
    is written once, when it starts, so there is no earlier version to count or clear.
    """
    storage, study_id = storage_of(trial.study), trial.study._study_id
    prefix = f"dashboard:{trial_id(trial)}:"
    storage.set_study_system_attr(study_id, prefix + "note_ver", 1)
    for i, start in enumerate(range(0, max(len(body), 1), NOTE_CHUNK)):
        storage.set_study_system_attr(
            study_id, f"{prefix}note_str:{i}", body[start : start + NOTE_CHUNK]
        )


def current(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial:
    """The trial as the storage holds it now (another worker may have failed it)."""
    return storage_of(study).get_trial(trial_id(trial))


def stale_trial_ids(study: optuna.Study) -> list[int]:
    """Ids of RUNNING trials whose heartbeat is older than the storage's grace period.

    Why: ``optuna.storages.fail_stale_trials`` fails them without a way to say why; the
    harness records the reason (``no heartbeat from host:pid ...``) on each trial first.
    """
    storage = storage_of(study)
    if heartbeat_interval(study) is None:
        return []
    return storage._get_stale_trial_ids(study._study_id)


def heartbeat_interval(study: optuna.Study) -> int | None:
    """Seconds between heartbeats, or None where the storage has none (memory, journal)."""
    get = getattr(storage_of(study), "get_heartbeat_interval", None)
    return get() if get is not None else None


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class StudyView:
    """A study as a sampler should see it: without the trials ``hide`` picks.

    Why private: Optuna's samplers read a study's trials through ``Study._get_trials``; the
    view filters there (everything else is the study's own).
    """

    def __init__(self, study: optuna.Study, hide):
        self._study, self._hide = study, hide

    def __getattr__(self, name: str):
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False):
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return [t for t in trials if not self._hide(t)]

    def get_trials(self, deepcopy: bool = True, states=None):
        return [
            t for t in self._study.get_trials(deepcopy=deepcopy, states=states) if not self._hide(t)
        ]

    @property
    def trials(self):
        return self.get_trials()
