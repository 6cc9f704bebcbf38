import gzip
import struct

import numpy as np
import pytest
import torch

from study import data


def _write_idx(path, array, gz=False):
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x0800 | array.ndim
    blob = struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(blob)
    return path


def _write_dataset(directory, n_train=60, n_test=12, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    for name, array in arrays.items():
        _write_idx(directory / (name + (".gz" if gz else "")), array, gz=gz)
    return arrays


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("STUDY_DATA_DIR", raising=False)


@pytest.mark.parametrize("gz", [False, True])
def test_reads_idx_files_from_an_explicit_directory(tmp_path, gz):
    arrays = _write_dataset(tmp_path / "d", gz=gz)
    ds = data.load("fashion-mnist", tmp_path / "d", download=False, system_dir=tmp_path / "no")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (50, 10, 12)
    assert ds.train.images.dtype == torch.uint8 and ds.train.images.shape[1:] == (1, 28, 28)
    # Every training image is one of the file's, with its own label.
    images = torch.cat([ds.train.images, ds.val.images]).squeeze(1).numpy()
    labels = torch.cat([ds.train.labels, ds.val.labels]).numpy()
    src = arrays["train-images-idx3-ubyte"].astype(np.uint8)
    for img, lab in zip(images, labels, strict=True):
        (idx,) = np.where((src == img).all(axis=(1, 2)))
        assert lab == idx[0] % 10
    assert np.array_equal(
        ds.test.images.squeeze(1).numpy(), arrays["t10k-images-idx3-ubyte"].astype(np.uint8)
    )


def test_environment_variable_names_the_directory(tmp_path, monkeypatch):
    _write_dataset(tmp_path / "env" / "FashionMNIST" / "raw")
    monkeypatch.setenv("STUDY_DATA_DIR", str(tmp_path / "env"))
    ds = data.load("fashion-mnist", download=False, system_dir=tmp_path / "no")
    assert "data directory" in ds.source and len(ds.test) == 12


def test_debian_directory_is_used_and_unpacked_into_torchvision_root(tmp_path):
    _write_dataset(tmp_path / "debian", gz=True)
    ds = data.load("fashion-mnist", download=False, system_dir=tmp_path / "debian")
    assert "Debian" in ds.source
    raw = tmp_path / "cache" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(data.FILES)
    again = data.load("fashion-mnist", download=False, system_dir=tmp_path / "gone")
    assert "torchvision root" in again.source


def test_split_is_fixed(tmp_path):
    _write_dataset(tmp_path / "d")
    a = data.load("fashion-mnist", tmp_path / "d", download=False)
    b = data.load("fashion-mnist", tmp_path / "d", download=False)
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.train.labels, b.train.labels)


def test_truncated_file_is_rejected_naming_the_file(tmp_path):
    _write_dataset(tmp_path / "d")
    bad = tmp_path / "d" / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(data.DataError, match=r"train-images-idx3-ubyte is truncated"):
        data.load("fashion-mnist", tmp_path / "d", download=False)


def test_truncated_gzip_is_rejected_naming_the_file(tmp_path):
    _write_dataset(tmp_path / "d", gz=True)
    bad = tmp_path / "d" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:20])
    with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte.gz"):
        data.load("fashion-mnist", tmp_path / "d", download=False)


def test_wrong_magic_is_rejected(tmp_path):
    _write_dataset(tmp_path / "d")
    _write_idx(tmp_path / "d" / "train-labels-idx1-ubyte", np.zeros((60, 28, 28)))
    with pytest.raises(data.DataError, match="train-labels-idx1-ubyte is not an IDX file"):
        data.load("fashion-mnist", tmp_path / "d", download=False)


def test_explicit_directory_without_files_says_what_it_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match=r"no fashion-mnist IDX files in data directory"):
        data.load("fashion-mnist", tmp_path / "empty")


def test_offline_with_nothing_found_says_how_to_get_the_files(tmp_path, monkeypatch):
    import torchvision

    # The network cannot be reached from here anyway; point the mirror at a closed local
    # port so the test behaves the same on a machine with internet.
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(data.DataError) as info:
        data.load("fashion-mnist", system_dir=tmp_path / "none")
    text = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in text and "--data-dir" in text


def test_unknown_dataset():
    with pytest.raises(data.DataError, match="'cifar'"):
        data.load("cifar")


def test_real_fashion_mnist_sizes(fmnist):
    assert (len(fmnist.train), len(fmnist.val), len(fmnist.test)) == (50_000, 10_000, 10_000)
    assert sorted(fmnist.val.labels.unique().tolist()) == list(range(10))
