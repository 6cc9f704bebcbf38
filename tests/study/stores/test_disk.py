"""Faults of the disk under the stores, on real files: a disk that fills mid-study (small
tmpfs mounts, as root may mount them), read-only mounts, damaged SQLite files, a write lock
held by an sqlite3 shell, and a backup taken while a study runs."""

import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image

import models as m
from objectives import TrialSpec
from study import backup as backup_cli
from study import run
from study.artifacts import checkpoint
from study.stores.disk import EXIT_DISK_FULL, DiskFullError, as_disk_full, disk_full, torch_save
from study.tracking.runs import StudyTracker

from ..conftest import TINY, stores
from ..helpers import wait_for

NAME = "ae-fashion-mnist"
AE = [*TINY, "--objective", "ae", "--no-refit", "--threads", "1"]
FAST_HEARTBEAT = ["--heartbeat", "1", "--heartbeat-grace", "3"]


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the tests run as root")


@pytest.fixture
def mounts(tmp_path):
    """``mount(path, size)`` mounts a small tmpfs; all are unmounted at the end."""
    made = []

    def mount(path, size="64m"):
        mount_tmpfs(path, size)
        made.append(path)
        return path

    yield mount
    for path in reversed(made):
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system holding ``directory`` to the last byte; the filler's path."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 16, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * chunk)
    return filler


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def states(db: Path) -> dict[str, int]:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            return dict(con.execute("select state, count(*) from trials group by state"))
    except sqlite3.OperationalError:  # not created yet
        return {}


def integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as con:
        return con.execute("PRAGMA integrity_check").fetchone()[0]


def store_args(optuna_dir: Path, mlflow_dir: Path) -> list[str]:
    return [
        "--storage", f"sqlite:///{optuna_dir}/optuna.db",
        "--tracking-uri", f"sqlite:///{mlflow_dir}/mlflow.db",
    ]  # fmt: skip


