"""``python -m study.run``: run or resume a study; every trial is tracked in MLflow.

Re-running the same command continues the study until it holds ``--trials`` finished
(complete or pruned) trials.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass

from ._common import (
    DEFAULT_STORAGE,
    DEFAULT_TRACKING,
    PRUNERS,
    SAMPLERS,
    Parser,
    UsageError,
    add_study_arguments,
    check_storage_url,
    check_tracking_uri,
    exits_cleanly,
    load_study,
    make_pruner,
    make_sampler,
    non_negative_int,
    positive_float,
    positive_int,
    redact,
    server_lock_engine,
    study_name,
)

DEFAULT_TRIALS = 100
DEFAULT_EPOCHS = 8
DEFAULT_LIMIT_TRAIN = 10_000
DEFAULT_LIMIT_VAL = 2_500
MAX_FAILURES_IN_A_ROW = 5
DEFAULT_HEARTBEAT = 30


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.run",
        description="Run (or resume) an Optuna study; every trial is logged to MLflow. "
        "Re-running the same command continues to --trials finished trials.",
    )
    p.add_argument(
        "--trials",
        type=positive_int,
        default=DEFAULT_TRIALS,
        help="total finished (complete + pruned) trials the study should hold; "
        "re-running continues up to it (default: %(default)s)",
    )
    add_study_arguments(p)
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULT_EPOCHS,
        help="maximum training epochs per trial; the search picks a budget between "
        "half of it and it (default: %(default)s)",
    )
    p.add_argument(
        "--limit-train",
        type=non_negative_int,
        default=DEFAULT_LIMIT_TRAIN,
        help="train each trial on the first N of the 50,000 training images; "
        "0 = all (default: %(default)s)",
    )
    p.add_argument(
        "--limit-val",
        type=non_negative_int,
        default=DEFAULT_LIMIT_VAL,
        help="score each trial on the first N of the 10,000 validation images; "
        "0 = all (default: %(default)s)",
    )
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="tpe",
        help="Optuna sampler, seeded with --seed (default: %(default)s)",
    )
    p.add_argument(
        "--pruner",
        choices=PRUNERS,
        default="successive-halving",
        help="stop unpromising trials early: successive-halving (asynchronous, keeps the top "
        "third at epochs 1, 3, 9...), median, percentile (keeps the top 25%%), hyperband, or "
        "none to train every trial to its budget (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the sampler and of each trial's training (default: %(default)s)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default: %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        help="start no new trial after S seconds (default: no limit)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory with the IDX files (default: $STUDY_DATA_DIR, "
        "torchvision's root, the Debian package, then a download)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="worker processes to start on this machine, all on the same study; each gets "
        "cpu_count/N torch threads (default: %(default)s)",
    )
    p.add_argument(
        "--heartbeat",
        type=positive_int,
        default=DEFAULT_HEARTBEAT,
        help="seconds between a running trial's heartbeats (SQLite/PostgreSQL storage); a "
        "trial silent for 3 heartbeats is failed and retried (default: %(default)s)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="run each trial's loss computation through torch.compile (pays off on a GPU "
        "with long trials; slower on a CPU)",
    )
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
        "--no-report",
        action="store_true",
        help="skip the plots and report written at the end (python -m study.report writes "
        "them on demand)",
    )
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    return p


def _seed_names(args) -> list[str]:
    """The presets --enqueue-seeds names, checked against the objective."""
    from objectives.seeds import seed_names

    if args.enqueue_seeds is None:
        return []
    allowed = seed_names(args.objective)
    if args.enqueue_seeds == "all":
        return allowed
    names = [n.strip() for n in args.enqueue_seeds.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise UsageError(
            f"argument --enqueue-seeds: {bad or args.enqueue_seeds!r} not among the "
            f"{args.objective!r} objective's seeds {allowed} (or leave NAMES out for all)"
        )
    return names


def _enqueue_seeds(study, names: list[str]) -> int:
    """Enqueue each named seed the study has not seen yet; how many were added."""
    from objectives.seeds import SEED_ATTR

    seen = {t.user_attrs.get(SEED_ATTR) for t in study.get_trials(deepcopy=False)}
    added = [n for n in names if n not in seen]
    for name in added:
        study.enqueue_trial({}, user_attrs={SEED_ATTR: name})
    return len(added)


WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Outcome:
    number: int
    state: str
    value: float | None
    seconds: float
    epochs: int


def _best(study):
    try:
        return study.best_trial
    except ValueError:
        return None


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _frozen(trial):
    return trial.study._storage.get_trial(trial._trial_id)


class TrialFunction:
    """Runs one trial and mirrors its outcome in MLflow; ``last`` describes it afterwards."""

    def __init__(self, objective, data, *, device, args, tracker):
        self.objective = objective
        self.data = data
        self.device = device
        self.args = args
        self.tracker = tracker
        self.last: Outcome | None = None

    def __call__(self, trial) -> float:
        import optuna
        import torch

        from models import NonFiniteLossError
        from objectives import run_trial

        from ._loop import RETRY

        start = time.perf_counter()
        trial.set_user_attr("worker", WORKER)  # which host and process ran it
        history = RETRY.retry_history(_frozen(trial))
        original = history[0] if history else trial.number
        run = resume = None
        if self.tracker is not None:
            run = self.tracker.start_trial(
                trial,
                objective=self.objective.name,
                dataset=self.args.dataset,
                val_images=self.data.val.images,
                val_labels=self.data.val.labels,
            )
            if history:
                previous = trial.study.get_trials(deepcopy=False)[history[-1]]
                previous_run = previous.user_attrs.get("mlflow_run_id")
                resume = self.tracker.fetch_resume(previous_run) if previous_run else None
                if resume is not None:
                    run.restored(resume["history"], history[-1])
        reporter = _Reporter(trial, run, self.context(trial, original))
        if resume is not None:
            reporter.epochs = len(resume["history"])
        state, value, reason, error = "FAIL", None, None, None
        try:
            value = run_trial(
                trial,
                self.objective,
                train=self.data.train,
                val=self.data.val,
                device=self.device,
                max_epochs=self.args.epochs,
                seed=self.args.seed + original,
                reporter=reporter,
                resume=resume,
                compile=self.args.compile,
            )
            state = "COMPLETE"
            return value
        except optuna.TrialPruned as e:
            state, reason = "PRUNED", str(e)
            value = reporter.last_value
            raise
        except NonFiniteLossError as e:
            reason = str(e)
            raise
        except torch.cuda.OutOfMemoryError as e:
            reason = (
                f"CUDA out of memory (batch size {reporter.batch_size}); the next trial "
                f"goes on. {str(e).splitlines()[0][:300]}"
            )
            error = e
            raise
        except KeyboardInterrupt as e:
            reason = "interrupted (Ctrl-C or SIGTERM); re-running the study retries it"
            trial.set_user_attr("interrupted", True)
            error = e
            raise
        except BaseException as e:
            reason, error = f"{type(e).__name__}: {e}", e
            raise
        finally:
            if reason and state == "FAIL":
                trial.set_user_attr("fail_reason", reason)
            if run is not None:
                run.close(state, value=value, reason=reason, error=error)
                run.model = None
            self.last = Outcome(
                trial.number, state, value, time.perf_counter() - start, reporter.epochs
            )
            if isinstance(error, torch.cuda.OutOfMemoryError):
                # Drop every reference to the failed model before handing memory back.
                error = None
                gc.collect()
                torch.cuda.empty_cache()

    def context(self, trial, original: int) -> dict:
        from objectives.seeds import SEED_ATTR

        a = self.args
        seed = {SEED_ATTR: trial.user_attrs[SEED_ATTR]} if SEED_ATTR in trial.user_attrs else {}
        return {
            **seed,
            "worker": WORKER,
            "dataset": a.dataset,
            "limit_train": len(self.data.train),
            "limit_val": len(self.data.val),
            "max_epochs": a.epochs,
            "device": self.device,
            "sampler": a.sampler,
            "pruner": a.pruner,
            "seed": a.seed,
            "trial_seed": a.seed + original,
        }


class _Reporter:
    """Keeps the spec on the Optuna trial and forwards everything to the MLflow run."""

    def __init__(self, trial, run, context: dict):
        self.trial, self.run, self.context = trial, run, context
        self.epochs = 0
        self.last_value = None
        self.batch_size = None

    def start(self, spec) -> None:
        self.trial.set_user_attr("spec", spec.to_dict())
        self.batch_size = spec.train.batch_size
        if self.run is not None:
            self.run.start(spec, self.context)

    def epoch(self, result) -> None:
        self.epochs += 1
        if result.phase == "train":
            self.last_value = result.value
        if self.run is not None:
            self.run.epoch(result)

    def done(self, model) -> None:
        # The trained model, for the checkpoint and pictures; needed where a retried trial
        # resumed after its very last epoch and trained none.
        if self.run is not None:
            self.run.model = model


def execute(study, trial, func) -> None:
    """Run ``func`` on an asked trial and tell the study how it ended."""
    import optuna
    from optuna.trial import TrialState

    from ._loop import Heartbeat

    with Heartbeat(study, trial._trial_id):
        try:
            value = func(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except Exception:  # recorded by func; the study goes on
            study.tell(trial, state=TrialState.FAIL)
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            study.tell(trial, value)


def _format_value(metric: str, value: float | None) -> str:
    return f"{metric}={value:.4f}" if value is not None else f"{metric}=-"


def _line(outcome: Outcome, metric: str, best) -> str:
    best_text = (
        f"best {metric}={best.value:.4f} (trial {best.number})" if best is not None else "best -"
    )
    return (
        f"trial {outcome.number:>4}  {outcome.state:<8}  "
        f"{_format_value(metric, outcome.value):<14}  {best_text}  "
        f"{outcome.epochs} epochs, {outcome.seconds:.1f}s"
    )


def _report(study, args, name: str, tracker) -> None:
    from .report import default_out, write_report

    try:
        path = write_report(
            study,
            default_out(args.storage, name),
            client=tracker.client if tracker else None,
            parent_run_id=tracker.parent_run_id if tracker else None,
        )
    except Exception as e:  # noqa: BLE001 - the study's results are saved either way
        print(f"warning: could not write the study report: {e}", file=sys.stderr)
        return
    print(f"Report:  {path}")


def _publish_encoder(tracker, best) -> str | None:
    """Log the best trial's encoder as a torch.export program to its run; its run id."""
    run_id = best.user_attrs.get("mlflow_run_id") if best is not None else None
    if not run_id:
        return None
    from .encode import publish_encoder

    try:
        uri = publish_encoder(tracker.client, run_id, tracking_uri=tracker.uri)
    except Exception as e:  # noqa: BLE001 - the study's results are saved either way
        print(f"warning: could not export the best trial's encoder: {e}", file=sys.stderr)
        return None
    if uri is None:
        return None
    tracker.client.set_tag(tracker.parent_run_id, "best_encoder_uri", uri)
    print(f"Encoder of trial {best.number}: {uri}")
    return run_id


