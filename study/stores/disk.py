"""The disk under the stores: a full disk, a read-only file, a damaged SQLite file.

A full disk (or an exhausted quota) is not a failed trial: whatever write met it (a
checkpoint, a resume snapshot, an MLflow metric, a picture, a SQLite commit), the worker
stops with ``DiskFullError`` (exit code 74, EX_IOERR) naming the place that is full. Nothing
finished is lost: the trial that was running is left for a retry (never told COMPLETE
without its checkpoint), and once there is space again the same command goes on.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from study.errors import UsageError

EXIT_DISK_FULL = 74  # EX_IOERR: free space, then re-run the same command
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# What the libraries say when a write met a full disk without an errno to show for it:
# SQLite (SQLITE_FULL), the OS's text wrapped in another error, torch's zip writer.
FULL_WORDS = ("no space left on device", "database or disk is full", "disk quota exceeded")
LOW = 1 << 20  # a file system with less free than this (1 MiB) counts as full
_watched: list[Path] = []  # the directories this process writes in, to name the full one


class DiskFullError(Exception):
    """A write met a full disk: this worker stops; re-running the same command goes on."""

    def __init__(self, place: Path | str, detail: str = ""):
        self.place = str(place)
        because = f" ({detail})" if detail else ""
        super().__init__(
            f"the disk holding {self.place} is full{because}; this worker stops (exit code "
            f"{EXIT_DISK_FULL}). Nothing finished is lost: free some space, then re-run the "
            "same command (the interrupted trial is retried)"
        )


def watch(*paths: Path | str | None) -> None:
    """Directories this process writes in (the stores', the artifacts', the temporary one):
    a full disk met without a file name is named by whichever of them is full."""
    for path in paths:
        if path is not None and Path(path) not in _watched:
            _watched.append(Path(path))


def _chain(error: BaseException | None):
    """``error`` and what caused it (at most six deep)."""
    seen = 0
    while error is not None and seen < 6:
        yield error
        error, seen = error.__cause__ or error.__context__, seen + 1


def disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) is a write that met a full disk or quota."""
    for e in _chain(error):
        if isinstance(e, DiskFullError):
            return True
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            return True
        text = str(e).lower()
        if any(word in text for word in FULL_WORDS):
            return True
    return False


def free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def full_place(candidates=()) -> Path | None:
    """The first of ``candidates``, then of the watched directories and the temporary one,
    on a file system with (almost) no free space; None if none is."""
    for path in [*map(Path, candidates), *_watched, Path(tempfile.gettempdir())]:
        free = free_bytes(path)
        if free is not None and free < LOW:
            return path
    return None


def as_disk_full(error: BaseException, place: Path | str | None = None) -> DiskFullError:
    """``error`` (a full-disk one) as a ``DiskFullError`` naming where: the file it names,
    else ``place`` or a watched directory, whichever is full, else ``place``."""
    for e in _chain(error):
        if isinstance(e, DiskFullError):
            return e
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS and e.filename:
            return DiskFullError(e.filename, os.strerror(e.errno))
    texts = [str(e).lower() for e in _chain(error)]
    detail = next((w for w in FULL_WORDS for t in texts if w in t), "no space left on device")
    where = full_place([place] if place is not None else []) or place or "a store"
    return DiskFullError(where, detail)


def read_only_mount(path: Path) -> bool:
    """Whether ``path`` (which exists) is on a file system mounted read-only."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def torch_save(obj, path: Path) -> None:
    """``torch.save``, whose zip writer reports a full disk in words of its own ("unexpected
    pos ...", "file write failed"): then it is the ``OSError`` (ENOSPC) naming ``path``."""
    import torch

    try:
        torch.save(obj, path)
    except RuntimeError as e:
        free = free_bytes(Path(path).parent)
        if free is not None and free < LOW:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        raise


def check_writable_file(path: Path, what: str, flag: str) -> None:
    """An existing store file must be writable: a read-only file (or mount) is refused
    before anything starts, and nothing is written."""
    if path.exists() and not os.access(path, os.W_OK):
        where = "on a read-only file system" if read_only_mount(path) else "read-only"
        raise UsageError(
            f"{path} (the {what}) is {where}; make it writable, or pass another {flag} "
            "(a copy on a writable disk)"
        )


def quick_check(path: Path) -> str | None:
    """What SQLite's ``PRAGMA quick_check`` finds wrong with the database file ``path``;
    None if it is sound. Read-only, and leaving no file behind: with no write-ahead log
    beside it (no process has it open) the file alone is read as immutable; with one, through
    SQLite's locks, as another worker reads it."""
    wal = path.with_name(path.name + "-wal")
    mode = "mode=ro" if wal.exists() else "immutable=1"
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=30)
    except sqlite3.Error as e:
        return str(e)
    try:
        rows = [r[0] for r in con.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.Error as e:
        return str(e)
    finally:
        con.close()
    if rows == ["ok"]:
        return None
    return " ".join("; ".join(rows).split())[:300] or "no answer"


def check_sqlite(path: Path, what: str, flag: str) -> None:
    """An existing SQLite store must pass ``PRAGMA quick_check`` before it is opened; a
    damaged one is a usage error naming the file and how to recover, the file untouched."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    problem = quick_check(path)
    if problem is None:
        return
    raise UsageError(
        f"{path} (the {what}) is damaged: {problem}. It was left as it is. Put a backup "
        f"back with python -m study.backup DIR --restore (DIR: a copy python -m study.backup "
        f"took), or salvage what can be read: sqlite3 {path} .recover | sqlite3 "
        f"recovered.db, then pass {flag} with recovered.db"
    )
