"""What a running trial tells the world after each epoch: the Optuna trial, its MLflow run
and its time breakdown, checking first that the trial is still this worker's."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from objectives import BASELINE_ATTR, CELL_ATTR, SEED_ATTR


def worker_name() -> str:
    """``host:pid``: which process ran a trial (a trial attribute and an MLflow param)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_context(runner, trial, original: int) -> dict:
    """What a trial's MLflow run records beside its spec: data, device, seeds, worker, and
    what an experiment's cell varied."""
    s, data = runner.settings, runner.data
    extra = {k: trial.user_attrs[k] for k in (SEED_ATTR, BASELINE_ATTR) if k in trial.user_attrs}
    cell = trial.user_attrs.get(CELL_ATTR)
    if cell is not None:  # what the experiment varied, as params of the run
        extra.update({f"cell.{k}": v for k, v in cell.items() if k != "spec"})
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:  # this worker's GPU(s)
        extra["cuda_visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return {
        **extra,
        "worker": worker_name(),
        "dataset": data.name,
        "limit_train": len(data.train),
        "limit_val": len(data.val),
        "max_epochs": s.epochs,
        "device": str(runner.device),
        "sampler": s.sampler,
        "pruner": s.pruner,
        "seed": s.seed,
        "trial_seed": runner.trial_seed(trial, original),
    }


class TrialReporter:
    """The objective's reporter: keeps the spec on the Optuna trial, forwards everything to
    the MLflow run, and checks before each step that the trial is still this worker's."""

    def __init__(
        self, trial, run, context: dict, guard: Callable[[], None], breakdown,
        settle: Callable[[], None] = lambda: None,
    ):  # fmt: skip
        self.trial, self.run, self.context, self.guard = trial, run, context, guard
        self.breakdown = breakdown
        self.settle = settle  # before the first report: the last trial's records are written
        # A two-objective study's pruner: after each main-phase epoch, why to stop, or None.
        self.judge: Callable[[object], str | None] | None = None
        self.epochs = 0
        self.last_value: float | None = None
        self.last_val: dict | None = None
        self.batch_size: int | None = None
        self.seconds: list[float] = []
        self.model = None

    def start(self, spec) -> None:
        with self.breakdown("storage"):
            self.guard()
            self.trial.set_user_attr("spec", spec.to_dict())
        self.batch_size = spec.train.batch_size
        if self.run is not None:
            with self.breakdown("tracking"):
                self.run.start(spec, self.context, self.trial)

    def epoch(self, result) -> None:
        with self.breakdown("wait"):
            self.settle()
        self.breakdown.add("train", result.seconds - result.eval_seconds)
        self.breakdown.add("eval", result.eval_seconds)
        with self.breakdown("storage"):
            self.guard()
        self.epochs += 1
        self.seconds.append(result.seconds)
        if result.phase == "train":
            self.last_value, self.last_val = result.value, dict(result.val)
        if self.run is not None:
            with self.breakdown("tracking"):
                self.run.epoch(result)
        if self.judge is not None and result.phase == "train":
            with self.breakdown("storage"):
                reason = self.judge(result)
            if reason is not None:
                import optuna

                raise optuna.TrialPruned(reason)

    def done(self, model) -> None:
        # The trained model, for the checkpoint and pictures; needed where a retried trial
        # resumed after its very last epoch and trained none.
        self.model = model
        if self.run is not None:
            self.run.model = model
