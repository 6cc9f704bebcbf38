"""What ``study.ablate`` and ``study.confirm`` share: their data and worker options, and the
run of an experiment from its plan to its published table."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from study.cli import (
    add_data_dir_option,
    add_device_option,
    add_study_options,
    non_negative_int,
    positive_int,
)
from study.experiments import cells
from study.settings import LIMIT_TRAIN, LIMIT_VAL, ExperimentSettings, RunSettings
from study.stores.locations import DEFAULT_STORAGE, check_storage, check_tracking


def add_options(p: argparse.ArgumentParser, *, limits_from_trials: bool = False) -> None:
    """The study options, the data limits, device, workers and heartbeat.
    ``limits_from_trials``: the limits default to what the trials saw; otherwise to the
    experiment's own when it is resumed (``None`` here either way)."""
    d = RunSettings()
    add_study_options(p, storage_default=DEFAULT_STORAGE)
    for option, what, n in (
        ("--limit-train", "training", LIMIT_TRAIN),
        ("--limit-val", "validation", LIMIT_VAL),
    ):
        default = (
            "as the trials"
            if limits_from_trials
            else f"the experiment's own when resumed, else {n}"
        )
        p.add_argument(
            option,
            type=non_negative_int,
            default=None,
            help=f"{what} images per run (0 = all) (default: {default})",
        )
    add_device_option(p)
    add_data_dir_option(p)
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes")
    p.add_argument(
        "--heartbeat",
        type=positive_int,
        default=d.heartbeat,
        help="seconds between a run's heartbeats; a run silent for 3 x this is retried "
        "(default: %(default)s)",
    )


def run(exp: ExperimentSettings, plan: Callable, markdown: Callable) -> int:
    """Check everything, plan the cells, run what is missing, print and publish the table.

    ``plan(exp, source) -> (run settings, cells, about)``, where ``about`` (an ``Ablation``
    or a ``Confirmation``) has ``intro(name, runs)``, the first line printed;
    ``markdown(study, metric) -> str``.
    """
    from models import resolve_device
    from study.data.loading import load
    from study.execution.loop import run_study
    from study.stores.studies import existing_study

    check_storage(exp.storage)
    check_tracking(exp.tracking)
    source = existing_study(exp)
    settings, planned, about = plan(exp, source)
    resolve_device(settings.device)
    load(settings.dataset, settings.data_dir)  # the data checked before any store changes
    print(about.intro(exp.name, len(planned)))
    study = cells.open_experiment(settings, source, planned, about)
    code = run_study(settings)
    text = markdown(study, source.user_attrs.get("metric", "value"))
    print()
    print(text)
    if code == 0:
        print(f"Written to {cells.publish(study, settings, text)}")
    return code
