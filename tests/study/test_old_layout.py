"""What the flat ``study/`` (before the subpackages, commit 513a087) wrote still loads: its
study resumes, and its exported config, checkpoint, exported encoder and registered model
load and encode.

``tests/fixtures/old-layout-513a087.tar.gz`` was written by that commit's code, from a
checkout of it (``git worktree add /tmp/old 513a087; cd /tmp/old``), with::

    python -m study.run --objective ae --trials 1 --epochs 1 --limit-train 64 \\
        --limit-val 32 --no-baseline --enqueue-seeds s1a-linear-ae --no-report \\
        --storage sqlite:////tmp/oldfix/optuna.db --tracking-uri sqlite:////tmp/oldfix/mlflow.db
    python -m study.export --objective ae --out /tmp/oldfix/best.yaml \\
        --storage sqlite:////tmp/oldfix/optuna.db --tracking-uri sqlite:////tmp/oldfix/mlflow.db

and the trial's ``checkpoint/model.pt`` and ``encoder/encoder.pt2`` copied beside them.
MLflow keeps absolute artifact paths, so the test moves the stores from ``/tmp/oldfix`` to
its own folder first, by rewriting that prefix in both databases and the config.
"""

import sqlite3
import tarfile
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml

from study import export, report, run
from study.artifacts import checkpoint
from study.artifacts.encoder import Encoder

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "old-layout-513a087.tar.gz"
WRITTEN_AT = "/tmp/oldfix"


def relocate(db: Path, old: str, new: str) -> None:
    """Every text value in ``db`` with the prefix ``old`` rewritten to ``new``."""
    con = sqlite3.connect(db)
    tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
    for table in tables:
        for _, column, kind, *_ in con.execute(f'pragma table_info("{table}")').fetchall():
            if "CHAR" in kind.upper() or "TEXT" in kind.upper():
                con.execute(
                    f'update "{table}" set "{column}" = replace("{column}", ?, ?) '
                    f'where "{column}" like ?',
                    (old, new, f"%{old}%"),
                )
    con.commit()
    con.close()


@pytest.fixture
def old(tmp_path):
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    where = tmp_path / "oldfix"
    for db in ("optuna.db", "mlflow.db"):
        relocate(where / db, WRITTEN_AT, str(where))
    config = where / "best.yaml"
    config.write_text(config.read_text().replace(WRITTEN_AT, str(where)))
    return where


def stores(where):
    return [
        "--storage",
        f"sqlite:///{where}/optuna.db",
        "--tracking-uri",
        f"sqlite:///{where}/mlflow.db",
    ]


def images(n=5):
    return np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_a_study_written_by_the_old_layout_resumes(old):
    args = ["--objective", "ae", "--epochs", "1", "--limit-train", "64", "--limit-val", "32"]
    assert (
        run.main([*args, *stores(old), "--trials", "2", "--no-report", "--refit-limit", "500"]) == 0
    )
    study = optuna.load_study(study_name="ae-fashion-mnist", storage=f"sqlite:///{old}/optuna.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert report.main(["--objective", "ae", *stores(old)]) == 0
    out = old / "again.yaml"
    assert export.main(["--objective", "ae", *stores(old), "--out", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["objective"] == "ae"


def test_its_config_checkpoint_and_encoders_load(old):
    config = yaml.safe_load((old / "best.yaml").read_text())
    latent = config["model"]["latent_dim"]
    for source in (old / "best.yaml", old / "model.pt", config["mlflow_run_id"]):
        enc = Encoder.load(str(source), tracking_uri=f"sqlite:///{old}/mlflow.db")
        assert enc.encode(images()).shape == (5, latent)
    model, spec = checkpoint.load(str(old / "model.pt"))
    assert spec.model.latent_dim == latent
    program = torch.export.load(str(old / "encoder.pt2")).module()
    x = torch.from_numpy(images()).float().div(255).unsqueeze(1)
    assert program(x).shape == (5, latent)
    registered = Encoder.load(
        "models:/ae-fashion-mnist-encoder@best", tracking_uri=f"sqlite:///{old}/mlflow.db"
    )
    assert registered.encode(images()).shape == (5, latent)
