"""One trial's life: from an asked trial to exactly one recorded end.

Whatever happens (a crash in ``suggest``, an MLflow write that fails, a NaN loss, CUDA out of
memory, Ctrl-C, or another worker taking the trial over after this process stalled), the
trial ends in one state in Optuna, its MLflow run is closed with the matching status and a
reason, and the worker goes on (or, for Ctrl-C, stops). A trial is told COMPLETE only after
its checkpoint and records are written.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from models import NonFiniteLossError
from objectives import CELL_ATTR, Objective, run_trial, trial_spec
from study.execution.reporter import TrialReporter, run_context, worker_name
from study.execution.scheduler import Heartbeat, retry_history
from study.search import pareto
from study.search.costs import COST_ATTR, OVER_BUDGET_ATTR, CostMeter, budget_violation
from study.search.samplers import is_seed
from study.settings import DATA_ATTR, RunSettings
from study.stores import optuna_internals as internals
from study.stores.disk import DiskFullError, as_disk_full, disk_full
from study.stores.outage import OutageError
from study.stores.secrets import scrub, secrets_in
from study.tracking.pictures import SCATTER_POINTS
from study.tracking.timing import TIME_ATTR, Breakdown, TimedTrial
from study.tracking.writer import RecordWriter

TAKEN_OVER = "TAKEN_OVER"
# How often, at most, a running trial whose heartbeats are late re-reads its own state to see
# whether another worker took it over (one whose heartbeats are on time is not read: ~2-3 ms
# of SQLite an epoch). Taking over waits --heartbeat-grace seconds of silence, and tell()
# checks again at the end, so a second later changes nothing.
GUARD_EVERY = 1.0
STATES = {"COMPLETE": TrialState.COMPLETE, "PRUNED": TrialState.PRUNED, "FAIL": TrialState.FAIL}


class OverBudget(optuna.TrialPruned):
    """The sampled model exceeds ``--max-params`` / ``--max-latent``: recorded, not trained."""


class TakenOver(Exception):
    """Another worker failed this trial for missing heartbeats and queued it again."""


@dataclass
class Outcome:
    """How one trial ended, as this worker saw it. ``state``: COMPLETE, PRUNED, FAIL or
    TAKEN_OVER (another worker owns its record now)."""

    number: int
    state: str
    value: float | None
    seconds: float
    epochs: int
    reason: str | None = None


class TrialRunner:
    """Runs asked trials of one study (``runner(study, trial) -> Outcome``)."""

    def __init__(
        self,
        objective: Objective,
        data,
        *,
        settings: RunSettings,
        device: torch.device,
        tracker=None,
        say: Callable[[str], None] = print,
        writer: RecordWriter | None = None,
        on_recorded: Callable[[Outcome], None] | None = None,
    ):
        self.objective = objective
        self.data = data
        self.settings = settings
        self.device = device
        self.tracker = tracker
        self.say = say
        self.warned: set[str] = set()  # kinds of failed records already said once
        self.writer, self.on_recorded = writer, on_recorded

    def __call__(self, study: optuna.Study, trial: optuna.Trial, ask_seconds: float = 0.0):
        """Run an asked trial; its ``Outcome``, or None where ``writer`` writes its records
        while the caller goes on (``on_recorded`` gets the outcome then)."""
        start = time.perf_counter()
        beat = Heartbeat(study, trial, self.say, self.settings.grace).__enter__()
        try:
            life = _Life(self, study, trial, beat)
            life.breakdown.add("ask", ask_seconds)
            life.attempt()
            if self.writer is not None and life.deferrable:
                try:  # waits for the last trial's records first
                    self.writer.submit(lambda: self._record(life, start))
                except KeyboardInterrupt:
                    life.record()  # it trained to its end: recorded before Ctrl-C goes on
                    raise
                except DiskFullError as e:  # the last trial's records met a full disk
                    life.leave_for_retry(e)
                    raise
                beat = None  # beats on until the trial is told
                return None
            life.record()
        finally:
            if beat is not None:  # not handed to the writer
                if self.writer is not None:  # (if it failed before its parameters were sampled)
                    self.writer.release()
                beat.__exit__(None, None, None)
        return life.outcome(start)

    def _record(self, life: _Life, start: float) -> None:
        try:
            life.record()
        finally:
            life.beat.__exit__(None, None, None)
        self.on_recorded(life.outcome(start))

    def trial_seed(self, trial, original: int) -> int:
        """The seed a trial trains with: its cell's, else ``--seed`` + its first number."""
        cell = trial.user_attrs.get(CELL_ATTR)
        return cell["seed"] if cell is not None else self.settings.seed + original


