"""A finished trial's records, written from a thread while the worker's next trial trains."""

from __future__ import annotations

import threading
from collections.abc import Callable

from study.stores.disk import DiskFullError


class RecordWriter:
    """Writes a finished trial's records (checkpoint, logged model, pictures, the run's last
    batch, then Optuna's tell) from a thread while the worker's next trial trains, or, not
    ``background``, at the same point of the next trial in the worker's own thread.

    When is fixed, so a seeded study samples and prunes the same trials however long the
    records take: the writing starts once the next trial's parameters are all sampled
    (``release()``: the sampler saw the trial as RUNNING), and the next trial waits for it
    to end before its first epoch is reported (``wait()``: the pruner sees the trial as
    told). One trial at a time. Until it is told, the trial stays RUNNING with its heartbeat
    going, so a worker killed meanwhile leaves a trial that is retried, never a COMPLETE one
    without its checkpoint. ``flush()`` waits for the writes (the loop calls it before it
    waits or stops, on Ctrl-C too) and raises what stopped them (an outage past
    ``--outage-wait``).
    """

    def __init__(self, background: bool = True) -> None:
        self.background = background
        self.thread: threading.Thread | None = None
        self.job: Callable[[], None] | None = None
        self.go = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Write with ``job`` once released; waits for the last trial's records first."""
        self.flush()
        if not self.background:  # written by release(), in the caller's thread
            self.job = job
            return
        go = self.go = threading.Event()
        done = self.done = threading.Event()

        def write() -> None:
            try:
                go.wait()
                self._run(job)
            finally:
                done.set()

        self.thread = threading.Thread(target=write, name="trial-records", daemon=True)
        self.thread.start()

    @property
    def busy(self) -> bool:
        """Whether a trial's records are waiting to be written or being written."""
        return self.job is not None or self.thread is not None

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as e:  # noqa: BLE001 - raised by flush(), in the loop
            self.error = e

    def release(self) -> None:
        """The next trial is sampled (or none will be): start writing (``background``),
        or write now."""
        job, self.job = self.job, None
        if job is not None:
            self._run(job)
        self.go.set()

    def wait(self) -> None:
        """Until the records are written (what stopped them is raised by ``flush``)."""
        self.release()
        if self.thread is not None:
            # Not Thread.join(): a join that Ctrl-C interrupts marks the still-running thread
            # as ended (CPython before 3.13, bpo-45274), and the next join would not wait.
            self.done.wait()
            self.thread = None

    def settle(self) -> None:
        """``wait()``, then raise a full disk the writes met: the trial now training stops
        with it, rather than train on to the end into the same full disk."""
        self.wait()
        if isinstance(self.error, DiskFullError):
            self.flush()

    def flush(self) -> None:
        self.wait()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
