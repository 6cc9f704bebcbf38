"""Finding, checking and loading Fashion-MNIST / MNIST, and the fixed train/validation split.

Where the files come from, in order:
1. an explicit directory (``--data-dir`` or ``$STUDY_DATA_DIR``): the four IDX files, plain or
   ``.gz``, directly inside it, in ``raw/`` or in ``<ClassName>/raw/``;
2. torchvision's root (``$STUDY_CACHE_DIR``, default ``~/.cache/latent-study``) when
   ``<ClassName>/raw/`` there already holds the files;
3. the Debian package's files (``apt-get install dataset-fashion-mnist`` puts them in
   ``/usr/share/datasets/fashion-mnist``), unpacked into torchvision's root;
4. a torchvision download into torchvision's root (needs internet).
Every file is checked against its IDX header before torchvision's dataset class reads it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from models import Split

from .errors import DataError

DATASETS = {
    # name: (torchvision class, Debian package dir, Debian package)
    "fashion-mnist": ("FashionMNIST", "/usr/share/datasets/fashion-mnist", "dataset-fashion-mnist"),
    "mnist": ("MNIST", "/usr/share/datasets/mnist", None),
}
FILES = {  # name: (IDX magic number, shape)
    "train-images-idx3-ubyte": (0x0803, (60000, 28, 28)),
    "train-labels-idx1-ubyte": (0x0801, (60000,)),
    "t10k-images-idx3-ubyte": (0x0803, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": (0x0801, (10000,)),
}
VAL_SIZE = 10_000
SPLIT_SEED = 0  # fixed forever: changing it would change every study's validation set


@dataclass
class Dataset:
    """The fixed splits of one data set: 50k train, 10k validation, 10k test."""

    name: str
    train: Split
    val: Split
    test: Split
    source: str

    def to(self, device) -> Dataset:
        return Dataset(
            self.name, self.train.to(device), self.val.to(device), self.test.to(device), self.source
        )


def cache_root() -> Path:
    return Path(os.environ.get("STUDY_CACHE_DIR", Path.home() / ".cache" / "latent-study"))


def check_idx(path: Path, name: str) -> None:
    """Raise ``DataError`` naming ``path`` unless it is a complete IDX file of kind ``name``."""
    magic, shape = FILES[name]
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(4 + 4 * len(shape))
    if len(header) < 4 + 4 * len(shape):
        raise DataError(
            f"{path} is truncated ({size} bytes, shorter than its IDX header); "
            "delete it and fetch the data set again"
        )
    got_magic, *dims = struct.unpack(f">I{len(shape)}I", header)
    if got_magic != magic:
        raise DataError(
            f"{path} is not an IDX file of the expected kind (magic "
            f"{got_magic:#x}, expected {magic:#x}); delete it and fetch it again"
        )
    if list(dims[1:]) != list(shape[1:]):
        raise DataError(
            f"{path} has shape {dims}, expected [N, {', '.join(map(str, shape[1:]))}]; "
            "delete it and fetch the data set again"
        )
    want = len(header) + int(torch.tensor(dims).prod())
    if size != want:
        raise DataError(
            f"{path} is truncated or corrupt: {size} bytes, its header promises "
            f"{want}; delete it and fetch the data set again"
        )


def _find(directory: Path, cls: str) -> dict[str, Path] | None:
    """The four files (plain preferred over .gz) in one of the accepted layouts."""
    for d in (directory, directory / "raw", directory / cls / "raw"):
        found = {}
        for name in FILES:
            for candidate in (d / name, d / f"{name}.gz"):
                if candidate.is_file():
                    found[name] = candidate
                    break
        if len(found) == len(FILES):
            return found
    return None


def _materialise(files: dict[str, Path], raw_dir: Path) -> None:
    """Check each file and place it, uncompressed, in torchvision's ``raw_dir``."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        dst = raw_dir / name
        if src.resolve() == dst.resolve():
            check_idx(dst, name)
            continue
        fd, tmp = tempfile.mkstemp(dir=raw_dir, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                if src.suffix == ".gz":
                    try:
                        with gzip.open(src, "rb") as f:
                            shutil.copyfileobj(f, out)
                    except (OSError, EOFError, zlib.error) as e:
                        raise DataError(
                            f"{src} is not a readable gzip file ({e}); "
                            "delete it and fetch the data set again"
                        ) from None
                else:
                    with open(src, "rb") as f:
                        shutil.copyfileobj(f, out)
            try:
                check_idx(Path(tmp), name)
            except DataError as e:
                raise DataError(str(e).replace(tmp, str(src))) from None
            os.replace(tmp, dst)  # atomic: a crash never leaves a half-written file behind
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def locate(
    name: str,
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    system_dir: str | Path | None = None,
) -> tuple[Path, str]:
    """Make sure torchvision can read ``name``; return (torchvision root, where it came from).

    ``system_dir`` overrides the Debian package's directory (tests use it).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    cls, debian_dir, package = DATASETS[name]
    data_dir = data_dir or os.environ.get("STUDY_DATA_DIR") or None
    root = cache_root()
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        files = _find(data_dir, cls) if data_dir.is_dir() else None
        if files is None:
            raise DataError(
                f"no {name} IDX files in data directory {str(data_dir)!r}: expected "
                f"{', '.join(FILES)} (optionally .gz) there, in raw/ or in {cls}/raw/; "
                "fix --data-dir / $STUDY_DATA_DIR or leave it unset to search the defaults"
            )
        if all(p.parent == data_dir / cls / "raw" and p.suffix != ".gz" for p in files.values()):
            for n, p in files.items():
                check_idx(p, n)
            return data_dir, f"data directory {data_dir}"
        _materialise(files, root / cls / "raw")
        return root, f"data directory {data_dir}"
    raw = root / cls / "raw"
    if all((raw / n).is_file() for n in FILES):
        for n in FILES:
            check_idx(raw / n, n)
        return root, f"torchvision root {root}"
    system = Path(system_dir if system_dir is not None else debian_dir)
    files = _find(system, cls) if system.is_dir() else None
    if files is not None:
        _materialise(files, raw)
        return root, f"Debian package files in {system}"
    if download:
        import torchvision

        try:
            getattr(torchvision.datasets, cls)(str(root), train=True, download=True)
            getattr(torchvision.datasets, cls)(str(root), train=False, download=True)
        except Exception as e:  # noqa: BLE001 - any network/IO failure means "not available"
            how = (
                f"`sudo apt-get install {package}` (files land in {debian_dir})"
                if package
                else "copy the four IDX files from a machine with internet"
            )
            raise DataError(
                f"{name} not found (looked in $STUDY_DATA_DIR, {raw}, {system}) and the "
                f"download failed ({type(e).__name__}: {' '.join(str(e).split())[:160]}); get the files with "
                f"{how}, or put them in a directory and pass --data-dir DIR"
            ) from None
        for n in FILES:
            check_idx(raw / n, n)
        return root, f"downloaded into {root}"
    raise DataError(
        f"{name} not found (looked in {raw} and {system}) and downloading is off; "
        "pass --data-dir DIR or install the Debian package"
    )


def load(
    name: str = "fashion-mnist",
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    system_dir: str | Path | None = None,
) -> Dataset:
    """Load ``name`` through torchvision's dataset class and split it.

    The 60k training images are split once, with ``SPLIT_SEED``, into 50,000 train and
    10,000 validation images; the 10k test images are kept apart for final evaluation.
    """
    import torchvision

    root, source = locate(name, data_dir, download=download, system_dir=system_dir)
    cls = getattr(torchvision.datasets, DATASETS[name][0])
    train = cls(str(root), train=True, download=False)
    test = cls(str(root), train=False, download=False)
    for part in (train, test):
        if len(part.data) != len(part.targets):
            raise DataError(
                f"{name} in {root}: {len(part.data)} images but "
                f"{len(part.targets)} labels; fetch the data set again"
            )
    n = len(train.targets)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    val_size = VAL_SIZE if n == 60_000 else n // 6  # small files (tests) keep the 5:1 ratio
    val_idx, train_idx = order[:val_size], order[val_size:]
    return Dataset(
        name,
        Split(train.data[train_idx].contiguous(), train.targets[train_idx].contiguous()),
        Split(train.data[val_idx].contiguous(), train.targets[val_idx].contiguous()),
        Split(test.data, test.targets),
        source,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m study.data``: find (or fetch) the data and say where it came from."""
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
        root, source = locate(args.dataset, args.data_dir, download=not args.no_download)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.dataset}: {source} (torchvision root {root})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
