"""Riding out a server outage: a database restart, a managed failover, an MLflow server that
is redeployed. Calls to the Optuna storage and the MLflow tracking server that fail for want
of the server are retried with backoff (SQLAlchemy replaces the dead pooled connections);
the worker says once that it is waiting and for how long, and goes on when the server is
back. Past ``--outage-wait`` it stops with ``OutageError`` (exit code 75): nothing finished
is lost, and re-running the same command retries the interrupted trial from its last snapshot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from study.stores.disk import as_disk_full, disk_full

EXIT_OUTAGE = 75  # EX_TEMPFAIL: try again later
# Words of the errors a client gets while its server is away (or restarting).
UNREACHABLE = (
    "connection refused", "could not connect", "connection reset", "server closed the connection",
    "terminating connection", "connection is closed", "the database system is starting up",
    "the database system is shutting down", "max retries exceeded", "connection aborted",
    "remote end closed", "temporarily unavailable", "database is locked", "error code 502",
    "error code 503", "error code 504", "502 bad gateway", "503 service", "504 gateway", "timed out", "broken pipe", "ssl syscall error", "no route to host", "name or service not known",
)  # fmt: skip


class OutageError(Exception):
    """A server stayed unreachable for longer than ``--outage-wait``."""

    def __init__(self, server: str, seconds: float, wait: float, *, locked: bool = False):
        self.server, self.seconds = server, seconds
        state, back = ("locked by another process", "free") if locked else ("unreachable", "back")
        super().__init__(
            f"{server} has been {state} for {seconds:.0f} s (--outage-wait {wait:g}); this "
            f"worker stops. Nothing finished is lost: re-run the same command once it is {back} "
            "(the interrupted trial resumes from its last snapshot)"
        )


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says the server could not be reached."""
    seen = 0
    while error is not None and seen < 5:
        import requests
        import sqlalchemy.exc

        if isinstance(error, (requests.ConnectionError, requests.Timeout, ConnectionError)):
            return True
        if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
            return True
        if any(word in str(error).lower() for word in UNREACHABLE):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def locked(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) is SQLite's: another connection holds the
    write lock."""
    for _ in range(6):
        if error is None:
            return False
        if "database is locked" in str(error).lower():
            return True
        error = error.__cause__ or error.__context__
    return False


class Outage:
    """Retries calls to one server through its outages, for every thread of a worker."""

    def __init__(
        self,
        server: str,
        wait: float,
        say: Callable[[str], None] = print,
        *,
        max_delay: float = 10.0,
        place=None,
    ):
        """``max_delay``: the longest pause between retries (backoff from 0.5 s doubles up to
        it), so a heartbeat is sent again within that long of the server's return.
        ``place``: the store's local file, if it has one; a full disk there is not an outage
        but a ``DiskFullError`` that names it."""
        self.server, self.wait, self.say, self.max_delay = server, wait, say, max_delay
        self.place = place
        self.lock = threading.Lock()
        self.since: float | None = None  # when the current outage began (monotonic)
        self.ended: float | None = None  # when the last one ended

    def call(self, fn, *args, **kwargs):
        delay = 0.5
        while True:
            try:
                result = fn(*args, **kwargs)
            except Exception as e:
                if disk_full(e):
                    raise as_disk_full(e, self.place) from e
                if not unreachable(e):
                    raise
                waited = self._down(e)
                if waited > self.wait:
                    raise OutageError(self.server, waited, self.wait, locked=locked(e)) from None
                time.sleep(min(delay, max(0.1, self.wait - waited + 0.1)))
                delay = min(2 * delay, self.max_delay)
                continue
            self._up()
            return result

    def _down(self, error: BaseException) -> float:
        with self.lock:
            now = time.monotonic()
            if self.since is None:
                self.since = now
                why = f"is unreachable ({type(error).__name__})"
                if locked(error):
                    why = (
                        "is locked by another process (a write transaction held open, e.g. "
                        "by an sqlite3 shell or another tool)"
                    )
                self.say(
                    f"warning: {self.server} {why}; waiting up to {self.wait:g} s for it "
                    "(--outage-wait), then going on"
                )
            return now - self.since

    def _up(self) -> None:
        if self.since is None:
            return
        with self.lock:
            if self.since is not None:
                self.say(f"{self.server} is back after {time.monotonic() - self.since:.0f} s")
                self.since, self.ended = None, time.monotonic()

    def settled(self, grace: float) -> bool:
        """No outage now, and none ended within the last ``grace`` seconds (plus the longest
        pause between retries): long enough for every worker cut off with this one to have
        sent a heartbeat again."""
        if self.since is not None:
            return False
        return self.ended is None or time.monotonic() - self.ended >= grace + self.max_delay
