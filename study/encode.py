"""The trained encoder as a feature extractor: a Python API and ``python -m study.encode``.

Python::

    from study.encode import Encoder
    enc = Encoder.load("best.yaml")        # or an MLflow run id, or a checkpoint path / URI
    z = enc.encode(images)                 # [N, 28, 28] or [N, 1, 28, 28] -> [N, latent_dim]
    x = enc.decode(z)                      # -> [N, 1, 28, 28] in [0, 1] (AE, VAE, pretrained clf)

Command line: the latent vectors and labels of a dataset split, or of a folder of 28x28
greyscale PNGs, to ``.npz`` (and optionally ``.csv``); ``--export-encoder`` writes the
encoder alone as a ``torch.export`` program that loads with torch only::

    import torch
    encoder = torch.export.load("encoder.pt2").module()
    z = encoder(images_float_in_0_1)       # [B, 1, 28, 28] -> [B, latent_dim]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._common import (
    DEFAULT_TRACKING,
    Parser,
    UsageError,
    exits_cleanly,
    non_negative_int,
    positive_int,
)
from .checkpoint import CHECKPOINT_DIR, CHECKPOINT_NAME, CheckpointError

ENCODER_DIR = "encoder"
ENCODER_NAME = "encoder.pt2"
META_NAME = "encoder.json"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
CONFIG_SUFFIXES = {".yaml", ".yml", ".json"}


class EncodeError(UsageError):
    """Input the encoder cannot take, or a source without a model; one line, exit 2."""


def as_images(images: Any, what: str = "images") -> torch.Tensor:
    """``[N, 28, 28]``, ``[N, 1, 28, 28]`` or one ``[28, 28]`` image -> float ``[N, 1, 28, 28]``.

    uint8 input is scaled by 1/255; float input must already lie in [0, 1]. A list of
    arrays or greyscale PIL images is stacked first.
    """
    if isinstance(images, (list, tuple)):
        if not images:
            raise EncodeError(f"no {what}: the list is empty")
        images = np.stack([np.asarray(i) for i in images])
    elif not isinstance(images, (np.ndarray, torch.Tensor)):
        images = np.asarray(images)  # e.g. one PIL image
    x = torch.as_tensor(images)
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise EncodeError(
            f"{what} have shape {list(torch.as_tensor(images).shape)}; expected 28x28 greyscale "
            "images as [N, 28, 28] or [N, 1, 28, 28] (one channel)"
        )
    if x.dtype == torch.uint8:
        return x.float().div_(255)
    if not x.is_floating_point():
        raise EncodeError(f"{what} have dtype {x.dtype}; pass uint8 (0-255) or float in [0, 1]")
    x = x.float()
    if x.numel() and (x.min() < -1e-3 or x.max() > 1 + 1e-3):
        raise EncodeError(
            f"float {what} range over [{x.min().item():.3g}, {x.max().item():.3g}]; "
            "scale them to [0, 1] (e.g. divide 0-255 values by 255)"
        )
    return x


class EncoderModule(torch.nn.Module):
    """``forward(images) -> latents`` of a trained model: the part that gets exported."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x)  # a VAE's mean