def study_process(argv):
    return subprocess.Popen(
        [sys.executable, "-m", "study.run", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def completed_records_are_whole(optuna_db: Path, mlflow_db: Path) -> None:
    """Every COMPLETE trial has its MLflow run FINISHED with its checkpoint on disk."""
    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{optuna_db}")
    client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
    complete = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert complete
    for t in complete:
        r = client.get_run(t.user_attrs["mlflow_run_id"])
        assert r.info.status == "FINISHED", t.number
        assert checkpoint.has_checkpoint(client, r.info.run_id), t.number
        local = Path(r.info.artifact_uri.removeprefix("file://")) / "checkpoint" / "model.pt"
        assert local.stat().st_size > 0


# Which store the disk under fills: the Optuna storage's (a SQLite commit), the MLflow
# store's (a metric or tag write), or the artifacts' (a resume snapshot, checkpoint, picture).
@pytest.mark.parametrize("full", ["optuna", "mlflow", "artifacts"])
def test_a_disk_filling_mid_study_stops_the_worker_and_a_rerun_finishes(tmp_path, mounts, full):
    opt, ml = mounts(tmp_path / "optuna", "16m"), mounts(tmp_path / "mlflow", "32m")
    arts = mounts(ml / "artifacts", "96m")
    place = {"optuna": opt, "mlflow": ml, "artifacts": arts}[full]
    argv = [*AE, *store_args(opt, ml), *FAST_HEARTBEAT, "--trials", "40"]
    proc = study_process(argv)
    try:
        wait_for(lambda: states(opt / "optuna.db").get("COMPLETE", 0) >= 2, "2 trials", proc)
        filler = fill(place)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_DISK_FULL, (out, err)
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"error: the disk holding {place}") and "is full" in lines[0]
    assert "re-run the same command" in lines[0]
    before = states(opt / "optuna.db")  # read from the full disk: reading needs no space
    assert before.get("COMPLETE", 0) >= 2
    filler.unlink()
    completed_records_are_whole(opt / "optuna.db", ml / "mlflow.db")
    # The same command, once there is space again, finishes the exact total.
    done = subprocess.run([sys.executable, "-m", "study.run", *argv], capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    after = states(opt / "optuna.db")
    assert after.get("COMPLETE", 0) + after.get("PRUNED", 0) == 40
    assert after.get("RUNNING", 0) == 0 and after.get("WAITING", 0) == 0
    assert integrity(opt / "optuna.db") == "ok" and integrity(ml / "mlflow.db") == "ok"
    completed_records_are_whole(opt / "optuna.db", ml / "mlflow.db")
    client = MlflowClient(tracking_uri=f"sqlite:///{ml}/mlflow.db")
    exp = client.get_experiment_by_name(NAME)
    running = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")
    assert running == []


def test_each_kind_of_write_to_a_full_disk_is_told_apart_and_named(tmp_path, mounts):
    """A checkpoint or snapshot (torch.save), an artifact copy, a picture, a SQLite commit
    and an MLflow write, each into a full tmpfs: each error is recognised as a full disk and
    named by the full place; other errors are not."""
    disk = mounts(tmp_path / "disk", "32m")
    con = sqlite3.connect(disk / "a.db")
    con.execute("create table t (x blob)")
    con.commit()
    client = MlflowClient(tracking_uri=f"sqlite:///{disk}/mlflow.db")
    exp = client.create_experiment("x", artifact_location=(disk / "artifacts").as_uri())
    run_id = client.create_run(exp).info.run_id
    small = tmp_path / "small.txt"
    small.write_text("x" * 100_000)
    config = m.MLPAEConfig(hidden=(256,), latent_dim=6)
    model = m.build_model(config)
    spec = TrialSpec("ae", config, m.TrainConfig(lr=2e-3, batch_size=64, epochs=1))
    fill(disk)
    from study.stores.disk import watch

    watch(disk)
    errors = {}
    for kind, write in {
        "checkpoint": lambda: checkpoint.save(model, spec, disk / "model.pt"),
        "snapshot": lambda: torch_save({"state": torch.zeros(100_000)}, disk / "state.pt"),
        "artifact": lambda: client.log_artifact(run_id, str(small)),
        "picture": lambda: Image.fromarray(  # as study.tracking.pictures writes them
            torch.randint(0, 255, (560, 560), dtype=torch.uint8).numpy(), "L"
        ).save(disk / "p.png", format="PNG"),
        "sqlite commit": lambda: (
            con.execute("insert into t values (?)", (os.urandom(200_000),)),
            con.commit(),
        ),
        "mlflow metric": lambda: [
            client.log_metric(run_id, f"m{i}", float(i)) for i in range(2000)
        ],
    }.items():
        with pytest.raises(Exception) as caught:
            write()
        errors[kind] = caught.value
    con.close()
    for kind, error in errors.items():
        assert disk_full(error), (kind, error)
        named = as_disk_full(error)
        assert isinstance(named, DiskFullError)
        assert str(disk) in named.place, (kind, named.place)
    assert not disk_full(ValueError("a bug")) and not disk_full(OSError(5, "I/O error"))
    # Tracking writes that fail for a full disk are not "a picture could not be written":
    # they stop the worker.
    with pytest.raises(DiskFullError):
        StudyTracker.safely(lambda: torch_save(torch.zeros(100_000), disk / "other.pt"))
    assert StudyTracker.safely(lambda: 1 / 0).startswith("ZeroDivisionError")


@pytest.mark.parametrize("which", ["all", "artifacts"])
def test_a_read_only_store_is_refused_before_anything_starts(tmp_path, mounts, capsys, which):
    place = mounts(tmp_path / "ro", "32m")
    # In a process of its own, which leaves no file open (a mount with open files stays rw).
    done = subprocess.run([sys.executable, "-m", "study.run", *AE, *stores(place), "--trials",
                           "1"], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    if which == "artifacts":  # the databases writable, the artifacts' directory not
        shutil.move(place / "artifacts", tmp_path / "kept")
        mounts(place / "artifacts", "8m")
        shutil.copytree(tmp_path / "kept", place / "artifacts", dirs_exist_ok=True)
        target = place / "artifacts"
    else:
        target = place
    subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)
    files = {p: digest(p) for p in place.rglob("*") if p.is_file()}
    assert run.main([*AE, *stores(place), "--trials", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "read-only file system" in err[0], err
    assert str(target) in err[0]
    assert {p: digest(p) for p in place.rglob("*") if p.is_file()} == files


@pytest.fixture
def finished(classifier_study, tmp_path):
    """A copy of a finished 3-trial study's two databases (closed: no logs beside them)."""
    dst = tmp_path / "stores"
    dst.mkdir()
    for name in ("optuna.db", "mlflow.db"):
        src = sqlite3.connect(classifier_study / name)
        copy = sqlite3.connect(dst / name)
        src.backup(copy)
        copy.execute("PRAGMA journal_mode=WAL")  # as the harness's stores are
        copy.close()
        src.close()
    return dst


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    n = len(data)
    data[n // 3 : n // 2] = os.urandom(n // 2 - n // 3)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [truncate, garble])
@pytest.mark.parametrize("name", ["optuna.db", "mlflow.db"])
def test_a_damaged_sqlite_file_is_refused_and_left_as_it_is(finished, capsys, damage, name):
    damage(finished / name)
    before = digest(finished / name)
    argv = [*TINY, *stores(finished), "--no-refit", "--trials", "4"]
    for command in (run.main, __import__("study.report", fromlist=["x"]).main):
        args = argv if command is run.main else stores(finished)
        assert command(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert f"{finished / name}" in err[0] and "is damaged" in err[0]
        assert "python -m study.backup DIR --restore" in err[0] and ".recover" in err[0]
        assert digest(finished / name) == before
        assert not (finished / f"{name}-wal").exists()  # not even opened for writing


def test_a_backup_taken_while_a_study_runs_is_consistent_and_restores(tmp_path, capsys):
    path = tmp_path / "mlruns"
    argv = [*AE, *stores(path), *FAST_HEARTBEAT, "--trials", "16"]
    proc = study_process(argv)
    try:
        wait_for(lambda: states(path / "optuna.db").get("COMPLETE", 0) >= 2, "2 trials", proc)
        assert backup_cli.main([str(tmp_path / "bk"), *stores(path)]) == 0
        out = capsys.readouterr().out
        assert "copied" in out and "--restore" in out
        assert proc.wait(timeout=600) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    bk = tmp_path / "bk"
    assert integrity(bk / "optuna.db") == "ok" and integrity(bk / "mlflow.db") == "ok"
    copied = states(bk / "optuna.db")
    assert copied.get("COMPLETE", 0) >= 2
    # Every trial COMPLETE in the copy has its run and checkpoint in the copy.
    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{bk}/optuna.db")
    client = MlflowClient(tracking_uri=f"sqlite:///{bk}/mlflow.db")
    for t in study.get_trials(states=[optuna.trial.TrialState.COMPLETE]):
        r = client.get_run(t.user_attrs["mlflow_run_id"])
        assert r.info.status == "FINISHED"
        rel = Path(r.info.artifact_uri.removeprefix("file://")).relative_to(path / "artifacts")
        assert (bk / "artifacts" / rel / "checkpoint" / "model.pt").is_file()
    # A second backup into the same directory is refused; so is a database server.
    assert backup_cli.main([str(bk), *stores(path)]) == 2
    assert "not empty" in capsys.readouterr().err
    # The store is damaged; the backup goes back in its place and the study goes on.
    garble(path / "optuna.db")
    assert backup_cli.main([str(bk), *stores(path), "--restore"]) == 0
    out = capsys.readouterr().out
    assert "restored" in out and any(
        p.name.startswith("optuna.db.replaced-") for p in path.iterdir()
    )
    assert states(path / "optuna.db") == copied
    assert run.main([*argv, "--trials", "17"]) == 0
    after = states(path / "optuna.db")
    assert after.get("COMPLETE", 0) + after.get("PRUNED", 0) == 17


def test_a_restore_is_refused_while_a_process_has_the_stores_open(finished, tmp_path, capsys):
    assert backup_cli.main([str(tmp_path / "bk"), *stores(finished), "--no-artifacts"]) == 0
    holder = sqlite3.connect(finished / "optuna.db")
    holder.execute("select 1").fetchall()
    try:
        assert backup_cli.main([str(tmp_path / "bk"), *stores(finished), "--restore"]) == 2
        err = capsys.readouterr().err
        assert f"process {os.getpid()} has the stores open" in err
    finally:
        holder.close()


def sqlite_shell_holding_the_write_lock(db: Path) -> subprocess.Popen:
    """An ``sqlite3`` shell in a write transaction on ``db``, holding it until stdin closes."""
    shell = subprocess.Popen(
        ["sqlite3", str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    shell.stdin.write("BEGIN IMMEDIATE;\nSELECT 'locked';\n")
    shell.stdin.flush()
    assert shell.stdout.readline().strip() == "locked"
    return shell


@pytest.mark.servers  # the sqlite3 shell: a system package, as the servers are
def test_a_write_lock_held_by_an_sqlite3_shell_is_waited_for_and_said(finished):
    shell = sqlite_shell_holding_the_write_lock(finished / "optuna.db")
    proc = study_process([*TINY, *stores(finished), "--no-refit", "--trials", "4",
                          "--outage-wait", "600"])  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert "is locked by another process" in line and "sqlite3 shell" in line, line
        assert "waiting up to 600 s" in line
        shell.stdin.write("COMMIT;\n")
        shell.stdin.close()
        out, err = proc.communicate(timeout=600)
    finally:
        shell.kill()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "is back after" in out
    assert (
        states(finished / "optuna.db").get("COMPLETE", 0)
        + states(finished / "optuna.db").get("PRUNED", 0)
        == 4
    )


@pytest.mark.servers
def test_a_write_lock_held_past_the_outage_wait_stops_with_one_line(finished):
    shell = sqlite_shell_holding_the_write_lock(finished / "optuna.db")
    before = digest(finished / "optuna.db")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "study.run", *TINY, *stores(finished), "--no-refit",
             "--trials", "4", "--outage-wait", "1"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        shell.kill()
    assert done.returncode == 75, done.stderr
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "has been locked by another process for" in err[0] and "once it is free" in err[0]
    assert digest(finished / "optuna.db") == before
