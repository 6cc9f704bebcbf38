"""``python -m study.run``: run or resume a study; every trial is tracked in MLflow.

Re-running the same command continues the study until it holds ``--trials`` finished
(complete or pruned) trials.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from study.cli import (
    Parser,
    add_data_dir_option,
    add_device_option,
    add_seed_option,
    add_study_options,
    entry,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from study.execution.loop import run_study
from study.execution.workers import WORKER_OPTION
from study.search.samplers import PARETO_PRUNERS, PRUNERS, SAMPLERS, pick_pruner
from study.settings import (
    LIMIT_TRAIN,
    LIMIT_VAL,
    RunSettings,
    from_namespace,
    loads,
    seed_choice,
)
from study.stores.locations import DEFAULT_STORAGE
from study.stores.outage import EXIT_OUTAGE
from study.stores.secrets import remember


def build_parser() -> argparse.ArgumentParser:
    d = RunSettings()
    p = Parser(
        prog="python -m study.run",
        description="Run (or resume) an Optuna study; every trial is logged to MLflow. "
        "Re-running the same command continues to --trials finished trials.",
    )
    p.add_argument(
        "--trials",
        type=positive_int,
        default=d.trials,
        help="total finished (complete + pruned) trials the study should hold; "
        "re-running continues up to it (default: %(default)s)",
    )
    add_study_options(p, storage_default=DEFAULT_STORAGE)
    add_budget_options(p, d)
    add_tradeoff_options(p)
    add_seed_option(p, "seed of the sampler and of each trial's training")
    add_device_option(p)
    add_data_dir_option(p)
    add_worker_options(p, d)
    p.add_argument(
        "--compile",
        action="store_true",
        help="run each trial's loss computation through torch.compile (pays off on a GPU "
        "with long trials; slower on a CPU)",
    )
    p.add_argument(
        "--records",
        choices=["auto", "background", "inline"],
        default=d.records,
        help="write a finished trial's records (checkpoint, logged model, pictures) from a "
        "thread while the next trial trains (background), or in the worker's own thread at "
        "the same point (inline); auto: background on a GPU, inline on a CPU, where training "
        "already uses every core (default: %(default)s)",
    )
    add_start_options(p)
    add_refit_options(p, d)
    p.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="skip the plots and report written at the end (python -m study.report writes "
        "them on demand)",
    )
    return p


def add_refit_options(p: argparse.ArgumentParser, d: RunSettings) -> None:
    """What a finished study retrains and registers as its @best model."""
    p.add_argument(
        "--no-refit",
        dest="refit",
        action="store_false",
        help="do not retrain the best configuration on all the training data at the end "
        "(the best trial's own checkpoint is then the registered @best)",
    )
    p.add_argument(
        "--refit-top",
        type=positive_int,
        default=d.refit_top,
        metavar="K",
        help="refit the K best configurations on the 50,000 training images and keep the one "
        "best on the 10,000 validation images (default: %(default)s: the best, on train + "
        "validation)",
    )
    p.add_argument(
        "--refit-epochs",
        type=positive_int,
        default=None,
        metavar="N",
        help="the refit's epochs (default: twice the best trial's epoch budget)",
    )
    p.add_argument(
        "--refit-limit",
        type=non_negative_int,
        default=d.refit_limit,
        metavar="N",
        help="refit on the first N training images (0 = all) (default: %(default)s)",
    )


def add_budget_options(p: argparse.ArgumentParser, d: RunSettings) -> None:
    """How much each trial trains, how the search proposes and stops trials, and when."""
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=d.epochs,
        help="maximum training epochs per trial; the search picks a budget between "
        "half of it and it (default: %(default)s)",
    )
    p.add_argument(
        "--limit-train",
        type=non_negative_int,
        default=None,
        help="train each trial on the first N of the 50,000 training images; 0 = all "
        f"(default: a resumed study's own, a new study {LIMIT_TRAIN})",
    )
    p.add_argument(
        "--limit-val",
        type=non_negative_int,
        default=None,
        help="score each trial on the first N of the 10,000 validation images; 0 = all "
        f"(default: a resumed study's own, a new study {LIMIT_VAL})",
    )
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=d.sampler,
        help="Optuna sampler, seeded with --seed (default: %(default)s)",
    )
    p.add_argument(
        "--pruner",
        choices=(*PRUNERS, PARETO_PRUNERS[0]),
        default=None,
        help="stop unpromising trials early: successive-halving (asynchronous, keeps the top "
        "third at epochs 1, 3, 9...), median, percentile (keeps the top 25%%), hyperband; "
        "with --pareto, pareto-halving (the same rungs, ranked by non-dominated sorting); or "
        "none to train every trial to its budget (default: successive-halving, with --pareto "
        "pareto-halving)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        help="start no new trial after S seconds (default: no limit)",
    )


def add_tradeoff_options(p: argparse.ArgumentParser) -> None:
    """Budgets and a second objective."""
    p.add_argument(
        "--max-params",
        type=positive_int,
        default=None,
        help="a parameter budget: the sampler learns to respect it (Optuna constraints) and a "
        "model over it is recorded, not trained (default: none)",
    )
    p.add_argument(
        "--pareto",
        choices=("params", "latent", "kl"),
        default=None,
        help="a two-objective study: the objective's metric and this quantity, minimised "
        "(parameter count, latent size, or the VAE's KL term); no pruning (default: one "
        "objective)",
    )
    p.add_argument(
        "--max-latent",
        type=positive_int,
        default=None,
        help="a latent-size budget, the same way (default: none)",
    )


def add_worker_options(p: argparse.ArgumentParser, d: RunSettings) -> None:
    p.add_argument(
        "--workers",
        type=positive_int,
        default=d.workers,
        help="worker processes to start on this machine, all on the same study; each gets "
        "cpu_count/N torch threads and, with GPUs, its own GPU (default: %(default)s)",
    )
    p.add_argument(
        "--workers-per-gpu",
        type=positive_int,
        default=d.workers_per_gpu,
        help="with --workers and several GPUs: K workers share each GPU (small models "
        "leave a GPU idle otherwise) (default: %(default)s)",
    )
    p.add_argument(
        "--heartbeat",
        type=positive_int,
        default=d.heartbeat,
        help="seconds between a running trial's heartbeats (SQLite/PostgreSQL storage) "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--heartbeat-grace",
        type=positive_int,
        default=None,
        help="seconds without a heartbeat before another worker fails the trial and "
        "retries it (default: 3 x --heartbeat)",
    )
    p.add_argument(
        "--snapshot-every",
        type=non_negative_float,
        default=d.snapshot_every,
        metavar="S",
        help="seconds between a running trial's resume snapshots, written with its epochs' "
        "MLflow metrics: a worker killed mid-trial loses at most that much training, and a "
        "trial shorter than that writes its curves once, at its end; 0 = after every epoch "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--outage-wait",
        type=positive_float,
        default=d.outage_wait,
        help="seconds to wait for the Optuna storage or the MLflow tracking server when it "
        "becomes unreachable (a restart, a failover) before this worker stops with exit code "
        f"{EXIT_OUTAGE} (default: %(default)s)",
    )
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)


def add_start_options(p: argparse.ArgumentParser) -> None:
    """``study.run``'s options for what runs first or is known before the search: seed
    systems, configs, another study, the baseline."""
    p.add_argument(
        "--enqueue-seeds",
        nargs="?",
        const="all",
        default=None,
        metavar="NAMES",
        help="enqueue the seed systems (SEEDS.md) as the study's first trials: all that fit "
        "the objective, or a comma-separated list of preset names; each is enqueued once",
    )
    p.add_argument(
        "--enqueue-config",
        dest="enqueue_configs",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="run this exported configuration (study.export's file) first; repeatable; "
        "each is queued once",
    )
    p.add_argument(
        "--warm-start",
        default=None,
        metavar="STUDY",
        help="copy the finished trials of another study of the same objective in the same "
        "storage into this one's history (not counted in --trials, never re-trained)",
    )
    p.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="do not run the objective's baseline (a textbook configuration, "
        "objectives/baselines.py) as a new study's first trial",
    )


def settings_from_argv(argv: list[str]) -> RunSettings:
    ns = build_parser().parse_args(argv)
    return from_namespace(
        RunSettings,
        ns,
        enqueue_seeds=seed_choice(ns.enqueue_seeds, ns.objective),
        enqueue_configs=tuple(ns.enqueue_configs),
        pruner=pick_pruner(ns.pruner, ns.pareto),
    )


@entry
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == [WORKER_OPTION]:  # one of --workers' processes: its settings on stdin
        settings = loads(sys.stdin.read())
        remember(settings.storage.url, settings.tracking.url)
    else:
        settings = settings_from_argv(argv)
    return run_study(settings)


if __name__ == "__main__":
    sys.exit(main())
