"""A consistent copy of a study's local stores, taken while it runs, and putting one back.

The Optuna storage is copied first, then the MLflow store, then the artifacts: each SQLite
file through SQLite's online backup API (one consistent state, readers and writers go on),
so every trial COMPLETE in the copy has its MLflow run and its checkpoint in the copy too
(a trial is told COMPLETE only after its run and checkpoint are written).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from study.errors import UsageError
from study.stores.disk import quick_check
from study.stores.locations import StorageURL, StudyLock, TrackingURL, sqlite_files

ARTIFACTS = "artifacts"


@dataclass(frozen=True)
class Copied:
    """One file or tree copied: where from, where to, how many bytes."""

    source: Path
    copy: Path
    size: int


def local_files(storage: StorageURL, tracking: TrackingURL) -> list[tuple[str, Path]]:
    """(what, path) of the SQLite stores to copy; a usage error for a store that is not a
    local SQLite file (a database server has its own tools: pg_dump)."""
    out = []
    for what, url, flag in (
        ("Optuna storage", storage, "--storage"),
        ("MLflow tracking store", tracking, "--tracking-uri"),
    ):
        if url.kind == "none":
            continue
        if url.kind != "sqlite":
            raise UsageError(
                f"{flag} {url.redacted} is not a local SQLite file; back a database server "
                "up with its own tools (pg_dump), and an MLflow server's store with its"
            )
        if not url.path.is_file():
            raise UsageError(f"no {what} at {url.path}; pass the study's {flag}")
        problem = quick_check(url.path)
        if problem is not None:
            raise UsageError(
                f"{url.path} (the {what}) is damaged ({problem}); a copy of it would be "
                "too: restore an earlier backup instead (python -m study.backup --restore)"
            )
        out.append((what, url.path))
    return out


def copy_database(source: Path, copy: Path) -> Copied:
    """``source`` copied to ``copy`` by SQLite's online backup (a consistent state, while
    other processes read and write it), then checked whole."""
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
    dst = sqlite3.connect(copy)
    try:
        src.backup(dst)
        ok = dst.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        dst.close()
        src.close()
    if ok != "ok":
        raise RuntimeError(f"the copy of {source} fails SQLite's integrity check: {ok}")
    return Copied(source, copy, copy.stat().st_size)


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def take(storage: StorageURL, tracking: TrackingURL, dest: Path, *, artifacts: bool = True):
    """Copy the stores (and the MLflow artifacts beside a local tracking store) into the
    new directory ``dest``; what was copied."""
    files = local_files(storage, tracking)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} already exists and is not empty; pass a new directory")
    names = [path.name for _, path in files]
    if len(set(names)) < len(names):
        raise UsageError(f"both stores are called {names[0]}; they cannot be copied side by side")
    dest.mkdir(parents=True, exist_ok=True)
    copied = [copy_database(path, dest / path.name) for _, path in files]
    tree = tracking.path.parent / ARTIFACTS if tracking.path is not None else None
    if artifacts and tree is not None and tree.is_dir():
        # Files are written whole and never changed, except resume snapshots (replaced).
        shutil.copytree(tree, dest / ARTIFACTS, ignore_dangling_symlinks=True)
        copied.append(Copied(tree, dest / ARTIFACTS, tree_size(dest / ARTIFACTS)))
    return copied


def restore(storage: StorageURL, tracking: TrackingURL, source: Path) -> list[str]:
    """Put the backup in ``source`` back in place of the stores, while no study runs on
    them (the study lock is taken, or refused). The files replaced are kept beside, renamed
    ``*.replaced-TIME``; the lines saying what was done."""
    if not source.is_dir():
        raise UsageError(f"no backup at {source}; pass the directory python -m study.backup made")
    targets = []
    for what, url in (("Optuna storage", storage), ("MLflow tracking store", tracking)):
        if url.kind != "sqlite":
            continue
        copy = source / url.path.name
        if not copy.is_file():
            raise UsageError(f"{source} holds no {url.path.name} (the {what}'s backup)")
        problem = quick_check(copy)
        if problem is not None:
            raise UsageError(f"the backup {copy} is damaged too ({problem})")
        targets.append((copy, url.path))
    in_use = holders([f for _, target in targets for f in sqlite_files(target)])
    if in_use:
        raise UsageError(
            f"process {', '.join(map(str, in_use))} has the stores open (a study running on "
            "them?); stop it before restoring them"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    lines = []
    with StudyLock(storage, "")():  # a file store's lock is one for all its studies
        for copy, target in targets:
            for file in sqlite_files(target):  # the log beside a file belongs to it
                if file.exists():
                    file.rename(file.with_name(f"{file.name}.replaced-{stamp}"))
            shutil.copy2(copy, target)
            lines.append(f"restored {target} from {copy} (the file it replaced: "
                         f"{target.name}.replaced-{stamp})")  # fmt: skip
        tree = source / ARTIFACTS
        if tree.is_dir() and tracking.path is not None:
            # Missing files come back; files there now are kept (they may be newer runs').
            shutil.copytree(
                tree, tracking.path.parent / ARTIFACTS, dirs_exist_ok=True,
                copy_function=lambda src, dst: Path(dst).exists() or shutil.copy2(src, dst),
            )  # fmt: skip
            lines.append(f"restored the artifacts into {tracking.path.parent / ARTIFACTS}")
    return lines


def holders(paths: list[Path]) -> list[int]:
    """Process ids on this host with one of ``paths`` open (Linux's ``/proc``; elsewhere
    none are found). SQLite stores are local files, so their users are on this host."""
    wanted = {str(p.resolve()) for p in paths}
    found = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    if fd.readlink().as_posix() in wanted:
                        found.append(int(fd_dir.parent.name))
                        break
    return sorted(set(found))
