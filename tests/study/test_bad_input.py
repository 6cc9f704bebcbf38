"""Every user error: one line naming the value and the fix, exit code 2, stores untouched."""

import hashlib
import shutil

import pytest
import yaml

from study import export, run, train
from study.data import loading as data

from .conftest import TINY, copy_stores, stores


def _call(main, argv):
    try:
        return main(argv)
    except SystemExit as e:  # argparse
        return e.code


def _digest(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.glob("*.db"))}


@pytest.fixture
def existing(classifier_study, tmp_path):
    return copy_stores(classifier_study, tmp_path / "stores")


def _assert_refused(main, argv, path, capsys, *needles):
    before = _digest(path)
    capsys.readouterr()
    assert _call(main, argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert _digest(path) == before


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--trials", "abc"], ["--trials", "'abc'"]),
        (["--trials", "0"], ["--trials", "'0'"]),
        (["--trials", "-3"], ["--trials", "'-3'"]),
        (["--epochs", "0"], ["--epochs", "'0'"]),
        (["--epochs", "two"], ["--epochs", "'two'"]),
        (["--objective", "gan"], ["--objective", "'gan'"]),
        (["--dataset", "cifar"], ["--dataset", "'cifar'"]),
        (["--sampler", "grid"], ["--sampler", "'grid'"]),
        (["--pruner", "wise"], ["--pruner", "'wise'"]),
        (["--device", "tpu"], ["'tpu'", "auto, cpu"]),
        (["--timeout", "-1"], ["--timeout", "'-1'"]),
        (["--snapshot-every", "-5"], ["--snapshot-every", "'-5'", ">= 0"]),
        (["--snapshot-every", "nan"], ["--snapshot-every", "'nan'"]),
        (["--enqueue-seeds", "s9-gan"], ["--enqueue-seeds", "'s9-gan'", "s0-latent-classifier"]),
        (
            ["--objective", "vae", "--study-name", "v", "--enqueue-seeds", "s2-mlp-ae-3d"],
            ["--enqueue-seeds", "'s2-mlp-ae-3d'", "'vae'", "s3-mlp-vae"],
        ),
        (
            ["--objective", "ae", "--study-name", "classifier-fashion-mnist"],
            ["holds objective 'classifier'", "--study-name"],
        ),
        (
            ["--dataset", "mnist", "--data-dir", "{fm}"],
            ["these files are Fashion-MNIST, not MNIST", "--dataset fashion-mnist"],
        ),
        (
            ["--dataset", "mnist", "--study-name", "classifier-fashion-mnist"],
            ["'fashion-mnist'", "--dataset"],
        ),
    ],
)
def test_run_refuses_bad_options(existing, capsys, extra, needles, fmnist_files):
    fm = fmnist_files["train-images-idx3-ubyte"].parent
    extra = [e.replace("{fm}", str(fm)) for e in extra]
    _assert_refused(
        run.main, [*TINY, *stores(existing), "--trials", "4", *extra], existing, capsys, *needles
    )


def test_cuda_device_without_cuda(existing, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: --device cuda is valid here")
    _assert_refused(
        run.main,
        [*TINY, *stores(existing), "--trials", "4", "--device", "cuda"],
        existing,
        capsys,
        "'cuda'",
        "CUDA is not available",
    )


@pytest.mark.parametrize(
    "storage, needles",
    [
        ("redis://localhost/0", ["unknown --storage", "'redis://localhost/0'", "sqlite:///"]),
        ("sqlite:///", ["names no file"]),
        ("postgresql://user:secret@127.0.0.1:1/optuna", ["127.0.0.1:1", "user:***"]),
    ],
)
def test_run_refuses_bad_storage(existing, capsys, storage, needles):
    argv = [*TINY, "--storage", storage, "--tracking-uri", f"sqlite:///{existing}/mlflow.db"]
    _assert_refused(run.main, argv, existing, capsys, *needles)
    assert "secret" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "uri, needles",
    [
        ("./mlruns", ["--tracking-uri", "'./mlruns'", "sqlite:///mlruns/mlflow.db"]),
        ("http://127.0.0.1:9", ["unreachable", "http://127.0.0.1:9"]),
    ],
)
def test_run_refuses_bad_tracking_uri(existing, capsys, uri, needles):
    argv = [*TINY, "--storage", f"sqlite:///{existing}/optuna.db", "--tracking-uri", uri]
    _assert_refused(run.main, argv, existing, capsys, *needles)


