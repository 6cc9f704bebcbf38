"""The exported config file: YAML (or JSON) holding a trial's spec and where it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from study.errors import UsageError

EXPORT_KEYS = {
    "objective",
    "dataset",
    "data_digest",
    "metric",
    "value",
    "direction",
    "study",
    "trial",
    "mlflow_run_id",
    "tracking_uri",
    "checkpoint_uri",
    "model",
    "train",
    "params",
}


def write_config(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(data, indent=2) + "\n")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False))


def read_config(path: str | Path) -> dict[str, Any]:
    """Read an exported (or hand-written) YAML/JSON config; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"config file {str(path)!r} does not exist; export one with "
            "python -m study.export --out FILE"
        )
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(
            f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}"
            f" ({first}); fix or re-export it"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(
            f"{path} must hold a mapping with objective, model and train, "
            f"but holds {type(data).__name__}"
        )
    return data
