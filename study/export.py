"""``python -m study.export``: the best (or a chosen) trial as a reloadable YAML/JSON config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from study.artifacts import checkpoint
from study.artifacts.checkpoint import CHECKPOINT_DIR, CHECKPOINT_NAME
from study.artifacts.config_file import write_config
from study.cli import Parser, add_study_options, entry, non_negative_int, positive_int
from study.errors import UsageError
from study.settings import ExportSettings, from_namespace
from study.stores.locations import DEFAULT_STORAGE, TrackingURL, tracking_client


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.export",
        description="Write a study's best trial (objective, dataset, full model config, "
        "training settings, metric, trial number, MLflow run id, checkpoint URI) "
        "to a YAML or JSON file that study.train reloads.",
    )
    add_study_options(p, storage_default=DEFAULT_STORAGE)
    p.add_argument(
        "--trial",
        type=non_negative_int,
        default=None,
        help="export this trial number instead of the best one",
    )
    p.add_argument(
        "--max-params",
        type=positive_int,
        default=None,
        help="export the best completed trial with at most N parameters",
    )
    p.add_argument(
        "--max-latent",
        type=positive_int,
        default=None,
        help="export the best completed trial with a latent size of at most N",
    )
    p.add_argument(
        "--confirmed",
        action="store_true",
        help="export the configuration python -m study.confirm ranked best by mean",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("best.yaml"),
        help="output file; .json writes JSON, anything else YAML (default: %(default)s)",
    )
    return p


def export_trial(study, trial, *, dataset: str, tracking: TrackingURL) -> dict[str, Any]:
    """The export file's content for one completed trial."""
    run_id = trial.user_attrs.get("mlflow_run_id")
    checkpoint_uri = None
    if run_id and tracking.enabled:
        try:
            client = tracking_client(tracking)
            run = client.get_run(run_id)
            base = run.info.artifact_uri
            checkpoint_uri = f"{base.rstrip('/')}/{CHECKPOINT_DIR}/{CHECKPOINT_NAME}"
        except Exception:  # noqa: BLE001 - run not in this tracking store
            checkpoint_uri = f"runs:/{run_id}/{CHECKPOINT_DIR}/{CHECKPOINT_NAME}"
        else:
            if not checkpoint.has_checkpoint(client, run_id):
                print(
                    f"warning: {checkpoint.missing_checkpoint(run)}; the config is written "
                    "without it: python -m study.train --config on it retrains the model",
                    file=sys.stderr,
                )
                checkpoint_uri = None
    spec = trial.user_attrs["spec"]
    return {
        "objective": spec["objective"],
        "dataset": dataset,
        "data_digest": study.user_attrs.get("data_digest"),
        "metric": study.user_attrs.get("metric"),
        "value": trial.values[0],
        "direction": study.directions[0].name.lower(),
        "study": study.study_name,
        "trial": trial.number,
        "mlflow_run_id": run_id,
        "tracking_uri": tracking.redacted,
        "checkpoint_uri": checkpoint_uri,
        "model": spec["model"],
        "train": spec["train"],
        "params": trial.params,
    }


def within(complete: list, s: ExportSettings) -> list:
    """The completed trials within the budget ``--max-params`` / ``--max-latent`` set."""
    if s.max_params is None and s.max_latent is None:
        return complete
    fits = [
        t
        for t in complete
        if "cost" in t.user_attrs
        and (s.max_params is None or t.user_attrs["cost"]["params"] <= s.max_params)
        and (s.max_latent is None or t.user_attrs["cost"]["latent"] <= s.max_latent)
    ]
    if not fits:
        costed = [t.user_attrs["cost"] for t in complete if "cost" in t.user_attrs]
        smallest = min((c["params"] for c in costed), default=None)
        raise UsageError(
            f"no completed trial of {s.name!r} is within --max-params {s.max_params} / "
            f"--max-latent {s.max_latent}"
            + (f"; the smallest has {smallest:,} parameters" if smallest is not None else "")
        )
    return fits


def chosen_trial(study, number: int | None, s: ExportSettings | None = None):
    """Trial ``number`` if it completed, else the best (within the budget, if one is set);
    a usage error when there is none."""
    import optuna

    from study.search.results import countable, maximizing, primary

    complete = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state == optuna.trial.TrialState.COMPLETE and "spec" in t.user_attrs and countable(t)
    ]
    if number is not None:
        chosen = [t for t in complete if t.number == number]
        if not chosen:
            raise UsageError(
                f"trial {number} of study {study.study_name!r} is not a completed trial; "
                f"completed: {[t.number for t in complete][:20]}"
            )
        return chosen[0]
    if not complete:
        raise UsageError(
            f"study {study.study_name!r} has no completed trial yet; run more trials "
            "(python -m study.run) before exporting"
        )
    candidates = within(complete, s) if s is not None else complete
    if (
        len(study.directions) > 1
        and s is not None
        and s.max_params is None
        and s.max_latent is None
    ):
        front = sorted(t.number for t in study.best_trials)
        raise UsageError(
            f"{study.study_name!r} is a multi-objective study: it has a Pareto front, not one "
            f"best trial; pass --trial N (the front: {front[:20]}) or a budget (--max-params N "
            "or --max-latent N)"
        )
    return (max if maximizing(study) else min)(candidates, key=primary)


@entry
def main(argv: list[str] | None = None) -> int:
    return export(from_namespace(ExportSettings, build_parser().parse_args(argv)))


def export(s: ExportSettings) -> int:
    from study.stores.studies import existing_study

    study = existing_study(s)
    number = s.trial
    if s.confirmed:
        from study.reporting.experiments import confirmed_best
        from study.stores.locations import open_storage

        if s.trial is not None:
            raise UsageError("--confirmed and --trial both choose the trial; pass one of them")
        number = confirmed_best(study, open_storage(s.storage))
        if number is None:
            raise UsageError(
                f"study {s.name!r} has no confirmation yet; run python -m study.confirm first"
            )
    trial = chosen_trial(study, number, s)
    data = export_trial(
        study, trial, dataset=study.user_attrs.get("dataset", s.dataset), tracking=s.tracking
    )
    write_config(data, s.out)
    print(
        f"Wrote trial {trial.number} of {s.name!r} ({data['metric']} = {trial.values[0]:.4f}) "
        f"to {s.out}"
    )
    print(f"Retrain and test it:  python -m study.train --config {s.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
