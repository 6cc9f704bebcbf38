"""A process's run of a study, from its checks to its exit code: the checks made before any
store is touched, the session, this process's trials (or its ``--workers``), and the end:
the summary, the best encoder, the report and the commands to go on with."""

from __future__ import annotations

import signal
import sys
import time

from optuna.trial import TrialState

from study.errors import EXIT_INTERRUPTED
from study.execution import console
from study.execution.scheduler import FULL, Stop, StopKind, Tally, counts, finished, work
from study.search.results import best_trial
from study.settings import RunSettings
from study.stores.disk import EXIT_DISK_FULL, DiskFullError
from study.stores.locations import check_storage, check_tracking
from study.stores.outage import EXIT_OUTAGE, OutageError
from study.stores.secrets import secrets_in

INTERRUPTED = "Interrupted: finished trials are saved; re-run the same command to continue."


def run_study(settings: RunSettings) -> int:
    """Run (or resume) the study ``settings`` describes; the process's exit code."""
    import torch

    from models import flush_denormals, resolve_device
    from objectives import OBJECTIVES
    from study.data import loading as data_mod
    from study.execution.session import open_session
    from study.search.warm import check_configs

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
    if not settings.is_worker and not say_header(session, data, device):
        return refit_if_missing(session, dataset, device)
    started = time.monotonic()
    if settings.workers > 1 and not settings.is_worker:
        from study.execution.workers import spawn

        code = spawn(settings, torch.cuda.device_count())
        if code == EXIT_INTERRUPTED or code < 0:
            return interrupted(session)
        if code in (EXIT_OUTAGE, EXIT_DISK_FULL):  # the worker said why; nothing to publish
            return code
        stop = Stop(StopKind.WORKER_FAILED, f"a worker exited with code {code}") if code else FULL
    else:
        try:
            stop = loop(session, data, device)
        except KeyboardInterrupt:
            return interrupted(session)
        except (OutageError, DiskFullError) as e:  # nothing finished is lost: one line
            print(f"error: {e}", file=sys.stderr)
            return EXIT_OUTAGE if isinstance(e, OutageError) else EXIT_DISK_FULL
        if settings.is_worker:
            if stop.text:
                print(f"Stopped: {stop.text}.")
            return 1 if stop.failed else 0
    return finish(session, stop, time.monotonic() - started, dataset, device)


def say_header(session, data, device) -> bool:
    """The study's header; whether there are trials left to run (else it says so)."""
    settings = session.settings
    print("\n".join(console.header(session, data, device)))
    if settings.pareto and settings.pruner == "none":
        print("  two objectives, --pruner none: every trial trains its full epoch budget")
    elif settings.pareto:
        print(
            f"  two objectives, pruned by {settings.pruner}: at epochs 1, 3, 9, ... a trial "
            "goes on if it is on the first front of its rung or in the top third by front "
            "and crowding distance"
        )
    if session.finished_before >= settings.trials:
        print(
            f"Nothing to do: the study already has {session.finished_before} finished "
            f"trials (--trials {settings.trials}). Raise --trials to run more."
        )
        return False
    return True


def secrets_of(session) -> set[str]:
    return secrets_in(session.settings.storage.url, session.settings.tracking.url)


def refit_if_missing(session, dataset, device) -> int:
    """A full study re-run: its refit, if it has none for its best configurations yet (a
    run killed mid-refit, or a study from before refits), registered; the exit code."""
    from study.execution import refit as refit_mod
    from study.execution.publish import register

    try:
        refit, new = refit_mod.ensure(session, dataset, device, FULL)
    except Exception as e:  # noqa: BLE001 - the trials are saved; say so in one line
        return refit_mod.failed(e, secrets_of(session))
    if new and session.tracker is None:
        print(refit_mod.summary_line(refit, None))
    elif new:
        with session.lock():
            register(session.tracker, best_trial(session.study), refit)
    return 0


def raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def loop(session, data, device) -> Stop:
    """This process's trials until the study is full; SIGTERM counts as Ctrl-C. A finished
    trial's records are written while the next one trains; they are all written (or the
    trial left RUNNING, to be retried) before this returns, Ctrl-C included."""
    from study.execution.trial import RecordWriter, TrialRunner

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


def finish(session, stop: Stop, seconds: float, dataset, device) -> int:
    """The summary, the refit, the best encoder, the report and the next commands; the exit
    code."""
    from study.execution import refit as refit_mod
    from study.execution.publish import publish_best
    from study.experiments.cells import is_experiment

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
    print(f"\nStopped: {stop.text}." if stop.text else "")
    metric = session.objective.metric
    print("\n".join(console.summary_lines(settings.name, summary, seconds, best, metric)))
    # Under the study lock: several processes (the same command in several shells) may end
    # at once and write the same parent-run tags, encoder and report.
    experiment = is_experiment(study)  # study.ablate/confirm: they publish their own tables
    refit, refit_error = None, None
    if not experiment and best is not None:
        try:  # outside the study lock: it trains for a while, under a lock of its own
            refit, _ = refit_mod.ensure(session, dataset, device, stop)
        except Exception as e:  # noqa: BLE001 - the trials are saved; the rest is published
            refit_error = e
    with session.lock():
        encoder_run = None if experiment else publish_best(session, best, refit)
        if tracker is not None:
            tracker.finish(summary)
    if not experiment:
        experiment_id = tracker.experiment_id if tracker else None
        encode_run = refit.run_id if refit is not None and refit.run_id else encoder_run
        print("\n".join(console.commands(settings, experiment_id, encode_run)))
    if refit_error is not None:
        return refit_mod.failed(refit_error, secrets_of(session))
    # A timeout is a stop the user asked for; failures or a failed worker are not.
    return 1 if stop.failed else 0