class Encoder:
    """A trained model with ``encode``/``decode``; build it with :meth:`load`."""

    def __init__(self, model: torch.nn.Module, spec, *, source: str, device="cpu"):
        self.model = model.eval()
        self.spec = spec
        self.source = source
        self.device = torch.device(device)
        self.latent_dim: int = model.latent_dim
        self.family: str = spec.model.family
        self.dataset: str | None = None  # known when loaded from an exported config

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def load(
        cls, source: str | Path, *, tracking_uri: str | None = None, device: str = "cpu"
    ) -> Encoder:
        """From an exported config file, an MLflow run id, or a checkpoint path / URI."""
        text = str(source)
        path = Path(text).expanduser()
        if path.suffix.lower() in CONFIG_SUFFIXES:
            return cls.from_config(path, tracking_uri=tracking_uri, device=device)
        if RUN_ID.match(text) and not path.exists():
            return cls.from_run(text, tracking_uri=tracking_uri, device=device)
        return cls.from_checkpoint(text, tracking_uri=tracking_uri, device=device)

    @classmethod
    def from_checkpoint(
        cls, uri: str, *, tracking_uri: str | None = None, device: str = "cpu"
    ) -> Encoder:
        from . import checkpoint

        try:
            model, spec = checkpoint.load(
                str(uri), tracking_uri=tracking_uri or DEFAULT_TRACKING, device=device
            )
        except CheckpointError as e:
            raise EncodeError(str(e)) from None
        return cls(model, spec, source=str(uri), device=device)

    @classmethod
    def from_run(cls, run_id: str, *, tracking_uri: str | None = None, device: str = "cpu"):
        uri = tracking_uri or DEFAULT_TRACKING
        from .tracking import client_for

        try:
            client = client_for(uri)
            run = client.get_run(run_id)
            names = {a.path for a in client.list_artifacts(run_id, CHECKPOINT_DIR)}
        except Exception as e:  # noqa: BLE001 - MLflow raises many kinds for a missing run
            raise EncodeError(
                f"no MLflow run {run_id!r} in {uri} ({str(e).splitlines()[0][:120]}); "
                "pass the store's --tracking-uri"
            ) from None
        if f"{CHECKPOINT_DIR}/{CHECKPOINT_NAME}" not in names:
            raise EncodeError(
                f"MLflow run {run_id} ({run.info.run_name}, {run.info.status}) has no "
                f"{CHECKPOINT_DIR}/{CHECKPOINT_NAME}: only completed trials keep a checkpoint; "
                "pick a completed trial's run (python -m study.export names the best one)"
            )
        return cls.from_checkpoint(
            f"runs:/{run_id}/{CHECKPOINT_DIR}/{CHECKPOINT_NAME}", tracking_uri=uri, device=device
        )

    @classmethod
    def from_config(
        cls, path: str | Path, *, tracking_uri: str | None = None, device: str = "cpu"
    ) -> Encoder:
        from objectives import TrialSpec

        from .export import read_config

        cfg = read_config(path)
        uri = cfg.get("checkpoint_uri")
        if not uri:
            raise EncodeError(
                f"{path} has no checkpoint_uri (its trial kept no checkpoint); train one with "
                f"python -m study.train --config {path}, then pass its run or checkpoint"
            )
        saved_uri = cfg.get("tracking_uri")
        if tracking_uri is None and saved_uri and "***" not in str(saved_uri):
            tracking_uri = None if saved_uri == "none" else saved_uri
        encoder = cls.from_checkpoint(uri, tracking_uri=tracking_uri, device=device)
        try:
            wanted = TrialSpec.from_dict(cfg).model
        except Exception as e:  # noqa: BLE001 - a hand-edited config
            raise EncodeError(f"{path}: {e}") from None
        if wanted != encoder.spec.model:
            raise EncodeError(f"checkpoint {uri!r} holds a different model than {path}")
        encoder.dataset = cfg.get("dataset")
        return encoder

    # -- use -----------------------------------------------------------------------------
    @property
    def can_decode(self) -> bool:
        """AE and VAE always; a classifier when its autoencoder was trained to reconstruct."""
        if self.family != "classifier":
            return True
        c = self.spec.model
        return c.pretrains or (c.freeze == "joint" and c.recon_weight > 0)

    def _batches(self, n: int, batch_size: int, progress: bool):
        from tqdm import tqdm

        bar = tqdm(
            total=n, unit="img", disable=None if progress else True, delay=1.0, file=sys.stderr
        )
        for start in range(0, n, batch_size):
            yield slice(start, min(n, start + batch_size))
            bar.update(min(batch_size, n - start))
        bar.close()

    @torch.inference_mode()
    def encode(
        self,
        images: Any,
        *,
        sample: bool = False,
        seed: int | None = None,
        batch_size: int = 1024,
        progress: bool = False,
    ):
        """Latent vectors ``[N, latent_dim]``: a torch tensor for torch input, else numpy.

        For a VAE this is the posterior mean; ``sample=True`` draws z ~ q(z|x) instead
        (``seed`` makes the draw repeatable).
        """
        x = as_images(images)
        generator = torch.Generator(self.device).manual_seed(seed) if seed is not None else None
        out = []
        for s in self._batches(len(x), batch_size, progress):
            xb = x[s].to(self.device)
            if sample and self.family == "vae":
                mu, logvar = self.model.encode_stats(xb)
                noise = torch.randn(mu.shape, generator=generator, device=mu.device)
                z = mu + noise * torch.exp(0.5 * logvar)
            else:
                z = self.model.encode(xb)
            out.append(z.float().cpu())
        z = torch.cat(out) if out else torch.empty(0, self.latent_dim)
        return z if isinstance(images, torch.Tensor) else z.numpy()

    @torch.inference_mode()
    def decode(self, latents: Any, *, batch_size: int = 1024):
        """Images ``[N, 1, 28, 28]`` in [0, 1] from latent vectors ``[N, latent_dim]``."""
        if not self.can_decode:
            raise EncodeError(
                "this classifier's autoencoder never learned to reconstruct (freeze=scratch, "
                "recon_weight=0): it has no decoder worth using"
            )
        z = torch.as_tensor(latents, dtype=torch.float32)
        if z.dim() == 1:
            z = z.unsqueeze(0)
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise EncodeError(
                f"latents have shape {list(z.shape)}; expected [N, {self.latent_dim}]"
            )
        ae = self.model.autoencoder if self.family == "classifier" else self.model
        out = [
            ae.decode(z[s].to(self.device)).float().clamp(0, 1).cpu()
            for s in self._batches(len(z), batch_size, False)
        ]
        x = torch.cat(out) if out else torch.empty(0, 1, 28, 28)
        return x if isinstance(latents, torch.Tensor) else x.numpy()

    @torch.inference_mode()
    def predict(self, images: Any, *, batch_size: int = 1024):
        """Class indices (latent classifiers only)."""
        if self.family != "classifier":
            raise EncodeError(f"predict needs a latent classifier, this is a {self.family}")
        x = as_images(images)
        out = [
            self.model(x[s].to(self.device)).argmax(1).cpu()
            for s in self._batches(len(x), batch_size, False)
        ]
        y = torch.cat(out) if out else torch.empty(0, dtype=torch.long)
        return y if isinstance(images, torch.Tensor) else y.numpy()

    # -- export --------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "input": "float32 [B, 1, 28, 28], pixel values in [0, 1]",
            "output": f"float32 [B, {self.latent_dim}]"
            + (" (posterior mean)" if self.family == "vae" else ""),
            "latent_dim": self.latent_dim,
            "family": self.family,
            "source": self.source,
            "spec": self.spec.to_dict(),
            "torch": torch.__version__,
        }

    def export(self, path: str | Path) -> Path:
        """Write the encoder alone as a ``torch.export`` program (CPU, float32, any batch).

        Load it without this project: ``torch.export.load(path).module()(x)``.
        """
        path = Path(path)
        if path.suffix != ".pt2":
            raise EncodeError(f"encoder file {str(path)!r} must end in .pt2 (torch.export)")
        model = copy.deepcopy(self.model).float().cpu().eval()
        module = EncoderModule(model).eval()
        for p in module.parameters():
            p.requires_grad_(False)
        example = torch.rand(2, 1, 28, 28)
        batch = torch.export.Dim("batch")
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(
            program, str(path), extra_files={META_NAME: json.dumps(self.metadata(), indent=2)}
        )
        return path


