import shutil

import pytest

from study import run

TINY = ["--epochs", "2", "--limit-train", "300", "--limit-val", "200"]


def stores(path):
    return [
        "--storage",
        f"sqlite:///{path}/optuna.db",
        "--tracking-uri",
        f"sqlite:///{path}/mlflow.db",
    ]


def run_study(path, *args):
    return run.main([*TINY, *stores(path), "--no-refit", *args])


@pytest.fixture(scope="session")
def classifier_study(tmp_path_factory):
    """A finished 3-trial classifier study; copy it before changing it."""
    path = tmp_path_factory.mktemp("clf")
    assert run_study(path, "--trials", "3") == 0
    return path


def copy_stores(src, dst):
    """A copy of a study's stores to change. MLflow's artifact locations are absolute, so
    runs keep reading (and new runs keep writing) the original's ``artifacts/``: it is not
    copied (a copy per test would cost ~200 MB of disk each)."""
    shutil.copytree(src, dst, ignore=lambda d, names: ["artifacts"] if d == str(src) else [])
    return dst


@pytest.fixture
def study_copy(classifier_study, tmp_path):
    return copy_stores(classifier_study, tmp_path / "stores")
