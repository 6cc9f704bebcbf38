"""Scheduling: the ask/tell loop under the study lock, heartbeats, and recovery of trials
whose process died or stalled.

Several processes (``--workers``, the same command in several shells, several machines)
may work on one study. Each decides "start another trial?" and creates it while holding the
study's lock, so together they never start more than ``--trials``.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from study.experiments import cells
from study.search.results import best_trial, countable
from study.stores import optuna_internals as internals
from study.stores.disk import DiskFullError

MAX_RETRIES = 3
MAX_FAILURES_IN_A_ROW = 5
# A retry starts afresh: these describe the attempt that failed, not the parameters.
NOT_INHERITED = ("fail_reason", "interrupted", "worker", "mlflow_run_id", "time")


def counts(study: optuna.Study) -> dict[TrialState, int]:
    """Trials per state, of the trials that count towards ``--trials``."""
    out = dict.fromkeys(TrialState, 0)
    for t in study.get_trials(deepcopy=False):
        if countable(t):
            out[t.state] += 1
    return out


def finished(c: dict[TrialState, int]) -> int:
    return c[TrialState.COMPLETE] + c[TrialState.PRUNED]


def retry_history(trial: FrozenTrial) -> list[int]:
    """Numbers of the earlier attempts at this trial's parameters, oldest first."""
    return list(trial.system_attrs.get("retry_history", []))


def queue_retry(study: optuna.Study, failed: FrozenTrial) -> bool:
    """Queue ``failed``'s parameters again (at most ``MAX_RETRIES`` times per parameters).

    The same record as Optuna's ``RetryHeartbeatStaleTrialCallback`` (``failed_trial``,
    ``retry_history``), so studies retried by either read alike; the reported epochs are
    inherited so the retry's curve is whole.
    """
    history = [*retry_history(failed), failed.number]
    if len(history) > MAX_RETRIES:
        return False
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=failed.params,
            distributions=failed.distributions,
            user_attrs={k: v for k, v in failed.user_attrs.items() if k not in NOT_INHERITED},
            system_attrs={
                **failed.system_attrs,
                "failed_trial": history[0],
                "retry_history": history,
            },
            intermediate_values=failed.intermediate_values,
        )
    )
    return True


def first_attempt(trial: FrozenTrial) -> int:
    """The number of the first attempt at this trial's parameters (itself if none before)."""
    return (retry_history(trial) or [trial.number])[0]


def fail_silent_trials(study: optuna.Study, grace: int) -> list[int]:
    """Fail RUNNING trials without a heartbeat for ``grace`` seconds, saying so on each,
    and queue their parameters again; the first attempts' numbers of those queued."""
    storage = internals.storage_of(study)
    queued = []
    for trial_id in internals.stale_trial_ids(study):
        trial = storage.get_trial(trial_id)
        who = trial.user_attrs.get("worker", "an unknown worker")
        # Another worker may finish or fail it meanwhile: then it is no longer ours to fail.
        with contextlib.suppress(UpdateFinishedTrialError):
            storage.set_trial_user_attr(
                trial_id, "fail_reason", f"no heartbeat from {who} for {grace} s"
            )
            if storage.set_trial_state_values(trial_id, TrialState.FAIL):
                failed = storage.get_trial(trial_id)
                if queue_retry(study, failed):
                    queued.append(first_attempt(failed))
    return queued


def recover(study: optuna.Study, grace: int, *, settled: bool = True) -> list[int]:
    """Fail silent trials and queue retries of them and of interrupted ones; the numbers
    of the trials queued again. ``settled=False`` (this worker's database was away within
    the grace period) leaves silent trials be: their workers were cut off too. The caller
    holds the study lock, so no other worker queues retries meanwhile."""
    queued = fail_silent_trials(study, grace) if settled else []
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in retry_history(t)}
    for t in trials:
        if (
            t.state == TrialState.FAIL
            and t.user_attrs.get("interrupted")
            and t.number not in retried
            and "spec" in t.user_attrs
            and queue_retry(study, t)
        ):
            queued.append(first_attempt(t))
    return sorted(queued)


class Heartbeat:
    """Records a running trial's heartbeat every interval from a thread while it trains.

    A beat that fails, or comes late because the process was paused or starved of CPU, is
    said once per trial (``say``); ``longest_gap`` is the longest silence seen, in seconds.
    """

    def __init__(
        self, study: optuna.Study, trial: optuna.Trial, say: Callable[[str], None], grace: float
    ):
        """``grace``: the seconds of silence after which another worker takes the trial over."""
        self.storage = internals.storage_of(study)
        self.trial_id = internals.trial_id(trial)
        self.number = trial.number
        self.interval = internals.heartbeat_interval(study)
        self.say, self.grace = say, grace
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        # The last recorded beat, by both clocks: the monotonic one stops while the machine
        # sleeps, the wall clock (what other workers judge a heartbeat's age by) does not.
        self.last_ok, self.last_ok_wall = time.monotonic(), time.time()
        self.longest_gap = 0.0
        self.said: set[str] = set()
        self.stopped: DiskFullError | None = None  # a full disk: the trial's guard raises it

    def __enter__(self) -> Heartbeat:
        if self.interval is not None:
            self.beat()
            self.thread = threading.Thread(target=self._run, daemon=True, name="heartbeat")
            self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        gap = self._since_last()
        self.longest_gap = max(self.longest_gap, gap)
        if gap > 2 * self.interval + 1 and "failed" not in self.said:  # paused, not cut off
            self._once(
                "late",
                f"warning: trial {self.number}: no heartbeat for {gap:.0f} s (the process "
                "was paused or starved of CPU, or the machine slept; see --heartbeat-grace)",
            )
        try:
            self.storage.record_heartbeat(self.trial_id)
        except DiskFullError as e:  # said by the worker as it stops
            self.stopped = e
            return
        except Exception as e:  # noqa: BLE001 - retried next interval
            self._once(
                "failed",
                f"warning: trial {self.number}: a heartbeat failed ({type(e).__name__}); "
                f"retrying every {self.interval} s",
            )
            return
        self.last_ok, self.last_ok_wall = time.monotonic(), time.time()

    def _since_last(self) -> float:
        return max(time.monotonic() - self.last_ok, time.time() - self.last_ok_wall)

    def silence(self) -> float:
        """The longest time this trial went without a recorded heartbeat, in seconds."""
        return max(self.longest_gap, self._since_last())

    def on_time(self) -> bool:
        """Whether every beat was recorded well within the grace period (silence below half
        of it): then no other worker can have taken the trial over."""
        return self.interval is not None and self.silence() < self.grace / 2

    def _once(self, kind: str, line: str) -> None:
        if kind not in self.said:
            self.said.add(kind)
            self.say(line)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