def publish_encoder(client, run_id: str, *, tracking_uri: str) -> str | None:
    """Export a trial run's checkpoint as ``encoder/encoder.pt2`` in that run, once.

    Returns the artifact URI, or None when the run has no checkpoint.
    """
    import tempfile

    have = {a.path for a in client.list_artifacts(run_id, ENCODER_DIR)}
    uri = f"runs:/{run_id}/{ENCODER_DIR}/{ENCODER_NAME}"
    if f"{ENCODER_DIR}/{ENCODER_NAME}" in have:
        return uri
    try:
        encoder = Encoder.from_run(run_id, tracking_uri=tracking_uri)
    except EncodeError:  # no checkpoint: not a completed trial
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = encoder.export(Path(tmp) / ENCODER_NAME)
        (Path(tmp) / META_NAME).write_text(json.dumps(encoder.metadata(), indent=2) + "\n")
        client.log_artifact(run_id, str(path), ENCODER_DIR)
        client.log_artifact(run_id, str(Path(tmp) / META_NAME), ENCODER_DIR)
    return uri


# -- command line ------------------------------------------------------------------------
def read_png_folder(folder: str | Path) -> tuple[torch.Tensor, list[str]]:
    """All ``*.png`` files of a folder (sorted by name) as uint8 ``[N, 1, 28, 28]``."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise EncodeError(f"--images {str(folder)!r} is not a directory of PNG files")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise EncodeError(
            f"--images {str(folder)!r} holds no .png files; put 28x28 greyscale PNGs there"
        )
    arrays = []
    for p in files:
        try:
            with Image.open(p) as img:
                img.load()
                bands, mode, size = len(img.getbands()), img.mode, img.size
                if size != (28, 28):
                    raise EncodeError(
                        f"{p} is {size[0]}x{size[1]}; every image must be 28x28 (resize it)"
                    )
                if mode not in ("L", "1"):
                    raise EncodeError(
                        f"{p} has {bands} channel(s) (mode {mode}); images must be 8-bit "
                        "greyscale with one channel (e.g. PIL's Image.convert('L'))"
                    )
                arrays.append(np.asarray(img.convert("L"), dtype=np.uint8))
        except EncodeError:
            raise
        except Exception as e:  # noqa: BLE001 - PIL's errors for a broken file
            raise EncodeError(f"{p} is not a readable PNG ({e})") from None
    return torch.from_numpy(np.stack(arrays)).unsqueeze(1), [p.name for p in files]


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
    p.add_argument(
        "--tracking-uri",
        default=None,
        help=f"MLflow store holding the run/checkpoint (default: the config's, else "
        f"{DEFAULT_TRACKING})",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--split",
        choices=["train", "val", "test"],
        default="test",
        help="dataset split: the study's 50,000 train / 10,000 validation images or the "
        "10,000 test images (default: %(default)s)",
    )
    what.add_argument("--images", metavar="DIR", help="a folder of 28x28 greyscale PNG files")
    p.add_argument(
        "--dataset",
        choices=["fashion-mnist", "mnist"],
        default=None,
        help="dataset for --split (default: the config's, else fashion-mnist)",
    )
    p.add_argument("--limit", type=non_negative_int, default=0, help="first N images only; 0 = all")
    p.add_argument("--out", default="latents.npz", help="output .npz (default: %(default)s)")
    p.add_argument("--csv", default=None, metavar="FILE", help="also write a CSV file")
    p.add_argument("--sample", action="store_true", help="VAE: sample z ~ q(z|x), not the mean")
    p.add_argument("--seed", type=int, default=0, help="seed for --sample (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=1024, help="default: %(default)s")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--data-dir", default=None, help="directory with the IDX files")
    p.add_argument(
        "--export-encoder",
        default=None,
        metavar="FILE.pt2",
        help="also write the encoder alone as a torch.export program (loads with torch only)",
    )
    return p


def _check_out(path: Path, suffix: str, flag: str) -> None:
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


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from models import resolve_device

    from . import data as data_mod

    out = Path(args.out)
    _check_out(out, ".npz", "--out")
    if args.csv:
        _check_out(Path(args.csv), ".csv", "--csv")
    if args.export_encoder:
        _check_out(Path(args.export_encoder), ".pt2", "--export-encoder")
    device = resolve_device(args.device)
    if args.images:
        images, names = read_png_folder(args.images)
    if args.config:
        encoder = Encoder.from_config(args.config, tracking_uri=args.tracking_uri, device=device)
    elif args.run:
        if not RUN_ID.match(args.run):
            raise EncodeError(
                f"--run {args.run!r} is not an MLflow run id (32 hex digits); see the trial's "
                "mlflow_run_id in study.export's file or the MLflow UI"
            )
        encoder = Encoder.from_run(args.run, tracking_uri=args.tracking_uri, device=device)
    else:
        encoder = Encoder.from_checkpoint(
            args.checkpoint, tracking_uri=args.tracking_uri, device=device
        )
    arrays: dict[str, Any] = {}
    if args.images:
        if args.limit:
            images, names = images[: args.limit], names[: args.limit]
        arrays["files"] = np.array(names)
        where = f"{len(names)} PNG files in {args.images}"
    else:
        dataset_name = args.dataset or encoder.dataset or "fashion-mnist"
        data = data_mod.load(dataset_name, args.data_dir)
        split = getattr(data, args.split).head(args.limit or None)
        images = split.images
        arrays["labels"] = split.labels.numpy()
        arrays["index"] = np.arange(len(split))
        where = f"{dataset_name} {args.split} split, {len(split)} images"
    latents = encoder.encode(
        images,
        sample=args.sample,
        seed=args.seed if args.sample else None,
        batch_size=args.batch_size,
        progress=True,
    ).numpy()
    arrays = {"latents": latents, **arrays}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        **arrays,
        latent_dim=np.array(encoder.latent_dim),
        family=np.array(encoder.family),
        source=np.array(encoder.source),
    )
    print(
        f"Encoded {where} with the {encoder.family} model ({encoder.latent_dim}-d latents) -> {out}"
    )
    if args.csv:
        names = {"index": "index", "labels": "label", "files": "file"}
        columns = {names[k]: arrays[k] for k in names if k in arrays}
        write_csv(Path(args.csv), latents, columns)
        print(f"Wrote {args.csv}")
    if args.export_encoder:
        path = encoder.export(args.export_encoder)
        print(f"Wrote the encoder alone to {path} (torch.export.load(path).module() loads it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
