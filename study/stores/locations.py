"""Where a study's state lives: the Optuna storage and the MLflow tracking store.

Each URL is parsed once, at the edge, into a small typed value (its kind, its local file,
its redacted form for messages); nothing else in the package looks at URL prefixes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from study.errors import UsageError
from study.stores import disk
from study.stores.optuna_internals import cached
from study.stores.secrets import (
    DATABASE_CREDENTIALS,
    check_tracking_credentials,
    credentials_refused,
    redact,
    scrub,
    secrets_in,
)

DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
DEFAULT_TRACKING = "sqlite:///mlruns/mlflow.db"
SERVER_SCHEMES = ("postgresql", "mysql")
BUSY_SECONDS = 10  # how long a SQLite statement waits for another connection's write lock


@dataclass(frozen=True, repr=False)
class StorageURL:
    """An Optuna storage: ``sqlite``, ``journal``, ``postgresql``, ``mysql`` or ``memory``.

    ``url`` may hold a password: print ``redacted`` (``str()`` and ``repr()`` do).
    """

    url: str
    kind: str
    path: Path | None = None

    @property
    def redacted(self) -> str:
        return redact(self.url)

    def __str__(self) -> str:
        return self.redacted

    __repr__ = __str__

    @property
    def server(self) -> bool:
        return self.kind in SERVER_SCHEMES

    @property
    def lock_file(self) -> Path | None:
        """The file ``flock``-ed around study changes (file stores only)."""
        return None if self.path is None else self.path.with_name(self.path.name + ".lock")

    @property
    def reports_root(self) -> Path:
        """Reports live beside a local store file (``mlruns/reports``), else in ``mlruns``."""
        return (self.path.parent if self.path is not None else Path("mlruns")) / "reports"


@dataclass(frozen=True, repr=False)
class TrackingURL:
    """An MLflow tracking store: ``sqlite`` (artifacts beside it), ``http``, ``database``
    (another SQLAlchemy URL) or ``none`` (tracking off)."""

    url: str
    kind: str
    path: Path | None = None

    @property
    def redacted(self) -> str:
        return redact(self.url)

    def __str__(self) -> str:
        return self.redacted

    __repr__ = __str__

    @property
    def enabled(self) -> bool:
        return self.kind != "none"

    def artifact_location(self, experiment: str) -> str | None:
        """Artifacts of a local SQLite store live beside it: ``<dir>/artifacts/<experiment>``;
        a tracking server decides for itself (``--serve-artifacts``)."""
        if self.path is None:
            return None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)
        return (self.path.parent.resolve() / "artifacts" / safe).as_uri()


def default_tracking() -> str:
    """``$MLFLOW_TRACKING_URI`` when set (as for every MLflow tool), else the local store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING


def parse_storage(text: str) -> StorageURL:
    """``--storage`` as a typed value; a usage error for anything Optuna cannot open."""
    if text == "memory":
        return StorageURL(text, "memory")
    if text.startswith("journal:"):
        if not text[len("journal:") :]:
            raise UsageError("--storage journal: needs a file, e.g. journal:mlruns/journal.log")
        return StorageURL(text, "journal", Path(text[len("journal:") :]).expanduser())
    if text.startswith("sqlite:///"):
        if not text[len("sqlite:///") :]:
            raise UsageError(f"--storage {text!r} names no file; e.g. {DEFAULT_STORAGE}")
        return StorageURL(text, "sqlite", Path(text[len("sqlite:///") :]).expanduser())
    scheme = text.split("://", 1)[0].split("+", 1)[0] if "://" in text else ""
    if scheme in SERVER_SCHEMES:
        return StorageURL(text, scheme)
    raise UsageError(
        f"unknown --storage {redact(text)!r}; use sqlite:///FILE, "
        "postgresql://USER@HOST/DB, journal:FILE or memory"
    )


