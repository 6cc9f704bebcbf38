"""``python -m study.run``: run or resume a study; every trial is tracked in MLflow.

Re-running the same command continues the study until it holds ``--trials`` finished
(complete or pruned) trials.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from optuna.trial import TrialState

from . import console
from .cli import (
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
from .outage import EXIT_OUTAGE, OutageError
from .scheduler import Tally, best_trial, counts, finished, work
from .search import PRUNERS, SAMPLERS
from .settings import LIMIT_TRAIN, LIMIT_VAL, RunSettings, from_namespace, seed_choice
from .stores import DEFAULT_STORAGE, check_storage, check_tracking
from .warm import add_start_options

EXIT_INTERRUPTED = 130
INTERRUPTED = "Interrupted: finished trials are saved; re-run the same command to continue."


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
    p.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="skip the plots and report written at the end (python -m study.report writes "
        "them on demand)",
    )
    return p


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
        choices=PRUNERS,
        default=d.pruner,
        help="stop unpromising trials early: successive-halving (asynchronous, keeps the top "
        "third at epochs 1, 3, 9...), median, percentile (keeps the top 25%%), hyperband, or "
        "none to train every trial to its budget (default: %(default)s)",
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
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)


def settings_from_argv(argv: list[str]) -> RunSettings:
    ns = build_parser().parse_args(argv)
    return from_namespace(
        RunSettings,
        ns,
        enqueue_seeds=seed_choice(ns.enqueue_seeds, ns.objective),
        enqueue_configs=tuple(ns.enqueue_configs),
    )


@entry
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_study(settings_from_argv(argv), argv=argv)


def run_study(settings: RunSettings, *, argv: list[str] | None = None) -> int:
    """Run (or resume) the study ``settings`` describes; the process's exit code.

    ``argv`` is the command line, which ``--workers`` hands on to each worker.
    """
    import torch

    from models import flush_denormals, resolve_device
    from objectives import OBJECTIVES

    from . import data as data_mod
    from .session import open_session
    from .warm import check_configs

    flush_denormals()  # before any parallel work, so that torch's threads inherit it
    if settings.threads:
        torch.set_num_threads(settings.threads)
    # Everything a user can get wrong is checked before any store is touched.
    device = resolve_device(settings.device)
    check_storage(settings.storage)
    check_tracking(settings.tracking)
    dataset = data_mod.load(settings.dataset, settings.data_dir)
    objective = OBJECTIVES[settings.objective]
    configs = check_configs(settings.enqueue_configs, objective, settings.epochs)
    session = open_session(settings, objective, dataset, device, configs=configs)
    settings, data = session.settings, session.data  # the images per trial filled in
    if not settings.is_worker:
        print("\n".join(console.header(session, data, device)))
        if settings.pareto:
            print(
                "  two objectives: Optuna cannot prune a multi-objective study, so every "
                "trial trains its full epoch budget (--pruner is not used)"
            )
        if session.finished_before >= settings.trials:
            print(
                f"Nothing to do: the study already has {session.finished_before} finished "
                f"trials (--trials {settings.trials}). Raise --trials to run more."
            )
            return 0
    started = time.monotonic()
    if settings.workers > 1 and not settings.is_worker:
        from .workers import spawn

        code = spawn(settings, argv or [], torch.cuda.device_count())
        if code == EXIT_INTERRUPTED or code < 0:
            return interrupted(session)
        stop_reason = f"a worker exited with code {code}" if code else None
    else:
        try:
            stop_reason = loop(session, data, device)
        except KeyboardInterrupt:
            return interrupted(session)
        except OutageError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_OUTAGE
        if settings.is_worker:
            if stop_reason:
                print(f"Stopped: {stop_reason}.")
            return 1 if stop_reason and "failed" in stop_reason else 0
    return finish(session, stop_reason, time.monotonic() - started)


def raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def loop(session, data, device) -> str | None:
    """This process's trials until the study is full; SIGTERM counts as Ctrl-C. A finished
    trial's records are written while the next one trains; they are all written (or the
    trial left RUNNING, to be retried) before this returns, Ctrl-C included."""
    from .trial import RecordWriter, TrialRunner

    progress = console.ConsoleProgress(
        session.settings, session.objective.metric, session.finished_before
    )
    tally = Tally(progress, session.study)
    records = session.settings.records
    writer = RecordWriter(records == "background" or (records == "auto" and device.type == "cuda"))
    runner = TrialRunner(
        session.objective,
        data,
        settings=session.settings,
        device=device,
        tracker=session.tracker,
        say=progress.say,
        writer=writer,
        on_recorded=tally.add,
    )
    previous = signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        return work(
            session, lambda trial, asked: runner(session.study, trial, asked), tally, writer
        )
    finally:
        try:
            writer.flush()
        finally:
            progress.close()
            signal.signal(signal.SIGTERM, previous)


def interrupted(session) -> int:
    if session.tracker is not None and not session.settings.is_worker:
        session.tracker.interrupted()
    print(f"\n{INTERRUPTED}", file=sys.stderr)
    return EXIT_INTERRUPTED


def finish(session, stop_reason: str | None, seconds: float) -> int:
    """The summary, the best encoder, the report and the next commands; the exit code."""
    from .cells import is_experiment
    from .publish import publish_best

    settings, study, tracker = session.settings, session.study, session.tracker
    c = counts(study)
    best = best_trial(study)
    summary = {
        "finished": finished(c),
        "complete": c[TrialState.COMPLETE],
        "pruned": c[TrialState.PRUNED],
        "failed": c[TrialState.FAIL],
        "best_trial": best.number if best else None,
        "best_value": best.values[0] if best else None,
    }
    print(f"\nStopped: {stop_reason}." if stop_reason else "")
    metric = session.objective.metric
    print("\n".join(console.summary_lines(settings.name, summary, seconds, best, metric)))
    # Under the study lock: several processes (the same command in several shells) may end
    # at once and write the same parent-run tags, encoder and report.
    experiment = is_experiment(study)  # study.ablate/confirm: they publish their own tables
    with session.lock():
        encoder_run = None if experiment else publish_best(session, best)
        if tracker is not None:
            tracker.finish(summary)
    if not experiment:
        experiment_id = tracker.experiment_id if tracker else None
        print("\n".join(console.commands(settings, experiment_id, encoder_run)))
    # A timeout is a stop the user asked for; failures or a failed worker are not.
    return 1 if stop_reason and not stop_reason.startswith("--timeout") else 0


if __name__ == "__main__":
    sys.exit(main())