def _commands(
    args, name: str, experiment_id: str | None, encoder_run: str | None = None
) -> list[str]:
    extra = ""
    if args.storage != DEFAULT_STORAGE:
        extra += f" --storage {redact(args.storage)}"
    if args.tracking_uri != DEFAULT_TRACKING:
        extra += f" --tracking-uri {redact(args.tracking_uri)}"
    out = []
    if args.tracking_uri.startswith("sqlite:"):
        out.append(f"Browse:  mlflow ui --backend-store-uri {args.tracking_uri}")
        if experiment_id is not None:
            out.append(
                "         then open http://127.0.0.1:5000/#/experiments/"
                f"{experiment_id}/runs?workflowType=machine_learning"
            )
    elif args.tracking_uri.startswith("http"):
        out.append(
            f"Browse:  {args.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}"
            "/runs?workflowType=machine_learning"
        )
    out.append(f"Export:  python -m study.export --study-name {name}{extra} --out best.yaml")
    if encoder_run is not None:
        where = (
            "" if args.tracking_uri == DEFAULT_TRACKING else f" --tracking-uri {args.tracking_uri}"
        )
        out.append(f"Encode:  python -m study.encode --run {encoder_run}{where} --out latents.npz")
    return out


def work(study, func, args, lock, tracker, bar) -> str | None:
    """Start trials until the study holds ``--trials`` finished ones; the stop reason or None."""
    from optuna.trial import TrialState

    from ._loop import counts, heartbeat_enabled, recover

    started = time.monotonic()
    failures_in_a_row = 0
    first = True
    while True:
        with lock():
            recovered = recover(study)
            if tracker is not None and (recovered or first):
                tracker.mirror(study)  # close runs a dead process left RUNNING
            first = False
            c = counts(study)
            finished = c[TrialState.COMPLETE] + c[TrialState.PRUNED]
            if recovered:
                bar.write(
                    f"queued again (their process stopped or was interrupted): trials {recovered}",
                    file=sys.stdout,
                )
            bar.n = min(finished, args.trials)
            bar.refresh()
            if finished >= args.trials:
                return None
            if args.timeout is not None and time.monotonic() - started >= args.timeout:
                return f"--timeout {args.timeout:g}s reached"
            trial = study.ask() if finished + c[TrialState.RUNNING] < args.trials else None
        if trial is None:
            # The last trials run elsewhere. Wait for them: if their process dies, their
            # heartbeat stops and this worker retries them. Without heartbeats, leave.
            if not heartbeat_enabled(study):
                return None
            time.sleep(min(2.0, args.heartbeat))
            continue
        func.last = None
        execute(study, trial, func)
        outcome = func.last
        bar.write(_line(outcome, func.objective.metric, _best(study)), file=sys.stdout)
        failures_in_a_row = failures_in_a_row + 1 if outcome.state == "FAIL" else 0
        if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            return (
                f"{failures_in_a_row} trials failed in a row; see their fail_reason in "
                "MLflow or the study's trial attributes"
            )


