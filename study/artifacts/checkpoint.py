"""Checkpoints: a model's weights with the spec that rebuilds it (the nanoGPT round trip)."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from models import build_model
from objectives import TrialSpec
from study.errors import CheckpointError
from study.stores import disk

FORMAT_VERSION = 1
CHECKPOINT_NAME = "model.pt"
CHECKPOINT_DIR = "checkpoint"


def save(model: torch.nn.Module, spec: TrialSpec, path: Path, **extra: Any) -> Path:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    disk.torch_save(
        {"format_version": FORMAT_VERSION, "spec": spec.to_dict(), "state_dict": state, **extra},
        path,
    )
    return path


@contextlib.contextmanager
def fetched(uri: str, *, tracking_uri: str | None = None) -> Iterator[Path]:
    """A local path for ``uri`` (a path, ``file://``, ``runs:/`` or any MLflow artifact URI),
    valid inside the ``with``; a downloaded copy is deleted on leaving it."""
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        uri = unquote(urlparse(uri).path)
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/", uri):  # a path, not runs:/, mlflow-artifacts:/
        path = Path(uri).expanduser()
        if not path.is_file():
            raise CheckpointError(f"checkpoint {uri!r} does not exist")
        yield path
        return
    import mlflow

    with tempfile.TemporaryDirectory(prefix="ckpt-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri
            )
        except Exception as e:  # noqa: BLE001 - MLflow raises many kinds for a missing artifact
            raise CheckpointError(f"could not fetch checkpoint {uri!r}: {str(e)[:200]}") from None
        yield Path(local)


def load(
    uri: str, *, tracking_uri: str | None = None, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, TrialSpec]:
    """Rebuild the model of a checkpoint and load its weights.

    Example::

        from study.artifacts.checkpoint import load
        model, spec = load("runs:/<run_id>/checkpoint/model.pt",
                           tracking_uri="sqlite:///mlruns/mlflow.db")
    """
    with fetched(uri, tracking_uri=tracking_uri) as path:
        try:
            blob = torch.load(path, map_location=device, weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"{uri} is not a readable checkpoint: {str(e)[:200]}") from None
    if not isinstance(blob, dict) or blob.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{uri} is not a latent-study checkpoint (format {FORMAT_VERSION})")
    spec = TrialSpec.from_dict(blob["spec"])
    model = build_model(spec.model).to(device)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, spec


def whose(run) -> str:
    """Who an MLflow run is, for a message: ``trial 4 of study 'x' (MLflow run ID)``."""
    tags = run.data.tags
    number, study = tags.get("optuna.trial_number"), tags.get("optuna.study")
    if tags.get("kind") == "refit":
        return f"the refit {run.info.run_name} (MLflow run {run.info.run_id})"
    if number is not None:
        return f"trial {number} of study {study!r} (MLflow run {run.info.run_id})"
    return f"MLflow run {run.info.run_id} ({run.info.run_name})"


def should_have_checkpoint(run) -> bool:
    """Whether the run ended as a completed trial or a refit, which always save one."""
    tags = run.data.tags
    return run.info.status == "FINISHED" and (
        tags.get("optuna.state") == "COMPLETE" or tags.get("kind") == "refit"
    )


def missing_checkpoint(run) -> str:
    """The sentence for a completed run whose checkpoint file is gone."""
    return (
        f"{whose(run)} has lost its {CHECKPOINT_DIR}/{CHECKPOINT_NAME}: it is missing from "
        f"{run.info.artifact_uri} (deleted by hand?)"
    )


def has_checkpoint(client, run_id: str) -> bool:
    names = {a.path for a in client.list_artifacts(run_id, CHECKPOINT_DIR)}
    return f"{CHECKPOINT_DIR}/{CHECKPOINT_NAME}" in names