class Progress:
    """What the loop tells the user; the console implementation lives in ``run``."""

    def finished(self, n: int, queued: list[int]) -> None: ...

    def trial(self, outcome, best) -> None: ...


class StopKind(enum.Enum):
    """Why a process's loop stopped; the exit code follows from the kind, not the words."""

    FULL = "full"  # the study holds --trials finished trials
    TIMEOUT = "timeout"  # --timeout reached: a stop the user asked for
    LEFT = "left"  # the last trials run elsewhere, with no heartbeats to wait on them by
    FAILURES = "failures"  # trials failed in a row
    CELLS_FAILED = "cells failed"  # an experiment's cells failed ATTEMPTS times each
    WORKER_FAILED = "worker failed"  # a --workers process exited with an error


@dataclass(frozen=True)
class Stop:
    """A loop's stop: its kind, and the sentence printed after "Stopped:" (none when full)."""

    kind: StopKind
    text: str = ""

    @property
    def failed(self) -> bool:
        """Whether the stop is a failure (exit code 1), not the end the user asked for."""
        return self.kind in (StopKind.FAILURES, StopKind.CELLS_FAILED, StopKind.WORKER_FAILED)


FULL = Stop(StopKind.FULL)


def next_trial(session, progress: Progress, *, started: float, first: bool):
    """(an asked trial, None), (None, a ``Stop``), or (None, None): wait."""
    settings, study = session.settings, session.study
    with session.lock():
        queued = recover(study, settings.grace, settled=session.settled())
        if session.tracker is not None and (queued or first):
            session.tracker.mirror(study)  # close runs a dead process left RUNNING
        c = counts(study)
        progress.finished(min(finished(c), settings.trials), queued)
        if finished(c) >= settings.trials:
            return None, FULL
        if settings.timeout is not None and time.monotonic() - started >= settings.timeout:
            return None, Stop(StopKind.TIMEOUT, f"--timeout {settings.timeout:g}s reached")
        if finished(c) + c[TrialState.RUNNING] >= settings.trials:
            return None, None
        if cells.is_experiment(study) and not cells.next_cell(study):  # it never samples
            if c[TrialState.RUNNING]:
                return None, None
            return None, Stop(
                StopKind.CELLS_FAILED,
                f"cells failed {cells.ATTEMPTS} times each; see their fail_reason",
            )
        return study.ask(), None


class Tally:
    """Trials as they end, from the loop or from the thread that writes a finished trial's
    records: one line each, and the count of failures in a row that stops a worker."""

    def __init__(self, progress: Progress, study: optuna.Study):
        self.progress, self.study = progress, study
        self.failures_in_a_row = 0
        self.lock = threading.Lock()

    def add(self, outcome) -> None:
        with self.lock:
            self.progress.trial(outcome, best_trial(self.study))
            self.failures_in_a_row = self.failures_in_a_row + 1 if outcome.state == "FAIL" else 0


def work(session, run_one: Callable, tally: Tally, writer=None):
    """Start trials until the study holds ``--trials`` finished ones; why it stopped.

    ``run_one(trial, ask_seconds)`` runs one asked trial; it returns its ``Outcome``, or None
    where ``writer`` (a ``RecordWriter``) writes the trial's records while the next trial
    trains (``tally.add`` gets the outcome then).
    """
    settings = session.settings
    flush = writer.flush if writer is not None else (lambda: None)
    started = time.monotonic()
    first = True
    while True:
        asking = time.perf_counter()
        trial, stop = next_trial(session, tally.progress, started=started, first=first)
        first = False
        if stop is not None:
            flush()
            return stop
        if trial is None:
            if writer is not None and writer.busy:  # this worker's last trial: record it
                flush()
                continue
            # The last trials run elsewhere. Wait for them: if their process dies, their
            # heartbeat stops and this worker retries them. Without heartbeats, leave.
            if internals.heartbeat_interval(session.study) is None:
                return Stop(StopKind.LEFT)
            time.sleep(min(2.0, settings.heartbeat))
            continue
        outcome = run_one(trial, time.perf_counter() - asking)
        if outcome is not None:
            tally.add(outcome)
        if tally.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            flush()
            return Stop(
                StopKind.FAILURES,
                f"{tally.failures_in_a_row} trials failed in a row; see their fail_reason in "
                "MLflow or the study's trial attributes",
            )
