"""What the CLIs share: defaults, URL checks, storage/sampler/pruner set-up, error exits."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
DEFAULT_TRACKING = "sqlite:///mlruns/mlflow.db"
SAMPLERS = ("tpe", "random", "qmc")
PRUNERS = ("median", "hyperband", "successive-halving", "percentile", "none")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (and exit code 2, as argparse's)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class UsageError(Exception):
    """A mistake in the user's input: printed as one line, exit code 2."""


def exits_cleanly(main):
    """Turn the errors a user can cause into one line on stderr and exit code 2."""
    from models import ConfigError

    from .checkpoint import CheckpointError
    from .data import DataError
    from .tracking import TrackingError

    @functools.wraps(main)
    def wrapper(argv=None) -> int:
        try:
            return main(argv)
        except (UsageError, ConfigError, DataError, TrackingError, CheckpointError) as e:
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)  # always one line
            return 2
        except KeyboardInterrupt:  # before or between trials: nothing to close
            print("\nInterrupted.", file=sys.stderr)
            return 130

    return wrapper


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_study_arguments(p: argparse.ArgumentParser) -> None:
    """--objective, --dataset, --study-name, --storage, --tracking-uri (run and export)."""
    from objectives import OBJECTIVES

    from .data import DATASETS

    p.add_argument(
        "--objective",
        choices=sorted(OBJECTIVES),
        default="classifier",
        help="what to optimise (default: %(default)s)",
    )
    p.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        default="fashion-mnist",
        help="data set (default: %(default)s)",
    )
    p.add_argument(
        "--study-name", default=None, help="study to create or resume (default: OBJECTIVE-DATASET)"
    )
    p.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help="Optuna storage: sqlite:///FILE, postgresql://..., journal:FILE "
        "(several workers on one host) or 'memory' (default: %(default)s)",
    )
    p.add_argument(
        "--tracking-uri",
        default=DEFAULT_TRACKING,
        help="MLflow tracking store: sqlite:///FILE (artifacts beside it in "
        "artifacts/), http(s)://HOST:PORT, or 'none' (default: %(default)s)",
    )


def study_name(args) -> str:
    return args.study_name or f"{args.objective}-{args.dataset}"


def redact(url: str) -> str:
    """``postgresql://user:secret@host`` -> ``postgresql://user:***@host``."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url


def _writable_dir(path: Path, what: str, flag: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(
            f"cannot create {path} for the {what} ({e.strerror}); "
            f"pass another {flag} or fix the directory's permissions"
        ) from None
    if not os.access(path, os.W_OK):
        raise UsageError(
            f"{path} is not writable, so the {what} cannot be stored there; "
            f"pass another {flag} or fix the directory's permissions"
        )


def check_storage_url(url: str) -> None:
    """Reject a malformed storage URL before anything is created."""
    if url == "memory":
        return
    if url.startswith("journal:"):
        if not url[len("journal:") :]:
            raise UsageError("--storage journal: needs a file, e.g. journal:mlruns/journal.log")
        _writable_dir(
            Path(url[len("journal:") :]).expanduser().resolve().parent,
            "Optuna journal",
            "--storage",
        )
        return
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if not url[len("sqlite:///") :]:
            raise UsageError(f"--storage {url!r} names no file; e.g. {DEFAULT_STORAGE}")
        _writable_dir(path.expanduser().resolve().parent, "Optuna storage", "--storage")
        return
    for scheme in (
        "postgresql",
        "postgresql+psycopg2",
        "postgresql+psycopg",
        "mysql",
        "mysql+pymysql",
    ):
        if url.startswith(scheme + "://"):
            return
    raise UsageError(
        f"unknown --storage {redact(url)!r}; use sqlite:///FILE, "
        "postgresql://USER:PASS@HOST/DB, journal:FILE or memory"
    )


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """WAL journal and synchronous=NORMAL for every SQLite connection of this process.

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
        cursor.close()


