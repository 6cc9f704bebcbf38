"""``python -m study.run``: run or resume a study; every trial is tracked in MLflow.

Re-running the same command continues the study until it holds ``--trials`` finished
(complete or pruned) trials.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from dataclasses import dataclass

from ._common import (
    DEFAULT_STORAGE,
    DEFAULT_TRACKING,
    PRUNERS,
    SAMPLERS,
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
    study_name,
)

DEFAULT_TRIALS = 100
DEFAULT_EPOCHS = 8
DEFAULT_LIMIT_TRAIN = 10_000
DEFAULT_LIMIT_VAL = 5_000
MAX_FAILURES_IN_A_ROW = 5
FINISHED = ("COMPLETE", "PRUNED")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
        default="median",
        help="stop unpromising trials early; 'none' trains every trial to its "
        "budget (default: %(default)s)",
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
    return p


@dataclass
class Outcome:
    number: int
    state: str
    value: float | None
    seconds: float
    epochs: int


def _counts(study) -> dict[str, int]:
    from optuna.trial import TrialState

    out = {s.name: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] += 1
    return out


def _best(study):
    try:
        return study.best_trial
    except ValueError:
        return None


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class TrialFunction:
    """The Optuna objective: run one trial and mirror its outcome in MLflow."""

    def __init__(self, objective, data, *, device, args, tracker):
        self.objective = objective
        self.data = data
        self.device = device
        self.args = args
        self.tracker = tracker
        self.last: Outcome | None = None

    def __call__(self, trial) -> float:
        import optuna

        from models import NonFiniteLossError
        from objectives import run_trial

        start = time.perf_counter()
        run = None
        if self.tracker is not None:
            run = self.tracker.start_trial(
                trial,
                objective=self.objective.name,
                dataset=self.args.dataset,
                val_images=self.data.val.images,
                val_labels=self.data.val.labels,
            )
        reporter = _Reporter(trial, run, self.context(trial))
        state, value, reason, error = "FAIL", None, None, None
        try:
            value = run_trial(
                trial,
                self.objective,
                train=self.data.train,
                val=self.data.val,
                device=self.device,
                max_epochs=self.args.epochs,
                seed=self.args.seed,
                reporter=reporter,
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
        except BaseException as e:
            reason, error = f"{type(e).__name__}: {e}", e
            raise
        finally:
            if reason and state == "FAIL":
                trial.set_user_attr("fail_reason", reason)
            if run is not None:
                run.close(state, value=value, reason=reason, error=error)
            self.last = Outcome(
                trial.number, state, value, time.perf_counter() - start, reporter.epochs
            )

    def context(self, trial) -> dict:
        a = self.args
        return {
            "dataset": a.dataset,
            "limit_train": len(self.data.train),
            "limit_val": len(self.data.val),
            "max_epochs": a.epochs,
            "device": self.device,
            "sampler": a.sampler,
            "pruner": a.pruner,
            "seed": a.seed,
            "trial_seed": a.seed + trial.number,
        }


class _Reporter:
    """Keeps the spec on the Optuna trial and forwards everything to the MLflow run."""

    def __init__(self, trial, run, context: dict):
        self.trial, self.run, self.context = trial, run, context
        self.epochs = 0
        self.last_value = None

    def start(self, spec) -> None:
        self.trial.set_user_attr("spec", spec.to_dict())
        if self.run is not None:
            self.run.start(spec, self.context)

    def epoch(self, result) -> None:
        self.epochs += 1
        if result.phase == "train":
            self.last_value = result.value
        if self.run is not None:
            self.run.epoch(result)


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


def _commands(args, name: str, experiment_id: str | None) -> list[str]:
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
    return out


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import optuna
    import torch

    from models import resolve_device
    from objectives import OBJECTIVES

    from . import data as data_mod
    from .tracking import StudyTracker

    objective = OBJECTIVES[args.objective]
    name = study_name(args)
    # Everything a user can get wrong is checked before any store is touched.
    device = resolve_device(args.device)
    check_storage_url(args.storage)
    check_tracking_uri(args.tracking_uri)
    dataset = data_mod.load(args.dataset, args.data_dir)
    train = dataset.train.head(args.limit_train or None).to(device)
    val = dataset.val.head(args.limit_val or None).to(device)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, storage = load_study(name, args.storage)
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
    done_before = _counts(study) if existing else {}
    finished_before = sum(done_before.get(s, 0) for s in FINISHED)
    # A fresh seed per session: a resumed study must not replay its first random trials.
    sampler = make_sampler(args.sampler, args.seed + sum(done_before.values()))
    pruner = make_pruner(args.pruner, args.epochs)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction=objective.direction,
        load_if_exists=True,
    )
    if not existing:
        study.set_user_attr("objective", args.objective)
        study.set_user_attr("dataset", args.dataset)
        study.set_user_attr("metric", objective.metric)

    print(
        f"Study {name!r}: {objective.description}, on {args.dataset} "
        f"({len(train)} train / {len(val)} validation images from {dataset.source}), "
        f"device {device}"
    )
    print(f"  storage {redact(args.storage)}, tracking {redact(args.tracking_uri)}")
    if existing:
        print(
            f"  resuming: {finished_before} of {args.trials} trials already finished"
            + (
                f" ({done_before.get('FAIL', 0)} failed ones do not count)"
                if done_before.get("FAIL")
                else ""
            )
        )
    if finished_before >= args.trials:
        print(
            f"Nothing to do: the study already has {finished_before} finished trials "
            f"(--trials {args.trials}). Raise --trials to run more."
        )
        return 0

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
    torch.set_num_threads(max(1, torch.get_num_threads()))
    func = TrialFunction(
        objective,
        data_mod.Dataset(dataset.name, train, val, dataset.test, dataset.source),
        device=device,
        args=args,
        tracker=tracker,
    )

    from tqdm import tqdm

    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    started = time.monotonic()
    failures_in_a_row = 0
    stop_reason = None
    bar = tqdm(
        total=args.trials,
        initial=finished_before,
        unit="trial",
        dynamic_ncols=True,
        file=sys.stderr,
        desc=name,
        disable=None,
    )  # no bar when not a terminal
    try:
        while True:
            finished = sum(_counts(study).get(s, 0) for s in FINISHED)
            bar.n = min(finished, args.trials)
            bar.refresh()
            if finished >= args.trials:
                break
            if args.timeout is not None and time.monotonic() - started >= args.timeout:
                stop_reason = f"--timeout {args.timeout:g}s reached"
                break
            func.last = None
            study.optimize(func, n_trials=1, catch=(Exception,), gc_after_trial=False)
            outcome = func.last
            if outcome is None:
                continue
            bar.write(_line(outcome, objective.metric, _best(study)), file=sys.stdout)
            failures_in_a_row = failures_in_a_row + 1 if outcome.state == "FAIL" else 0
            if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                stop_reason = (
                    f"{failures_in_a_row} trials failed in a row; see their "
                    "fail_reason in MLflow or the study's trial attributes"
                )
                break
    except KeyboardInterrupt:
        bar.close()
        if tracker is not None:
            tracker.interrupted()
        print(
            "\nInterrupted: finished trials are saved; re-run the same command to continue.",
            file=sys.stderr,
        )
        return 130
    finally:
        bar.close()
        signal.signal(signal.SIGTERM, previous)

    counts = _counts(study)
    best = _best(study)
    summary = {
        "finished": counts["COMPLETE"] + counts["PRUNED"],
        "complete": counts["COMPLETE"],
        "pruned": counts["PRUNED"],
        "failed": counts["FAIL"],
        "best_trial": best.number if best else None,
        "best_value": best.value if best else None,
    }
    print()
    if stop_reason:
        print(f"Stopped: {stop_reason}.")
    print(
        f"Study {name!r}: {summary['finished']} finished trials ({counts['COMPLETE']} "
        f"complete, {counts['PRUNED']} pruned), {counts['FAIL']} failed, "
        f"{time.monotonic() - started:.0f}s this session."
    )
    if best is not None:
        print(f"Best trial {best.number}: {objective.metric} = {best.value:.4f}")
        for k, v in best.params.items():
            print(
                f"  {k} = {v:.4g}" if isinstance(v, float) and not math.isnan(v) else f"  {k} = {v}"
            )
    if tracker is not None:
        tracker.finish(summary)
    for line in _commands(args, name, tracker.experiment_id if tracker else None):
        print(line)
    return 1 if stop_reason and "failed" in stop_reason else 0


if __name__ == "__main__":
    sys.exit(main())
