"""What an MLflow run records, as MLflow's entities: params, metrics per epoch, tags, the data
it saw (dataset inputs) and the context tags MLflow's fluent API would add."""

from __future__ import annotations

import time
from typing import Any

from models import EpochResult

MAX_PARAM = 6000  # MLflow's limit on a param value


def epoch_metrics(result: EpochResult) -> dict[str, float]:
    """``train_loss``, ``val_acc``, ... for the main phase; ``pretrain_`` prefix before it."""
    prefix = "" if result.phase == "train" else f"{result.phase}_"
    out = {f"{prefix}train_{k}": v for k, v in result.train.items()}
    out.update({f"{prefix}val_{k}": v for k, v in result.val.items()})
    out[f"{prefix}epoch_time"] = result.seconds
    return out


def as_params(flat: dict[str, Any]):
    from mlflow.entities import Param

    return [Param(k, str(v)[:MAX_PARAM]) for k, v in flat.items()]


def as_metrics(values: dict[str, float], step: int):
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, step) for k, v in values.items()]


CONTEXTS = {"train": "training", "val": "validation", "test": "testing"}


def data_inputs(data, sizes: dict[str, int]):
    """MLflow dataset inputs for the splits a run saw (``{"train": n, ...}``): name, digest,
    source and size, shown in the runs table's Dataset column."""
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag

    from study.data.loading import split_digest

    return [
        DatasetInput(
            Dataset(
                name=f"{data.name}-{split}",
                digest=split_digest(data.digest, split, n),
                source_type="local",
                source=json.dumps({"uri": data.location or data.source}),
                profile=json.dumps({"num_rows": n, "images": "uint8 28x28", "classes": 10}),
            ),
            tags=[InputTag("mlflow.data.context", CONTEXTS[split])],
        )
        for split, n in sizes.items()
    ]


def log_inputs(client, run_id: str, inputs) -> None:
    """``client.log_inputs``, once more if it failed: another study logging to the same
    experiment (an ablation's) may have created the same dataset row meanwhile, and this
    time the row is found (the failed transaction was rolled back)."""
    from mlflow.exceptions import MlflowException

    try:
        client.log_inputs(run_id, datasets=inputs)
    except MlflowException:  # raised again if it was not that race
        client.log_inputs(run_id, datasets=inputs)


def artifact_repo(client, location: str):
    """The artifact repository at ``location`` (a run's or logged model's, as its creation
    returned it), through ``client``'s outage retries where it has them. Uploading through it
    saves what ``client.log_artifact`` does first: re-reading the whole run to find where its
    artifacts go (~10 ms a run on SQLite)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(location, tracking_uri=client.tracking_uri)
    around = getattr(client, "around", None)  # a ResilientClient's
    return around(repo) if around is not None else repo


def context_tags() -> dict[str, str]:
    """MLflow's context tags, as its fluent API sets them: ``mlflow.source.name``,
    ``mlflow.source.type``, ``mlflow.user`` and, in a git checkout,
    ``mlflow.source.git.commit``."""
    from mlflow.tracking.context.registry import resolve_tags

    try:
        return dict(resolve_tags({}))
    except Exception:  # noqa: BLE001 - a context provider that fails adds nothing
        return {}


def as_tags(values: dict[str, Any]):
    from mlflow.entities import RunTag

    return [RunTag(k, str(v)[:5000]) for k, v in values.items()]