def use_fast_sqlite() -> None:
    """Register ``_sqlite_pragmas`` for every SQLAlchemy engine (Optuna's and MLflow's)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _sqlite_pragmas):
        event.listen(Engine, "connect", _sqlite_pragmas)


def make_storage(url: str, heartbeat: int = 30):
    """The Optuna storage for ``url``: RDB storages get heartbeats so crashed trials retry."""
    import warnings

    import optuna
    from optuna.storages import RDBStorage

    from ._loop import RETRY

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if url == "memory":
        return optuna.storages.InMemoryStorage()
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(Path(url[len("journal:") :]).expanduser())))
    engine: dict[str, Any] = {}
    use_fast_sqlite()
    if url.startswith("sqlite:"):
        engine = {"connect_args": {"timeout": 60}}  # wait for other writers, don't fail
    with _storage_errors(url):
        return RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=heartbeat,
            grace_period=3 * heartbeat,
            heartbeat_stale_trial_callback=RETRY,
        )


@contextlib.contextmanager
def _storage_errors(url: str):
    """A missing driver or an unreachable database as one-line usage errors."""
    try:
        yield
    except ImportError:
        hint = (
            "pip install -e '.[postgres]' (psycopg 3)"
            if url.startswith("postgresql")
            else "install the driver the URL names"
        )
        raise UsageError(f"the database driver for {redact(url)!r} is missing; {hint}") from None
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - SQLAlchemy's many connection errors
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise UsageError(
            f"cannot open storage {redact(url)!r}: {first}; "
            "check the URL and that the database is reachable"
        ) from None


def server_lock_engine(url: str):
    """A small engine for the study lock on a database server, checked to connect.

    Taken before Optuna's storage is opened: two workers creating a fresh schema at once
    collide on PostgreSQL's catalog (``duplicate key ... pg_type_typname_nsp_index``).
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    with _storage_errors(url):
        engine = create_engine(url, poolclass=NullPool)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return engine


def check_tracking_uri(uri: str) -> None:
    """Reject a tracking URI MLflow cannot use, before anything is written."""
    if uri == "none":
        return
    if uri.startswith("sqlite:///"):
        if not uri[len("sqlite:///") :]:
            raise UsageError(f"--tracking-uri {uri!r} names no file; e.g. {DEFAULT_TRACKING}")
        _writable_dir(
            Path(uri[len("sqlite:///") :]).expanduser().resolve().parent,
            "MLflow tracking store",
            "--tracking-uri",
        )
        return
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5)
        except requests.RequestException as e:
            raise UsageError(
                f"MLflow tracking server {uri!r} is unreachable "
                f"({type(e).__name__}); start it or fix --tracking-uri"
            ) from None
        return
    if uri.startswith(("postgresql://", "mysql://", "postgresql+", "mysql+")):
        return
    raise UsageError(
        f"unsupported --tracking-uri {redact(uri)!r}: MLflow 3 refuses plain "
        f"directories; use {DEFAULT_TRACKING}, http://HOST:PORT or none"
    )


def make_sampler(name: str, seed: int):
    import optuna

    if name == "tpe":
        # constant_liar keeps parallel workers from sampling the same point.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise UsageError(f"unknown sampler {name!r}; choose one of {SAMPLERS}")


def make_pruner(name: str, max_epochs: int):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max_epochs, reduction_factor=3
        )
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UsageError(f"unknown pruner {name!r}; choose one of {PRUNERS}")


def existing_study(args):
    """(study, name) for the study options of a read-only CLI; a usage error if it is absent."""
    name = study_name(args)
    if (
        args.storage.startswith("sqlite:///")
        and not Path(args.storage[len("sqlite:///") :]).is_file()
    ):
        raise UsageError(
            f"no Optuna storage at {args.storage!r}; run python -m study.run "
            "first or pass the study's --storage"
        )
    study, _ = load_study(name, args.storage)
    if study is None:
        raise UsageError(
            f"no study named {name!r} in {redact(args.storage)}; pass "
            "--study-name (or --objective/--dataset) of an existing study"
        )
    return study, name


def load_study(name: str, storage_url: str, *, heartbeat: int = 30, storage=None):
    """The existing study ``name`` (or None) and the storage it lives in."""
    import optuna

    storage = storage or make_storage(storage_url, heartbeat)
    try:
        return optuna.load_study(study_name=name, storage=storage), storage
    except KeyError:
        return None, storage
