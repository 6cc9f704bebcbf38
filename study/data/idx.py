"""The four IDX files of MNIST and Fashion-MNIST: finding them, checking that they are whole,
and checking that they are the data set their name says.

The two data sets have the same magic numbers and shapes, so a header cannot tell them
apart: each file's content (uncompressed) is compared with the MD5 of the official release.
A file that matched once is remembered by path, size and modification time, so the check
(under a second for all four) runs once per file.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path

from study.errors import DataError

FILES = {  # name: (IDX magic number, shape)
    "train-images-idx3-ubyte": (0x0803, (60000, 28, 28)),
    "train-labels-idx1-ubyte": (0x0801, (60000,)),
    "t10k-images-idx3-ubyte": (0x0803, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": (0x0801, (10000,)),
}
# MD5 of each official file's uncompressed content. torchvision lists the MD5s of the
# compressed downloads (``torchvision.datasets.MNIST.resources``); recompressed copies such as
# Debian's differ there but not here. See BENCHMARKS.md for where these were checked.
OFFICIAL_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
MEMO = "verified.json"  # in the cache
MEMO_BESIDE = ".latent-study-verified.json"  # beside the files of an explicit data directory


def find(directory: Path, cls: str) -> tuple[dict[str, Path], Path | None]:
    """The files (plain preferred over .gz) in the first accepted layout that has any:
    ``directory``, ``directory/raw`` or ``directory/<cls>/raw``; and that folder."""
    for d in (directory, directory / "raw", directory / cls / "raw"):
        found = {}
        for name in FILES:
            for candidate in (d / name, d / f"{name}.gz"):
                if candidate.is_file():
                    found[name] = candidate
                    break
        if found:
            return found, d
    return {}, None


def read(path: Path) -> bytes:
    """A file's uncompressed content; a damaged gzip file is a ``DataError`` naming it."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{path} is not a readable gzip file ({e}); delete it and fetch the data set again"
        ) from None


def check_header(content: bytes, name: str, where: Path) -> None:
    """Raise ``DataError`` naming ``where`` unless ``content`` is a whole IDX file ``name``."""
    magic, shape = FILES[name]
    header_size = 4 + 4 * len(shape)
    if len(content) < header_size:
        raise DataError(
            f"{where} is truncated ({len(content)} bytes, shorter than its IDX header); "
            "delete it and fetch the data set again"
        )
    got_magic, *dims = struct.unpack(f">I{len(shape)}I", content[:header_size])
    if got_magic != magic:
        raise DataError(
            f"{where} is not an IDX file of the expected kind (magic {got_magic:#x}, "
            f"expected {magic:#x}); delete it and fetch it again"
        )
    if list(dims[1:]) != list(shape[1:]):
        raise DataError(
            f"{where} has shape {dims}, expected [N, {', '.join(map(str, shape[1:]))}]; "
            "delete it and fetch the data set again"
        )
    want = header_size + _product(dims)
    if len(content) != want:
        raise DataError(
            f"{where} is truncated or corrupt: {len(content)} bytes, its header promises "
            f"{want}; delete it and fetch the data set again"
        )


def _product(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def identify(md5: str) -> tuple[str, str] | None:
    """(data set, file name) of an official file with this content MD5, if any."""
    for dataset, files in OFFICIAL_MD5.items():
        for name, digest in files.items():
            if digest == md5:
                return dataset, name
    return None


def check_identity(md5: str, dataset: str, name: str, where: Path, fix: str) -> None:
    """Raise ``DataError`` unless ``md5`` is the official content of ``dataset``'s ``name``."""
    if OFFICIAL_MD5[dataset][name] == md5:
        return
    known = identify(md5)
    if known is not None and known[0] != dataset:
        what = f"these files are {TITLES[known[0]]}, not {TITLES[dataset]}"
    elif known is not None:
        what = f"{where.name} holds {TITLES[dataset]}'s {known[1]}, not its {name}"
    else:
        what = (
            f"{where} matches neither the official {TITLES[dataset]} nor "
            f"{TITLES['fashion-mnist' if dataset == 'mnist' else 'mnist']} {name} (MD5 {md5})"
        )
    raise DataError(f"{what} ({where.parent}); {fix}")


class Memo:
    """Files already checked, by absolute path, size and modification time, kept in the JSON
    file ``path``."""

    def __init__(self, path: Path):
        self.path = path

    def _load(self) -> dict:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(self.path.read_text())
        return {}

    @staticmethod
    def _key(path: Path) -> tuple[str, list[int]]:
        st = path.stat()
        return str(path.resolve()), [st.st_size, st.st_mtime_ns]

    def known(self, path: Path, dataset: str, name: str) -> bool:
        key, stamp = self._key(path)
        entry = self._load().get(key)
        return entry == {"stamp": stamp, "md5": OFFICIAL_MD5[dataset][name]}

    def remember(self, paths: dict[str, Path], dataset: str) -> None:
        """Record checked files; a memo that cannot be written only costs a re-check."""
        with contextlib.suppress(OSError):
            data = self._load()
            for name, path in paths.items():
                key, stamp = self._key(path)
                data[key] = {"stamp": stamp, "md5": OFFICIAL_MD5[dataset][name]}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".verified.")
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, self.path)


def verify(files: dict[str, Path], dataset: str, memo: Memo, fix: str) -> dict[str, bytes | None]:
    """Check every file's header and identity; the contents read on the way (None where the
    memo vouched for a file and it was not read)."""
    contents: dict[str, bytes | None] = {}
    for name, path in files.items():
        if memo.known(path, dataset, name):
            contents[name] = None
            continue
        content = read(path)
        check_header(content, name, path)
        check_identity(hashlib.md5(content).hexdigest(), dataset, name, path, fix)
        contents[name] = content
    memo.remember(files, dataset)
    return contents


def write_atomically(content: bytes, dst: Path) -> None:
    """Write ``dst`` so that a crash never leaves a half-written file behind."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
