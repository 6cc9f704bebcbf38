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

import torch

from ._common import (
    DEFAULT_TRACKING,
    Parser,
    UsageError,
    check_tracking_uri,
    exits_cleanly,
    non_negative_int,
    positive_int,
)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.train",
        description="Retrain an exported config on the 60k train+validation images (or load "
        "its checkpoint), evaluate it on the 10k test images, log a run to MLflow.",
    )
    p.add_argument("--config", required=True, help="YAML/JSON file from study.export")
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
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    p.add_argument(
        "--tracking-uri",
        default=DEFAULT_TRACKING,
        help="MLflow store for the run, or 'none' (default: %(default)s)",
    )
    p.add_argument(
        "--experiment", default=None, help="MLflow experiment (default: the config's study)"
    )
    p.add_argument("--data-dir", default=None, help="directory with the IDX files")
    p.add_argument("--compile", action="store_true", help="use torch.compile (see study.run)")
    return p


def _log_run(args, cfg: dict, spec, model, history, test: dict[str, float]) -> str:
    from .checkpoint import CHECKPOINT_DIR, CHECKPOINT_NAME, save
    from .tracking import _metrics, _params, client_for, experiment_id, metrics_of

    client = client_for(args.tracking_uri)
    exp = args.experiment or cfg.get("study") or f"{spec.objective}-{cfg.get('dataset')}"
    eid = experiment_id(client, exp, args.tracking_uri)
    source = "checkpoint" if args.from_checkpoint is not None else "retrain"
    run = client.create_run(
        eid,
        run_name=f"{source}-trial-{cfg.get('trial', 'x')}",
        tags={
            "kind": source,
            "objective": spec.objective,
            "source_run_id": str(cfg.get("mlflow_run_id")),
        },
    )
    rid = run.info.run_id
    client.log_batch(
        rid,
        params=_params(
            {
                **spec.flat_params(),
                "dataset": cfg["dataset"],
                "seed": args.seed,
                "limit_train": args.limit_train,
            }
        ),
    )
    for result in history:
        client.log_batch(rid, metrics=_metrics(metrics_of(result), result.epoch))
    client.log_batch(rid, metrics=_metrics({f"test_{k}": v for k, v in test.items()}, 0))
    with tempfile.TemporaryDirectory() as tmp:
        save(model, spec, Path(tmp) / CHECKPOINT_NAME)
        client.log_artifact(rid, str(Path(tmp) / CHECKPOINT_NAME), CHECKPOINT_DIR)
    client.set_terminated(rid, "FINISHED")
    return rid


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from models import Split, evaluate, fit, resolve_device, task_for
    from objectives import TrialSpec

    from . import checkpoint
    from . import data as data_mod
    from .export import EXPORT_KEYS, read_config

    cfg = read_config(args.config)
    unknown = sorted(set(cfg) - EXPORT_KEYS)
    if unknown:
        raise UsageError(
            f"{args.config}: unknown key(s) {unknown}; an exported config has {sorted(EXPORT_KEYS)}"
        )
    spec = TrialSpec.from_dict(cfg)
    dataset_name = cfg.get("dataset", "fashion-mnist")
    if dataset_name not in data_mod.DATASETS:
        raise UsageError(
            f"{args.config}: unknown dataset {dataset_name!r}; choose one of "
            f"{sorted(data_mod.DATASETS)}"
        )
    cfg["dataset"] = dataset_name
    if args.epochs is not None:
        spec = replace(spec, train=replace(spec.train, epochs=args.epochs))
    device = resolve_device(args.device)
    check_tracking_uri(args.tracking_uri)
    data = data_mod.load(dataset_name, args.data_dir)
    test = data.test.to(device)
    task = task_for(spec.model)
    start = time.perf_counter()
    if args.from_checkpoint is not None:
        uri = args.from_checkpoint or cfg.get("checkpoint_uri")
        if not uri:
            raise UsageError(
                f"{args.config} has no checkpoint_uri; pass --from-checkpoint PATH_OR_URI"
            )
        model, saved = checkpoint.load(
            uri,
            tracking_uri=None if args.tracking_uri == "none" else args.tracking_uri,
            device=device,
        )
        if saved.model != spec.model:
            raise UsageError(f"checkpoint {uri!r} holds a different model than {args.config}")
        history = []
        print(f"Loaded checkpoint {uri}")
    else:
        full = Split(
            torch.cat([data.train.images, data.val.images]),
            torch.cat([data.train.labels, data.val.labels]),
        )
        full = full.head(args.limit_train or None).to(device)
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
            spec.model,
            spec.train,
            full,
            test,
            device=device,
            seed=args.seed,
            on_epoch=show,
            compile=args.compile,
        )
        model, history = fitted.model, fitted.history
    metrics = evaluate(model, task, test, device=device)
    value = metrics[task.metric]
    trial_value = cfg.get("value")
    compare = (
        f" (trial {cfg.get('trial')} validation {task.metric} was {trial_value:.4f})"
        if isinstance(trial_value, (int, float))
        else ""
    )
    print(f"test {task.metric} = {value:.4f}{compare}  [{time.perf_counter() - start:.0f}s]")
    if args.tracking_uri != "none":
        rid = _log_run(args, cfg, spec, model, history, metrics)
        print(f"Logged MLflow run {rid} to {args.tracking_uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
