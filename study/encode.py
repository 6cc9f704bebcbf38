"""``python -m study.encode``: latent vectors of a data set split or a folder of PNGs.

The latents and labels go to ``.npz`` (and optionally ``.csv``); ``--export-encoder`` writes
the encoder alone as a ``torch.export`` program that loads with torch only::

    import torch
    encoder = torch.export.load("encoder.pt2").module()
    z = encoder(images_float_in_0_1)       # [B, 1, 28, 28] -> [B, latent_dim]

The Python API is :class:`study.encoder.Encoder` (also importable from here).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from study.artifacts.encoder import RUN_ID, Encoder, as_images
from study.cli import (
    Parser,
    add_data_dir_option,
    add_dataset_option,
    add_device_option,
    add_tracking_option,
    entry,
    non_negative_int,
    positive_int,
)
from study.errors import EncodeError
from study.settings import EncodeSettings, from_namespace

__all__ = ["EncodeError", "Encoder", "as_images", "main", "read_png_folder"]


def read_png_folder(folder: str | Path) -> tuple[torch.Tensor, list[str]]:
    """All ``*.png`` files of a folder (sorted by name) as uint8 ``[N, 1, 28, 28]``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EncodeError(f"--images {str(folder)!r} is not a directory of PNG files")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise EncodeError(
            f"--images {str(folder)!r} holds no .png files; put 28x28 greyscale PNGs there"
        )
    arrays = [read_png(p) for p in files]
    return torch.from_numpy(np.stack(arrays)).unsqueeze(1), [p.name for p in files]