def _spawn_workers(args, argv: list[str]) -> int:
    """Start ``--workers`` copies of this command on the same study; relay their output."""
    base = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--workers":
            skip = True
            continue
        if a.startswith("--workers="):
            continue
        base.append(a)
    env = dict(os.environ, STUDY_THREADS=str(max(1, (os.cpu_count() or 1) // args.workers)))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "study.run", *base, "--worker-index", str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in range(args.workers)
    ]

    def relay(i, proc):
        for line in proc.stdout:
            print(f"[worker {i}] {line}", end="", flush=True)

    threads = [
        threading.Thread(target=relay, args=(i, p), daemon=True) for i, p in enumerate(procs)
    ]
    for t in threads:
        t.start()

    def forward(signum, frame):
        for p in procs:
            p.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        forward(signal.SIGINT, None)
        codes = [p.wait() for p in procs]
    finally:
        signal.signal(signal.SIGTERM, previous)
        for t in threads:
            t.join(timeout=5)
    return max(codes, key=abs) if any(codes) else 0


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    import optuna
    import torch
    from optuna.trial import TrialState
    from tqdm import tqdm

    from models import resolve_device
    from objectives import OBJECTIVES

    from . import data as data_mod
    from ._loop import counts, study_lock
    from .tracking import StudyTracker

    objective = OBJECTIVES[args.objective]
    name = study_name(args)
    worker = args.worker_index is not None
    if os.environ.get("STUDY_THREADS"):
        torch.set_num_threads(int(os.environ["STUDY_THREADS"]))
    # Everything a user can get wrong is checked before any store is touched.
    device = resolve_device(args.device)
    check_storage_url(args.storage)
    check_tracking_uri(args.tracking_uri)
    seeds = _seed_names(args)
    dataset = data_mod.load(args.dataset, args.data_dir)
    train = dataset.train.head(args.limit_train or None).to(device)
    val = dataset.val.head(args.limit_val or None).to(device)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating initial tables..."
    # We run our own heartbeat thread around ask/tell (see _loop.Heartbeat).
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    # Stores are locked before they are opened: two processes creating the same fresh schema
    # would race (SQLite and PostgreSQL alike). A database server is locked through a
    # connection of its own, which also checks the driver and that the server answers.
    engine = server_lock_engine(args.storage) if args.storage.startswith("postgres") else None
    storage = None

    def lock():
        return study_lock(args.storage, engine, name)

    with lock():
        study, storage = load_study(name, args.storage, heartbeat=args.heartbeat, storage=storage)
        existing = study is not None
        if existing:
            attrs = study.user_attrs
            if (
                attrs.get("objective", args.objective) != args.objective
                or study.direction.name.lower() != objective.direction
            ):
                raise UsageError(
                    f"study {name!r} holds objective {attrs.get('objective')!r} "
                    f"({study.direction.name.lower()}), not {args.objective!r}; "
                    "pick another --study-name or the study's own --objective"
                )
            if attrs.get("dataset", args.dataset) != args.dataset:
                raise UsageError(
                    f"study {name!r} was run on {attrs.get('dataset')!r}, not "
                    f"{args.dataset!r}; pick another --study-name or --dataset"
                )
        before = counts(study) if existing else {}
        finished_before = before.get(TrialState.COMPLETE, 0) + before.get(TrialState.PRUNED, 0)
        # A fresh seed per session (and worker): a resumed study must not replay its first
        # random trials.
        offset = sum(before.values()) + 1000 * (args.worker_index or 0)
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=make_sampler(args.sampler, args.seed + offset),
            pruner=make_pruner(args.pruner, args.epochs),
            direction=objective.direction,
            load_if_exists=True,
        )
        for key, value in (
            ("objective", args.objective),
            ("dataset", args.dataset),
            ("metric", objective.metric),
        ):
            if key not in study.user_attrs:  # also fills in a study created outside the CLI
                study.set_user_attr(key, value)
        settings = {
            k: getattr(args, k)
            for k in (
                "trials",
                "epochs",
                "limit_train",
                "limit_val",
                "sampler",
                "pruner",
                "seed",
                "dataset",
                "objective",
            )
        }
        settings["device"] = str(device)
        settings["storage"] = redact(args.storage)
        tracker = None
        if args.tracking_uri != "none":
            tracker = StudyTracker(args.tracking_uri, study, settings=settings)
        enqueued = _enqueue_seeds(study, seeds) if seeds and not worker else 0

    if not worker:
        print(
            f"Study {name!r}: {objective.description}, on {args.dataset} "
            f"({len(train)} train / {len(val)} validation images from {dataset.source}), "
            f"device {device}"
        )
        print(f"  storage {redact(args.storage)}, tracking {redact(args.tracking_uri)}")
        if existing:
            failed = before.get(TrialState.FAIL, 0)
            print(
                f"  resuming: {finished_before} of {args.trials} trials already finished"
                + (f" ({failed} failed ones do not count)" if failed else "")
            )
        if seeds:
            print(f"  seed systems: {enqueued} enqueued ({len(seeds) - enqueued} already there)")
    if finished_before >= args.trials and not worker:
        print(
            f"Nothing to do: the study already has {finished_before} finished trials "
            f"(--trials {args.trials}). Raise --trials to run more."
        )
        return 0

    started = time.monotonic()
    stop_reason = None
    if args.workers > 1 and not worker:
        code = _spawn_workers(args, argv)
        if code == 130 or code < 0:
            if tracker is not None:
                tracker.interrupted()
            print(
                "Interrupted: finished trials are saved; re-run the same command to continue.",
                file=sys.stderr,
            )
            return 130
        if code:
            stop_reason = f"a worker exited with code {code}"
    else:
        func = TrialFunction(
            objective,
            data_mod.Dataset(dataset.name, train, val, dataset.test, dataset.source),
            device=device,
            args=args,
            tracker=tracker,
        )
        previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        bar = tqdm(
            total=args.trials,
            initial=finished_before,
            unit="trial",
            dynamic_ncols=True,
            file=sys.stderr,
            desc=name,
            disable=True if worker else None,  # no bar when not a terminal
        )
        try:
            stop_reason = work(study, func, args, lock, tracker, bar)
        except KeyboardInterrupt:
            bar.close()
            if tracker is not None and not worker:
                tracker.interrupted()
            print(
                "\nInterrupted: finished trials are saved; re-run the same command to continue.",
                file=sys.stderr,
            )
            return 130
        finally:
            bar.close()
            signal.signal(signal.SIGTERM, previous)
        if worker:
            if stop_reason:
                print(f"Stopped: {stop_reason}.")
            return 1 if stop_reason and "failed" in stop_reason else 0

    c = counts(study)
    best = _best(study)
    summary = {
        "finished": c[TrialState.COMPLETE] + c[TrialState.PRUNED],
        "complete": c[TrialState.COMPLETE],
        "pruned": c[TrialState.PRUNED],
        "failed": c[TrialState.FAIL],
        "best_trial": best.number if best else None,
        "best_value": best.value if best else None,
    }
    print()
    if stop_reason:
        print(f"Stopped: {stop_reason}.")
    print(
        f"Study {name!r}: {summary['finished']} finished trials ({summary['complete']} "
        f"complete, {summary['pruned']} pruned), {summary['failed']} failed, "
        f"{time.monotonic() - started:.1f}s this session."
    )
    if best is not None:
        print(f"Best trial {best.number}: {objective.metric} = {best.value:.4f}")
        for k, v in best.params.items():
            print(
                f"  {k} = {v:.4g}" if isinstance(v, float) and not math.isnan(v) else f"  {k} = {v}"
            )
    encoder_run = None
    if tracker is not None:
        encoder_run = _publish_encoder(tracker, best)
    if not args.no_report:
        _report(study, args, name, tracker)
    if tracker is not None:
        tracker.finish(summary)
    for line in _commands(args, name, tracker.experiment_id if tracker else None, encoder_run):
        print(line)
    # A timeout is a stop the user asked for; failures or a failed worker are not.
    return 1 if stop_reason and not stop_reason.startswith("--timeout") else 0


if __name__ == "__main__":
    sys.exit(main())