def parse_tracking(text: str) -> TrackingURL:
    """``--tracking-uri`` as a typed value; MLflow 3 refuses plain directories."""
    if text == "none":
        return TrackingURL(text, "none")
    if text.startswith("sqlite:///"):
        if not text[len("sqlite:///") :]:
            raise UsageError(f"--tracking-uri {text!r} names no file; e.g. {DEFAULT_TRACKING}")
        return TrackingURL(text, "sqlite", Path(text[len("sqlite:///") :]).expanduser())
    if text.startswith(("http://", "https://")):
        return TrackingURL(text.rstrip("/"), "http")
    if text.split("://", 1)[0].split("+", 1)[0] in SERVER_SCHEMES and "://" in text:
        return TrackingURL(text, "database")
    raise UsageError(
        f"unsupported --tracking-uri {redact(text)!r}: MLflow 3 refuses plain "
        f"directories; use {DEFAULT_TRACKING}, http://HOST:PORT or none"
    )


def writable_dir(path: Path, what: str, flag: str) -> None:
    """Whether ``path`` (a directory) is there or can be created, writable, for ``what``;
    a usage error saying why not. Creates nothing: a refused command leaves no trace."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(
            f"cannot create {path} for the {what} ({existing} is not a directory); "
            f"pass another {flag}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        why, fix = "is not writable", "fix the directory's permissions"
        if disk.read_only_mount(existing):
            why, fix = "is on a read-only file system", "mount it read-write"
        raise UsageError(
            f"{existing} {why}, so the {what} cannot be stored in {path}; "
            f"pass another {flag} or {fix}"
        )


def sqlite_files(path: Path) -> list[Path]:
    """A SQLite database file and the write-ahead log and index beside it."""
    return [path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))]


def check_local_store(path: Path, what: str, flag: str, *, sqlite: bool) -> None:
    """A local store's directory and files must be writable, and an existing SQLite file
    sound (``PRAGMA quick_check``); checked before it is opened, so a refused command
    changes nothing."""
    writable_dir(path.resolve().parent, what, flag)
    for file in sqlite_files(path) if sqlite else [path]:
        disk.check_writable_file(file, what, flag)
    if sqlite:
        disk.check_sqlite(path, what, flag)
    disk.watch(path.resolve().parent)


def check_storage(storage: StorageURL) -> None:
    """A local store must be writable and sound (nothing is written yet)."""
    if storage.path is not None:
        what = "Optuna journal" if storage.kind == "journal" else "Optuna storage"
        check_local_store(storage.path, what, "--storage", sqlite=storage.kind == "sqlite")


def check_tracking(tracking: TrackingURL) -> None:
    """A local store must be writable and sound, its artifacts' directory too; a tracking
    server must answer."""
    if tracking.path is not None:
        what = "MLflow tracking store"
        check_local_store(tracking.path, what, "--tracking-uri", sqlite=True)
        artifacts = tracking.path.resolve().parent / "artifacts"
        writable_dir(artifacts, "MLflow artifacts", "--tracking-uri")
        disk.watch(artifacts)
    elif tracking.kind == "http":
        import requests

        try:
            requests.get(tracking.url + "/health", timeout=5)
        except requests.RequestException as e:
            raise UsageError(
                f"MLflow tracking server {tracking.redacted!r} is unreachable "
                f"({type(e).__name__}); start it or fix --tracking-uri"
            ) from None
        check_tracking_credentials(tracking.url, tracking.redacted)


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """WAL journal and synchronous=NORMAL for a SQLite connection.

    A commit then appends to the write-ahead log without an fsync: ~10x cheaper writes (each
    trial makes dozens: parameters, reports, metrics) and readers never block the writer,
    which several workers need. A killed process loses nothing it committed; only an
    operating-system crash or power loss may roll back the last commits. WAL needs a local
    disk: on a network file system use PostgreSQL.
    """
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Another worker's write takes milliseconds; a lock held longer is another tool's
        # (an sqlite3 shell's open transaction): then the outage riding says so and waits.
        cursor.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
        cursor.close()


def use_fast_sqlite() -> None:
    """Apply ``_sqlite_pragmas`` to every SQLite connection of this process, Optuna's and
    MLflow's (whose engine is not ours to reach). Called by the CLI entry points only."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _sqlite_pragmas):
        event.listen(Engine, "connect", _sqlite_pragmas)


