"""``python -m study.train``: retrain an exported config on train+validation, test it once.

With ``--from-checkpoint`` the trial's saved weights are evaluated instead of retraining.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from study.cli import (
    Parser,
    add_data_dir_option,
    add_device_option,
    add_seed_option,
    add_tracking_option,
    entry,
    non_negative_int,
    positive_int,
)
from study.errors import UsageError
from study.settings import TrainSettings, from_namespace
from study.stores.locations import check_tracking, tracking_client


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.train",
        description="Retrain an exported config on the 60k train+validation images (or load "
        "its checkpoint), evaluate it on the 10k test images, log a run to MLflow.",
    )
    p.add_argument("--config", type=Path, required=True, help="YAML/JSON file from study.export")
    p.add_argument(
        "--from-checkpoint",
        nargs="?",
        const="",
        default=None,
        metavar="URI",
        help="evaluate saved weights instead of retraining: the config's "
        "checkpoint_uri, or this path/URI",
    )
    p.add_argument(
        "--epochs", type=positive_int, default=None, help="training epochs (default: the config's)"
    )
    p.add_argument(
        "--limit-train",
        type=non_negative_int,
        default=0,
        help="train on the first N of the 60,000 train+validation images; 0 = all "
        "(default: %(default)s)",
    )
    add_device_option(p)
    add_seed_option(p, "training seed")
    add_tracking_option(p, from_config=True)
    p.add_argument(
        "--experiment", default=None, help="MLflow experiment (default: the config's study)"
    )
    add_data_dir_option(p)
    p.add_argument("--compile", action="store_true", help="use torch.compile (see study.run)")
    return p


def log_run(s: TrainSettings, cfg: dict, spec, model, history, test: dict[str, float], data) -> str:
    from study.artifacts.checkpoint import CHECKPOINT_DIR, CHECKPOINT_NAME, save
    from study.tracking.records import (
        as_metrics,
        as_params,
        context_tags,
        data_inputs,
        epoch_metrics,
    )
    from study.tracking.runs import experiment_id

    client = tracking_client(s.tracking)
    exp = s.experiment or cfg.get("study") or f"{spec.objective}-{cfg.get('dataset')}"
    eid = experiment_id(client, exp, s.tracking)
    source = "checkpoint" if s.from_checkpoint is not None else "retrain"
    run = client.create_run(
        eid,
        run_name=f"{source}-trial-{cfg.get('trial', 'x')}",
        tags={
            **context_tags(),
            "kind": source,
            "objective": spec.objective,
            "source_run_id": str(cfg.get("mlflow_run_id")),
        },
    )
    rid = run.info.run_id
    params = {
        **spec.flat_params(), "dataset": cfg["dataset"], "seed": s.seed,
        "limit_train": s.limit_train,
    }  # fmt: skip
    client.log_batch(rid, params=as_params(params))
    seen = {"test": len(data.test)}
    if s.from_checkpoint is None:  # retrained on (the first limit_train of) train + validation
        n = s.limit_train or len(data.train) + len(data.val)
        used = {"train": min(n, len(data.train)), "val": max(0, n - len(data.train))}
        seen = {**{k: v for k, v in used.items() if v}, **seen}
    client.log_inputs(rid, datasets=data_inputs(data, seen))
    for result in history:
        client.log_batch(rid, metrics=as_metrics(epoch_metrics(result), result.epoch))
    client.log_batch(rid, metrics=as_metrics({f"test_{k}": v for k, v in test.items()}, 0))
    with tempfile.TemporaryDirectory() as tmp:
        save(model, spec, Path(tmp) / CHECKPOINT_NAME)
        client.log_artifact(rid, str(Path(tmp) / CHECKPOINT_NAME), CHECKPOINT_DIR)
    client.set_terminated(rid, "FINISHED")
    return rid


def read_spec(path: Path) -> tuple[dict, object]:
    """The export file and its trial spec; usage errors name the file."""
    from objectives import TrialSpec
    from study.artifacts.config_file import EXPORT_KEYS, read_config
    from study.data import loading as data_mod

    cfg = read_config(path)
    unknown = sorted(set(cfg) - EXPORT_KEYS)
    if unknown:
        raise UsageError(
            f"{path}: unknown key(s) {unknown}; an exported config has {sorted(EXPORT_KEYS)}"
        )
    spec = TrialSpec.from_dict(cfg)
    cfg["dataset"] = cfg.get("dataset", "fashion-mnist")
    if cfg["dataset"] not in data_mod.DATASETS:
        raise UsageError(
            f"{path}: unknown dataset {cfg['dataset']!r}; choose one of {sorted(data_mod.DATASETS)}"
        )
    return cfg, spec


def from_checkpoint(s: TrainSettings, cfg: dict, spec, device):
    from study.artifacts import checkpoint

    uri = s.from_checkpoint or cfg.get("checkpoint_uri")
    if not uri:
        raise UsageError(f"{s.config} has no checkpoint_uri; pass --from-checkpoint PATH_OR_URI")
    tracking = s.tracking.url if s.tracking.enabled else None
    model, saved = checkpoint.load(uri, tracking_uri=tracking, device=device)
    if saved.model != spec.model:
        raise UsageError(f"checkpoint {uri!r} holds a different model than {s.config}")
    print(f"Loaded checkpoint {uri}")
    return model, []


def retrain(s: TrainSettings, spec, data, test, device):
    from models import fit
    from study.execution.refit import full_training_set

    full = full_training_set(data, s.limit_train, with_val=True).to(device)
    print(
        f"Retraining {spec.model.family} ({spec.objective}) on {len(full)} images for "
        f"{spec.train.epochs} epochs on {device}"
    )

    def show(result) -> None:
        print(
            f"  {result.phase} epoch {result.epoch}: train loss "
            f"{result.train['loss']:.4f}, {result.seconds:.1f}s"
        )

    # The test split is passed as fit's evaluation split only to print progress; nothing
    # is selected on it (no early stopping, no pruning).
    fitted = fit(
        spec.model, spec.train, full, test, device=device, seed=s.seed, on_epoch=show,
        compile=s.compile,
    )  # fmt: skip
    return fitted.model, fitted.history


def config_tracking(cfg: dict):
    """The tracking store an export names (where its checkpoint lives), unless it was
    redacted; else ``$MLFLOW_TRACKING_URI`` or the local store."""
    from study.stores.locations import default_tracking, parse_tracking

    saved = cfg.get("tracking_uri")
    if isinstance(saved, str) and "***" not in saved:
        return parse_tracking(saved)
    return parse_tracking(default_tracking())


@entry
def main(argv: list[str] | None = None) -> int:
    return train(from_namespace(TrainSettings, build_parser().parse_args(argv)))


def train(s: TrainSettings) -> int:
    from models import evaluate, flush_denormals, resolve_device, task_for
    from study.data import loading as data_mod

    flush_denormals()  # before any parallel work, so that torch's threads inherit it
    cfg, spec = read_spec(s.config)
    s = replace(s, tracking=s.tracking or config_tracking(cfg))
    if s.epochs is not None:
        spec = replace(spec, train=replace(spec.train, epochs=s.epochs))
    device = resolve_device(s.device)
    check_tracking(s.tracking)
    data = data_mod.load(cfg["dataset"], s.data_dir)
    if cfg.get("data_digest") and cfg["data_digest"] != data.digest:
        print(
            f"warning: {s.config} comes from a study on {cfg['dataset']} files with digest "
            f"{cfg['data_digest']}; the files found now ({data.location}) have digest "
            f"{data.digest}: the test score is not comparable with the trial's",
            file=sys.stderr,
        )
    test = data.test.to(device)
    task = task_for(spec.model)
    start = time.perf_counter()
    if s.from_checkpoint is not None:
        model, history = from_checkpoint(s, cfg, spec, device)
    else:
        model, history = retrain(s, spec, data, test, device)
    metrics = evaluate(model, task, test, device=device)
    value = metrics[task.metric]
    trial_value = cfg.get("value")
    compare = (
        f" (trial {cfg.get('trial')} validation {task.metric} was {trial_value:.4f})"
        if isinstance(trial_value, (int, float))
        else ""
    )
    print(f"test {task.metric} = {value:.4f}{compare}  [{time.perf_counter() - start:.0f}s]")
    if s.tracking.enabled:
        rid = log_run(s, cfg, spec, model, history, metrics, data)
        print(f"Logged MLflow run {rid} to {s.tracking.redacted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
