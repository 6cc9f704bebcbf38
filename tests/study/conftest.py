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
    return run.main([*TINY, *stores(path), *args])


@pytest.fixture(scope="session")
def classifier_study(tmp_path_factory):
    """A finished 3-trial classifier study; copy it before changing it."""
    path = tmp_path_factory.mktemp("clf")
    assert run_study(path, "--trials", "3") == 0
    return path


@pytest.fixture
def study_copy(classifier_study, tmp_path):
    dst = tmp_path / "stores"
    shutil.copytree(classifier_study, dst)
    # The experiment's artifact location is absolute: checkpoints stay in the original.
    return dst