class _Life:
    """The state of one trial while it runs; ``run()`` always ends in a recorded state."""

    def __init__(self, runner: TrialRunner, study, trial, beat: Heartbeat):
        self.runner, self.study, self.trial, self.beat = runner, study, trial, beat
        self.mlflow_run = None
        self.reporter: TrialReporter | None = None
        self.state, self.value, self.reason = "FAIL", None, None
        self.error: BaseException | None = None
        self.spec, self.meter, self.over_budget = None, None, False
        self.breakdown = Breakdown()
        self.guarded = -GUARD_EVERY  # when guard() last read the trial (time.monotonic())

    @property
    def epochs(self) -> int:
        return self.reporter.epochs if self.reporter is not None else 0

    @property
    def deferrable(self) -> bool:
        """Records written while the next trial trains? Failures are recorded at once."""
        return self.state in ("COMPLETE", "PRUNED")

    def outcome(self, start: float) -> Outcome:
        return Outcome(
            self.trial.number, self.state, self.value, time.perf_counter() - start,
            self.epochs, self.reason,
        )  # fmt: skip

    def guard(self) -> None:
        """Raise ``TakenOver`` once the storage no longer holds this trial as RUNNING. Read
        only once this worker's heartbeats have not been on time (a takeover needs
        ``--heartbeat-grace`` seconds of silence), then at most every ``GUARD_EVERY``
        seconds; tell() checks again at the end."""
        if self.beat.stopped is not None:  # its heartbeat met a full disk
            raise self.beat.stopped
        if self.beat.on_time() or time.monotonic() - self.guarded < GUARD_EVERY:
            return
        if internals.current(self.study, self.trial).state != TrialState.RUNNING:
            raise TakenOver(f"taken over: no heartbeat for {self.beat.silence():.0f} s")
        self.guarded = time.monotonic()

    def run(self) -> None:
        """Train, then record: the trial ends in one recorded state."""
        self.attempt()
        self.record()

    def attempt(self) -> None:
        """Train; the outcome is kept for ``record()`` (an interrupted trial is recorded
        here, before the interrupt goes on)."""
        try:
            self.value = self.train()
            with self.breakdown("storage"):
                self.guard()
            self.state = "COMPLETE"
        except optuna.TrialPruned as e:
            self.state, self.reason = "PRUNED", str(e)
            self.value = self.reporter.last_value if self.reporter else None
            self.over_budget = isinstance(e, OverBudget)
        except (TakenOver, UpdateFinishedTrialError) as e:
            self.state = TAKEN_OVER
            self.reason = str(e) if isinstance(e, TakenOver) else self._taken_over_reason()
        except NonFiniteLossError as e:
            self.reason = str(e)
        except torch.cuda.OutOfMemoryError as e:
            batch = self.reporter.batch_size if self.reporter else None
            self.reason = (
                f"CUDA out of memory (batch size {batch}); the next trial goes on. "
                f"{str(e).splitlines()[0][:300]}"
            )
            self.error = e
        except OutageError as e:
            # The trial stays RUNNING in a storage that is away; the next run finds it silent
            # and retries it from its last snapshot. Its MLflow run is closed if that can be.
            if self.mlflow_run is not None and "tracking" not in e.server:
                self.mlflow_run.model = None
                self.runner.tracker.safely(self.mlflow_run.close, "FAIL", reason=str(e))
            raise
        except KeyboardInterrupt as e:
            self.reason = "interrupted (Ctrl-C or SIGTERM); re-running the study retries it"
            self.error = e
            self.record(interrupted=True)
            raise
        except Exception as e:  # noqa: BLE001 - recorded with its traceback; the study goes on
            if disk_full(e):  # not the trial's fault: the worker stops, the trial is retried
                full = as_disk_full(e)
                self.leave_for_retry(full)
                raise full from e
            self.reason, self.error = f"{type(e).__name__}: {e}", e

    def train(self) -> float:
        runner, trial, timed = self.runner, self.trial, self.breakdown
        with timed("storage"):
            trial.set_user_attr("worker", worker_name())
            # The images it saw (study.confirm retrains with the same by default).
            trial.set_user_attr(DATA_ATTR, runner.data.images())
            history = retry_history(internals.current(self.study, trial))
        original = history[0] if history else trial.number
        resume = None
        if runner.tracker is not None:
            with timed("tracking"):
                self.mlflow_run = runner.tracker.start_trial(trial, objective=runner.objective.name)
                self.mlflow_run.breakdown = timed
                resume = self._resume(history)
        writer = runner.writer
        self.reporter = TrialReporter(
            trial, self.mlflow_run, run_context(runner, trial, original), self.guard, timed,
            settle=writer.settle if writer is not None else (lambda: None),
        )  # fmt: skip
        if resume is not None:
            self.reporter.epochs = len(resume["history"])
        trial = TimedTrial(trial, timed)  # suggesting: ask; reporting, pruning: storage
        spec = trial_spec(trial, runner.objective, max_epochs=runner.settings.epochs)
        if writer is not None:  # sampled: the last trial's records may be written now
            with timed("wait"):
                writer.release()
        self.spec, self.meter = spec, CostMeter(runner.device)
        s = runner.settings
        known = self.meter.record(spec)
        over = budget_violation(known, s.max_params, s.max_latent)
        if over is not None:
            raise OverBudget(f"over budget, not trained: {over}")
        prune = not is_seed(trial) and CELL_ATTR not in trial.user_attrs
        if self.two_objectives and s.pruner == pareto.NAME and prune:
            self.reporter.judge = self._pareto_judge(spec, known)
        value = run_trial(
            trial,
            spec,
            train=runner.data.train,
            val=runner.data.val,
            device=runner.device,
            seed=runner.trial_seed(trial, original),
            reporter=self.reporter,
            resume=resume,
            compile=runner.settings.compile,
            # Seed systems, the baseline and experiment cells always run to the end.
            prune=prune,
            report=not self.two_objectives,
            # The latent scatter's codes, from the last validation pass.
            keep_codes=SCATTER_POINTS if self.mlflow_run is not None else 0,
        )
        cell = trial.user_attrs.get(CELL_ATTR)
        if cell is not None and cell.get("test"):  # study.confirm --test
            self.score_test(spec)
        return value

    def _pareto_judge(self, spec, known: dict):
        """The reporter's judge for a two-objective study: ``pareto.ParetoHalving`` on
        (the epoch's metric, the second objective: known before training, or its kl)."""
        which = self.runner.settings.pareto
        halving = pareto.ParetoHalving(
            self.study, self.trial, max_epochs=spec.train.epochs,
            directions=[self.runner.objective.direction, "minimize"],
        )  # fmt: skip

        def judge(result) -> str | None:
            second = result.val["kl"] if which == "kl" else known[which]
            return halving(result.epoch, (result.value, second))

        return judge

    def score_test(self, spec) -> None:
        """Score the trained model on the test split: trial attribute ``test`` and the
        MLflow metrics ``test_*``."""
        from models import evaluate, task_for

        runner = self.runner
        test = runner.data.test.to(runner.device)
        metrics = evaluate(self.reporter.model, task_for(spec.model), test, device=runner.device)
        self.trial.set_user_attr("test", metrics)
        if self.mlflow_run is not None:
            self.mlflow_run.extra_metrics = {f"test_{k}": v for k, v in metrics.items()}

    def _resume(self, history: list[int]) -> dict | None:
        """The last epoch snapshot of the attempt this trial retries, if it saved one."""
        if not history:
            return None
        previous = self.study.get_trials(deepcopy=False)[history[-1]]
        run_id = previous.user_attrs.get("mlflow_run_id")
        resume = self.runner.tracker.fetch_resume(run_id) if run_id else None
        if resume is not None:
            self.mlflow_run.restored(resume["history"], history[-1])
            # The snapshot is written before the epoch is reported to Optuna: an attempt
            # stopped in between left the report out. The retry's record is whole again.
            reported = internals.current(self.study, self.trial).intermediate_values
            for h in resume["history"] if not self.two_objectives else ():
                if h["phase"] == "train" and h["epoch"] not in reported:
                    self.trial.report(h["val"][h["metric"]], h["epoch"])
        return resume

    @property
    def two_objectives(self) -> bool:
        return self.runner.settings.pareto is not None

    def values(self):
        """What Optuna is told: the metric, and with ``--pareto`` the quantity beside it."""
        pareto = self.runner.settings.pareto
        if pareto is None:
            return self.value
        if pareto == "kl":
            return [self.value, self.reporter.last_val["kl"]]
        return [self.value, self.cost[pareto]]

    def costs(self) -> dict | None:
        """What the trial cost (None for a failed one); the MLflow run logs it too."""
        if self.spec is None or self.state not in ("COMPLETE", "PRUNED"):
            return None
        for seconds in self.reporter.seconds if self.reporter is not None else ():
            self.meter.epoch(seconds)
        cost = self.meter.record(self.spec)
        if self.mlflow_run is not None:
            self.mlflow_run.costs = cost
        return cost

    def record_costs(self, cost: dict | None) -> None:
        """The trial's costs and final validation metrics as its user attributes."""
        self.trial.set_user_attr(TIME_ATTR, self.breakdown.rounded())
        if cost is None:
            return
        if self.state == "COMPLETE" and self.reporter and self.reporter.last_val is not None:
            self.trial.set_user_attr("val", self.reporter.last_val)
        self.trial.set_user_attr(COST_ATTR, cost)
        if self.over_budget:
            self.trial.set_user_attr(OVER_BUDGET_ATTR, True)

    def secrets(self) -> set[str]:
        s = self.runner.settings
        return secrets_in(s.storage.url, s.tracking.url)

    def _taken_over_reason(self) -> str:
        return f"taken over: no heartbeat for {self.beat.silence():.0f} s"

    def leave_for_retry(self, full: DiskFullError) -> None:
        """A full disk stopped this trial: recorded (as far as the disks let it) as an
        interrupted failure that the next run retries; what cannot be written now is left
        RUNNING, and is retried once its heartbeat is ``--heartbeat-grace`` seconds old."""
        self.reason = f"stopped: {full}"
        if self.mlflow_run is not None:
            self.mlflow_run.model = None
            with contextlib.suppress(Exception):
                self.mlflow_run.close("FAIL", reason=self.reason)
        with contextlib.suppress(Exception):
            self.trial.set_user_attr("fail_reason", scrub(self.reason, self.secrets()))
            self.trial.set_user_attr("interrupted", True)
            self.study.tell(self.trial, None, state=TrialState.FAIL, skip_if_finished=True)
        self.state = TAKEN_OVER  # nothing more of it is this worker's to record

    def record(self, interrupted: bool = False) -> None:
        """Close the MLflow run, then tell Optuna; a trial is COMPLETE only once its run
        (checkpoint included) is written. A full disk meanwhile leaves it for a retry."""
        if self.state == TAKEN_OVER:
            self._record(interrupted)
            return
        try:
            self._record(interrupted)
        except Exception as e:
            if not disk_full(e):
                raise
            full = as_disk_full(e)
            self.leave_for_retry(full)
            raise full from e

    def _record(self, interrupted: bool) -> None:
        if self.state == TAKEN_OVER:  # its record is the other worker's now
            if self.mlflow_run is not None:
                self.runner.tracker.safely(self.mlflow_run.taken_over, self.reason)
                self.mlflow_run.model = None
            return
        self.cost = self.costs()
        problem = self._close_run()
        if problem is not None:
            if self.state == "COMPLETE":  # never COMPLETE without its checkpoint
                self.state, self.value = "FAIL", None
            self.reason = "; ".join(r for r in (self.reason, problem) if r)
        try:
            self.record_costs(self.cost)
            if self.state == "FAIL":
                if self.reason:
                    self.trial.set_user_attr("fail_reason", scrub(self.reason, self.secrets()))
                if interrupted:
                    self.trial.set_user_attr("interrupted", True)
            told = self.study.tell(
                self.trial,
                self.values() if self.state == "COMPLETE" else None,
                state=STATES[self.state],
                skip_if_finished=True,
            )
            taken = told.state != STATES[self.state]
        except UpdateFinishedTrialError:
            taken = True
        if taken:  # failed by another worker in the last moment
            self.state, self.reason = TAKEN_OVER, self._taken_over_reason()
            if self.mlflow_run is not None:
                self.runner.tracker.safely(self.mlflow_run.taken_over, self.reason)
        if isinstance(self.error, torch.cuda.OutOfMemoryError):
            # Drop every reference to the failed model before handing memory back.
            self.error = None
            gc.collect()
            torch.cuda.empty_cache()

    def _close_run(self) -> str | None:
        """Close the MLflow run with the status of the outcome; what went wrong, or None.

        If the run cannot be closed as it should (a checkpoint that cannot be written), it
        is closed as FAILED with the reason, so no run is left RUNNING where the store works.
        """
        if self.mlflow_run is None:
            return None
        tracker = self.runner.tracker
        problem = tracker.safely(
            self.mlflow_run.close, self.state, value=self.value, reason=self.reason,
            error=self.error,
        )  # fmt: skip
        if problem is not None:
            reason = "; ".join(r for r in (self.reason, problem) if r)
            tracker.safely(self.mlflow_run.close, "FAIL", reason=reason, error=self.error)
        self.mlflow_run.model = None
        for tag, (what, text) in self.mlflow_run.problems.items():
            if tag not in self.runner.warned:  # said once; every such run has the tag
                self.runner.warned.add(tag)
                self.runner.say(
                    f"note: trial {self.trial.number}'s {what} could not be written ({text}); "
                    f"the study goes on, and each trial this happens to has the run tag {tag}"
                )
        return None if problem is None else f"its MLflow records could not be written ({problem})"
