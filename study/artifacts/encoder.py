"""The trained encoder as a feature extractor: the Python API (``python -m study.encode`` is
its command line).

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

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import ServingModule
from study.artifacts import checkpoint
from study.artifacts.checkpoint import CHECKPOINT_DIR, CHECKPOINT_NAME
from study.errors import CheckpointError, EncodeError
from study.stores.locations import (
    TrackingURL,
    default_tracking,
    parse_tracking,
    tracking_client,
)
from study.stores.secrets import redact

ENCODER_DIR = "encoder"
ENCODER_NAME = "encoder.pt2"
META_NAME = "encoder.json"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
CONFIG_SUFFIXES = {".yaml", ".yml", ".json"}


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
        """From an exported config file, an MLflow run id, a registered model
        (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``), or a checkpoint path / URI."""
        text = str(source)
        if text.startswith("models:/"):
            return cls.from_registry(text, tracking_uri=tracking_uri, device=device)
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
        from study.artifacts import checkpoint

        try:
            model, spec = checkpoint.load(
                str(uri), tracking_uri=tracking_uri or default_tracking(), device=device
            )
        except CheckpointError as e:
            raise EncodeError(str(e)) from None
        return cls(model, spec, source=str(uri), device=device)

    @classmethod
    def from_registry(cls, uri: str, *, tracking_uri: str | None = None, device: str = "cpu"):
        """A registered model version's run: its checkpoint holds the whole model."""
        uri = uri.rstrip("/")
        if not uri.startswith("models:/"):
            raise EncodeError(f"{uri!r} is not a registered model URI; use models:/NAME@ALIAS")
        rest = uri[len("models:/") :]
        tracking = tracking_uri or default_tracking()
        try:
            client = tracking_client(parse_tracking(tracking))
            if "@" in rest:
                name, alias = rest.split("@", 1)
                version = client.get_model_version_by_alias(name, alias)
            elif "/" in rest:
                name, number = rest.split("/", 1)
                version = client.get_model_version(name, number)
            else:
                raise EncodeError(f"{uri!r} names no version: use models:/NAME@ALIAS or /VERSION")
        except EncodeError:
            raise
        except Exception as e:  # noqa: BLE001 - MLflow raises many kinds for a missing model
            first = " ".join(str(e).split())[:200] or type(e).__name__
            raise EncodeError(
                f"no registered model {uri!r} in {redact(tracking)} ({first}); see the MLflow "
                "UI's Models tab for the names and aliases, or pass the store's --tracking-uri"
            ) from None
        try:
            encoder = cls.from_run(version.run_id, tracking_uri=tracking, device=device)
        except EncodeError as e:
            raise EncodeError(f"{uri} (version {version.version}): {e}") from None
        encoder.source = uri
        return encoder

    @classmethod
    def from_run(cls, run_id: str, *, tracking_uri: str | None = None, device: str = "cpu"):
        uri = tracking_uri or default_tracking()
        try:
            client = tracking_client(parse_tracking(uri))
            run = client.get_run(run_id)
            names = {a.path for a in client.list_artifacts(run_id, CHECKPOINT_DIR)}
        except Exception as e:  # noqa: BLE001 - MLflow raises many kinds for a missing run
            raise EncodeError(
                f"no MLflow run {run_id!r} in {uri} ({str(e).splitlines()[0][:120]}); "
                "pass the store's --tracking-uri"
            ) from None
        if f"{CHECKPOINT_DIR}/{CHECKPOINT_NAME}" not in names and checkpoint.should_have_checkpoint(
            run
        ):
            raise EncodeError(
                f"{checkpoint.missing_checkpoint(run)}; retrain it: python -m study.export "
                f"--study-name {run.data.tags.get('optuna.study', 'NAME')} --trial "
                f"{run.data.tags.get('optuna.trial_number', 'N')} --out trial.yaml, then "
                "python -m study.train --config trial.yaml"
            )
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
        from study.artifacts.config_file import read_config

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
        local = Path(uri[len("file://") :]) if str(uri).startswith("file://") else None
        if local is not None and not local.exists():
            raise EncodeError(
                f"{path} is trial {cfg.get('trial')} of study {cfg.get('study')!r}, whose "
                f"checkpoint {uri} is missing (deleted by hand?); retrain it: "
                f"python -m study.train --config {path}"
            )
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
        module = ServingModule(model, "encode").eval()
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


def publish_encoder(client, run_id: str, *, tracking: TrackingURL) -> str | None:
    """Export a trial run's checkpoint as ``encoder/encoder.pt2`` in that run, once.

    Returns the artifact URI, or None when the run has no checkpoint.
    """
    import tempfile

    have = {a.path for a in client.list_artifacts(run_id, ENCODER_DIR)}
    uri = f"runs:/{run_id}/{ENCODER_DIR}/{ENCODER_NAME}"
    if f"{ENCODER_DIR}/{ENCODER_NAME}" in have:
        return uri
    try:
        encoder = Encoder.from_run(run_id, tracking_uri=tracking.url)
    except EncodeError:  # no checkpoint: not a completed trial
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = encoder.export(Path(tmp) / ENCODER_NAME)
        (Path(tmp) / META_NAME).write_text(json.dumps(encoder.metadata(), indent=2) + "\n")
        client.log_artifact(run_id, str(path), ENCODER_DIR)
        client.log_artifact(run_id, str(Path(tmp) / META_NAME), ENCODER_DIR)
    return uri