def test_unwritable_mlruns(existing, tmp_path, capsys):
    # Root ignores permission bits, so "unwritable" is a path through a regular file.
    blocker = tmp_path / "mlruns"
    blocker.write_text("not a directory")
    argv = [
        *TINY,
        "--storage",
        f"sqlite:///{blocker}/optuna.db",
        "--tracking-uri",
        f"sqlite:///{existing}/mlflow.db",
    ]
    _assert_refused(run.main, argv, existing, capsys, str(blocker), "--storage")


def test_missing_data_without_network(existing, tmp_path, capsys, monkeypatch):
    import torchvision

    monkeypatch.setenv("STUDY_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setitem(
        data.DATASETS,
        "fashion-mnist",
        data.Source("FashionMNIST", str(tmp_path / "no-debian"), "dataset-fashion-mnist", None),
    )
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "mirrors", ["http://127.0.0.1:9/"])
    _assert_refused(
        run.main,
        [*TINY, *stores(existing)],
        existing,
        capsys,
        "apt-get install dataset-fashion-mnist",
        "--data-dir",
    )


def test_empty_data_dir(existing, tmp_path, capsys):
    (tmp_path / "nothing").mkdir()
    _assert_refused(
        run.main,
        [*TINY, *stores(existing), "--data-dir", str(tmp_path / "nothing")],
        existing,
        capsys,
        str(tmp_path / "nothing"),
        "--data-dir",
    )


def test_corrupt_data_file(existing, tmp_path, capsys, fmnist_files):
    (tmp_path / "d").mkdir()
    for path in fmnist_files.values():
        shutil.copy(path, tmp_path / "d")
    bad = tmp_path / "d" / "train-labels-idx1-ubyte"
    bad.write_bytes(bad.read_bytes()[:1000])
    _assert_refused(
        run.main,
        [*TINY, *stores(existing), "--data-dir", str(tmp_path / "d")],
        existing,
        capsys,
        str(bad),
        "truncated",
    )


def test_export_of_a_missing_study(existing, capsys):
    _assert_refused(
        export.main,
        [*stores(existing), "--study-name", "nope"],
        existing,
        capsys,
        "'nope'",
        "--study-name",
    )


def test_export_of_an_unfinished_trial(existing, capsys):
    _assert_refused(
        export.main, [*stores(existing), "--trial", "99"], existing, capsys, "trial 99", "completed"
    )


@pytest.fixture
def good_config(existing, tmp_path):
    out = tmp_path / "best.yaml"
    assert export.main([*stores(existing), "--out", str(out)]) == 0
    return yaml.safe_load(out.read_text())


def _edit(cfg, path, **changes):
    cfg = yaml.safe_load(yaml.safe_dump(cfg))
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = cfg
        for p in parents:
            target = target[p]
        target[key] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    "change, needles",
    [
        ({"train__lr": -1}, ["lr", "-1"]),
        ({"train__epochs": 0}, ["epochs", "0"]),
        ({"model__pretrain_epochs": -1}, ["pretrain_epochs", "-1"]),
        ({"model__freeze": "thaw"}, ["freeze", "'thaw'"]),
        ({"train__momentum": 0.9}, ["unknown key", "momentum"]),
        ({"modle": {}}, ["unknown key", "modle"]),
        ({"objective": "gan"}, ["'gan'"]),
        ({"dataset": "cifar"}, ["'cifar'"]),
    ],
)
def test_train_refuses_bad_configs(existing, good_config, tmp_path, capsys, change, needles):
    path = _edit(good_config, tmp_path / "bad.yaml", **change)
    _assert_refused(
        train.main, ["--config", str(path), *stores(existing)[2:]], existing, capsys, *needles
    )


@pytest.mark.parametrize(
    "name, text, needle",
    [
        ("nope.yaml", None, "does not exist"),
        ("bad.yaml", "model: [unclosed\n", "not valid YAML"),
        ("bad.json", '{"model": ', "not valid JSON"),
        ("list.yaml", "- 1\n- 2\n", "mapping"),
    ],
)
def test_train_refuses_missing_and_malformed_files(existing, tmp_path, capsys, name, text, needle):
    if text is not None:
        (tmp_path / name).write_text(text)
    argv = ["--config", str(tmp_path / name), *stores(existing)[2:]]
    _assert_refused(train.main, argv, existing, capsys, name, needle)


def test_missing_postgres_driver_is_a_usage_error(tmp_path):
    """As on a machine without the [postgres] extra: one line, exit 2, nothing written."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('psycopg', 'psycopg2'): sys.modules[m] = None\n"
        "from study import run\n"
        "sys.exit(run.main(['--trials', '1', '--storage', 'postgresql://u@127.0.0.1:5/x',"
        f" '--tracking-uri', 'sqlite:///{tmp_path}/mlflow.db']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "driver" in lines[0] and "pip install -e '.[postgres]'" in lines[0]
    assert not list(tmp_path.iterdir())