@contextlib.contextmanager
def storage_errors(storage: StorageURL) -> Iterator[None]:
    """A missing driver or an unreachable database as one-line usage errors."""
    try:
        yield
    except ImportError:
        hint = (
            "pip install -e '.[postgres]' (psycopg 3)"
            if storage.kind == "postgresql"
            else "install the driver the URL names"
        )
        raise UsageError(
            f"the database driver for {storage.redacted!r} is missing; {hint}"
        ) from None
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - SQLAlchemy's many connection errors
        text = " ".join(str(e).split()) or type(e).__name__
        first = scrub(text, secrets_in(storage.url))[:200]
        if credentials_refused(text):
            raise UsageError(
                f"database server {storage.redacted!r} refused the credentials ({first}); "
                f"{DATABASE_CREDENTIALS}"
            ) from None
        raise UsageError(
            f"cannot open storage {storage.redacted!r}: {first}; "
            "check the URL and that the database is reachable"
        ) from None


def open_storage(storage: StorageURL, *, heartbeat: int = 30, grace: int | None = None, retry=None):
    """The Optuna storage behind ``storage``. RDB storages get heartbeats (``retry`` is the
    callback that queues a dead trial again), replace dead pooled connections and keep
    finished trials in Optuna's cache."""
    import optuna
    from optuna.storages import RDBStorage

    if storage.kind == "memory":
        return optuna.storages.InMemoryStorage()
    if storage.path is not None:  # checked writable before (check_storage)
        storage.path.parent.mkdir(parents=True, exist_ok=True)
    if storage.kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(storage.path)))
    engine: dict = {"pool_pre_ping": True}  # a server restart leaves dead pooled connections
    if storage.kind == "sqlite":
        engine = {"connect_args": {"timeout": BUSY_SECONDS}}  # wait for other writers
    with storage_errors(storage):
        rdb = RDBStorage(
            storage.url,
            engine_kwargs=engine,
            heartbeat_interval=heartbeat,
            grace_period=grace if grace is not None else 3 * heartbeat,
            heartbeat_stale_trial_callback=retry,
        )
    return cached(rdb)  # finished trials read once, as Optuna does for a storage URL


class StudyLock:
    """Exclusive lock over one study, across processes (and hosts, on a database server).

    File stores are locked with ``flock`` on a file beside them; PostgreSQL with an advisory
    lock through an engine of its own, opened (and checked to connect) before Optuna's
    storage: two workers creating a fresh schema at once collide on PostgreSQL's catalog
    (``duplicate key ... pg_type_typname_nsp_index``). In-memory storage needs none.
    """

    def __init__(self, storage: StorageURL, name: str, *, outage=None, purpose: str = ""):
        self.storage = storage
        self.outage = outage  # a server's lock connection is retried through its outages
        # ``purpose``: a lock of its own beside the study's (the refit's), not blocking it.
        self.key = zlib.crc32(f"latent-study:{name}{':' + purpose if purpose else ''}".encode())
        self.file = storage.lock_file
        if self.file is not None and purpose:
            self.file = self.file.with_name(f"{storage.path.name}.{purpose}.lock")
        self.engine = None
        if storage.kind == "postgresql":
            from sqlalchemy import create_engine, text
            from sqlalchemy.pool import NullPool

            with storage_errors(storage):
                self.engine = create_engine(storage.url, poolclass=NullPool)
                with self.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))

    @contextlib.contextmanager
    def __call__(self, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the lock; ``on_wait()`` is called once if another process holds it first.
        A process that dies holding it (``kill -9``) releases it with its file or session."""
        if self.file is not None:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.file, "a") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if on_wait is not None:
                        on_wait()
                    fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
            return
        if self.engine is not None:
            yield from self._advisory(on_wait)
            return
        yield

    def _advisory(self, on_wait) -> Iterator[None]:
        from sqlalchemy import text

        def take():
            conn = self.engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            if not got:
                if on_wait is not None:
                    on_wait()
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
            return conn

        conn = self.outage.call(take) if self.outage is not None else take()
        try:
            yield
        finally:
            # A server that restarted meanwhile has dropped the lock with the connection.
            with contextlib.suppress(Exception):
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            with contextlib.suppress(Exception):
                conn.close()


def tracking_client(tracking: TrackingURL):
    """An ``MlflowClient`` for ``tracking``; a local store gets its directory created."""
    from mlflow import MlflowClient

    if tracking.path is not None:
        disk.check_sqlite(tracking.path, "MLflow tracking store", "--tracking-uri")
        tracking.path.parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=tracking.url)
