"""The trial loop's machinery: a study-wide lock, heartbeats, and recovery of dead trials.

Several processes (``--workers``, or the same command in several shells, or several
machines) may work on one study. Each decides "start another trial?" and creates it while
holding the study's lock, so together they never start more than ``--trials``.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
import warnings
import zlib
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

MAX_RETRIES = 3
# Experimental since Optuna 2.8 but stable in practice; we use it as documented.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
RETRY = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES, inherit_intermediate_values=True)


@contextlib.contextmanager
def study_lock(storage_url: str, engine, name: str):
    """Exclusive lock over one study, across processes (and hosts, on PostgreSQL).

    ``engine``: a SQLAlchemy engine on the database server (``server_lock_engine``); unused
    for file stores, which are locked with ``flock`` beside the file.
    """
    path = None
    if storage_url.startswith("sqlite:///"):
        path = Path(storage_url[len("sqlite:///") :])
    elif storage_url.startswith("journal:"):
        path = Path(storage_url[len("journal:") :])
    if path is not None:
        lock = path.expanduser().with_name(path.name + ".lock")
        with open(lock, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return
    if storage_url.startswith("postgresql"):
        from sqlalchemy import text

        key = zlib.crc32(f"latent-study:{name}".encode())
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    yield  # in-memory storage: one process


def counts(study) -> dict[TrialState, int]:
    out = dict.fromkeys(TrialState, 0)
    for t in study.get_trials(deepcopy=False):
        out[t.state] += 1
    return out


def heartbeat_enabled(study) -> bool:
    storage = study._storage
    return getattr(storage, "get_heartbeat_interval", lambda: None)() is not None


def recover(study) -> list[int]:
    """Fail trials whose process died (stale heartbeat) and queue retries of them and of
    interrupted trials. Returns the numbers of the trials queued again."""
    before = {t.number for t in study.get_trials(deepcopy=False)}
    optuna.storages.fail_stale_trials(study)  # runs RETRY for each stale trial
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in RETRY.retry_history(t)}
    for t in trials:
        if (
            t.state == TrialState.FAIL
            and t.user_attrs.get("interrupted")
            and t.number not in retried
            and "spec" in t.user_attrs
        ):
            RETRY(study, t)
    return sorted(
        t.system_attrs["failed_trial"]
        for t in study.get_trials(deepcopy=False)
        if t.number not in before and "failed_trial" in t.system_attrs
    )


class Heartbeat:
    """Records the trial's heartbeat every ``interval`` seconds while training runs."""

    def __init__(self, study, trial_id: int):
        self.storage = study._storage
        self.trial_id = trial_id
        self.interval = self.storage.get_heartbeat_interval() if heartbeat_enabled(study) else None
        self.stop = threading.Event()
        self.thread = None

    def __enter__(self):
        if self.interval is not None:
            self.storage.record_heartbeat(self.trial_id)
            self.thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")
            self.thread.start()
        return self

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a missed beat is retried next interval
                self.storage.record_heartbeat(self.trial_id)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