def read_png(path: Path) -> np.ndarray:
    """One 28x28 one-channel PNG as uint8; anything else is an ``EncodeError`` naming it."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            bands, mode, size = len(img.getbands()), img.mode, img.size
            if size != (28, 28):
                raise EncodeError(
                    f"{path} is {size[0]}x{size[1]}; every image must be 28x28 (resize it)"
                )
            if mode not in ("L", "1"):
                raise EncodeError(
                    f"{path} has {bands} channel(s) (mode {mode}); images must be 8-bit "
                    "greyscale with one channel (e.g. PIL's Image.convert('L'))"
                )
            return np.asarray(img.convert("L"), dtype=np.uint8)
    except EncodeError:
        raise
    except Exception as e:  # noqa: BLE001 - PIL's errors for a broken file
        raise EncodeError(f"{path} is not a readable PNG ({e})") from None


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.encode",
        description="Write the latent vectors (and labels) of a dataset split or of a folder "
        "of 28x28 greyscale PNGs to .npz (and .csv), using a trained model from an exported "
        "config, an MLflow run or a checkpoint.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="YAML/JSON file from study.export")
    src.add_argument("--run", metavar="RUN_ID", help="MLflow run id of a completed trial")
    src.add_argument("--checkpoint", metavar="PATH_OR_URI", help="a model.pt path or URI")
    src.add_argument(
        "--model",
        metavar="models:/NAME@ALIAS",
        help="a registered model, e.g. models:/classifier-fashion-mnist-encoder@best",
    )
    add_tracking_option(p, from_config=True)
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--split",
        choices=["train", "val", "test"],
        default="test",
        help="dataset split: the study's 50,000 train / 10,000 validation images or the "
        "10,000 test images (default: %(default)s)",
    )
    what.add_argument("--images", metavar="DIR", help="a folder of 28x28 greyscale PNG files")
    add_dataset_option(p, default=None)
    p.add_argument("--limit", type=non_negative_int, default=0, help="first N images only; 0 = all")
    p.add_argument("--out", type=Path, default=Path("latents.npz"), help="output .npz")
    p.add_argument("--csv", type=Path, default=None, metavar="FILE", help="also write a CSV file")
    p.add_argument("--sample", action="store_true", help="VAE: sample z ~ q(z|x), not the mean")
    p.add_argument("--seed", type=int, default=0, help="seed for --sample (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=1024, help="default: %(default)s")
    add_device_option(p)
    add_data_dir_option(p)
    p.add_argument(
        "--export-encoder",
        type=Path,
        default=None,
        metavar="FILE.pt2",
        help="also write the encoder alone as a torch.export program (loads with torch only)",
    )
    return p


def check_out(path: Path, suffix: str, flag: str) -> None:
    if path.suffix.lower() != suffix:
        raise EncodeError(f"{flag} {str(path)!r} must end in {suffix}")
    if path.is_dir():
        raise EncodeError(f"{flag} {str(path)!r} is a directory; name a file")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise EncodeError(f"{flag} {str(path)!r}: {parent} is not a directory")


def write_csv(path: Path, latents: np.ndarray, columns: dict[str, np.ndarray]) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*columns, *(f"z{i}" for i in range(latents.shape[1]))])
        for i in range(len(latents)):
            w.writerow(
                [*(c[i] for c in columns.values()), *(f"{v:.6g}" for v in latents[i].tolist())]
            )


def load_encoder(s: EncodeSettings, device) -> Encoder:
    tracking = s.tracking.url if s.tracking is not None else None
    if s.config:
        return Encoder.from_config(s.config, tracking_uri=tracking, device=device)
    if s.model:
        return Encoder.from_registry(s.model, tracking_uri=tracking, device=device)
    if s.run:
        if not RUN_ID.match(s.run):
            raise EncodeError(
                f"--run {s.run!r} is not an MLflow run id (32 hex digits); see the trial's "
                "mlflow_run_id in study.export's file or the MLflow UI"
            )
        return Encoder.from_run(s.run, tracking_uri=tracking, device=device)
    return Encoder.from_checkpoint(s.checkpoint, tracking_uri=tracking, device=device)


def inputs(s: EncodeSettings, encoder: Encoder, images) -> tuple[Any, dict[str, Any], str]:
    """(images, extra arrays for the .npz, a description of them)."""
    from study.data import loading as data_mod

    if images is not None:
        images, names = images
        if s.limit:
            images, names = images[: s.limit], names[: s.limit]
        return images, {"files": np.array(names)}, f"{len(names)} PNG files in {s.images}"
    dataset_name = s.dataset or encoder.dataset or "fashion-mnist"
    data = data_mod.load(dataset_name, s.data_dir)
    split = getattr(data, s.split).head(s.limit or None)
    arrays = {"labels": split.labels.numpy(), "index": np.arange(len(split))}
    return split.images, arrays, f"{dataset_name} {s.split} split, {len(split)} images"


@entry
def main(argv: list[str] | None = None) -> int:
    return encode(from_namespace(EncodeSettings, build_parser().parse_args(argv)))


def encode(s: EncodeSettings) -> int:
    from models import resolve_device

    check_out(s.out, ".npz", "--out")
    if s.csv:
        check_out(s.csv, ".csv", "--csv")
    if s.export_encoder:
        check_out(s.export_encoder, ".pt2", "--export-encoder")
    device = resolve_device(s.device)
    pngs = read_png_folder(s.images) if s.images else None
    encoder = load_encoder(s, device)
    images, arrays, where = inputs(s, encoder, pngs)
    latents = encoder.encode(
        images, sample=s.sample, seed=s.seed if s.sample else None, batch_size=s.batch_size,
        progress=True,
    ).numpy()  # fmt: skip
    arrays = {"latents": latents, **arrays}
    s.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        s.out,
        **arrays,
        latent_dim=np.array(encoder.latent_dim),
        family=np.array(encoder.family),
        source=np.array(encoder.source),
    )
    print(
        f"Encoded {where} with the {encoder.family} model ({encoder.latent_dim}-d latents) "
        f"-> {s.out}"
    )
    if s.csv:
        names = {"index": "index", "labels": "label", "files": "file"}
        write_csv(s.csv, latents, {names[k]: arrays[k] for k in names if k in arrays})
        print(f"Wrote {s.csv}")
    if s.export_encoder:
        path = encoder.export(s.export_encoder)
        print(f"Wrote the encoder alone to {path} (torch.export.load(path).module() loads it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
