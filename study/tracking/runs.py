"""MLflow tracking: one experiment and parent run per study, one nested run per trial.

Everything goes through ``MlflowClient`` with explicit run ids (no fluent global state), and
the epochs a trial's run has not written yet go in one ``log_batch`` call: on SQLite a
synchronous call costs a few milliseconds, whatever it carries.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from models import EpochResult, Split
from objectives import CELL_ATTR, TrialSpec
from study.artifacts import checkpoint
from study.stores import disk
from study.stores.disk import DiskFullError, as_disk_full, disk_full
from study.stores.locations import TrackingURL, tracking_client
from study.stores.outage import OutageError
from study.stores.resilient import ResilientClient
from study.stores.secrets import scrub, secrets_in
from study.tracking import pictures, records
from study.tracking.optuna_artifacts import DashboardRecords, artifact_store
from study.tracking.records import (
    as_metrics,
    as_params,
    as_tags,
    context_tags,
    data_inputs,
    epoch_metrics,
)
from study.tracking.timing import Breakdown

STATUS_OF_STATE = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
RESUME_DIR = "resume"
RESUME_NAME = "state.pt"
PARENT_ATTR = "mlflow_parent_run_id"
EXPERIMENT_ATTR = "mlflow_experiment"  # a study that logs to another study's experiment


def experiment_id(client, name: str, tracking: TrackingURL) -> str:
    """The experiment called ``name`` (restored if deleted), created when missing."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=tracking.artifact_location(name))


class StudyTracker:
    """The study's experiment and parent run in one tracking store.

    ``data`` (a ``study.data.Dataset`` with the splits trials see) is recorded as the study
    run's and each trial's inputs; its validation images feed each trial's pictures.
    """

    def __init__(
        self,
        tracking: TrackingURL,
        study,
        *,
        settings: dict[str, Any],
        data,
        secrets=frozenset(),
        outage=None,
        storage=None,
        snapshot_every: float = 0.0,
    ):
        self.tracking = tracking
        self.snapshot_every = snapshot_every  # see TrialRun
        self.secrets = set(secrets)  # scrubbed from every reason and traceback written
        self.client = tracking_client(tracking)
        if outage is not None:  # every call retried while the server is away
            self.client = ResilientClient(self.client, outage)
        self.context_tags = context_tags()
        self.study_name = study.study_name
        self.data = data
        # An experiment's studies (study.ablate, study.confirm) log to the study's experiment.
        experiment = study.user_attrs.get(EXPERIMENT_ATTR, study.study_name)
        self.experiment_id = experiment_id(self.client, experiment, tracking)
        self.parent_run_id = self._parent(study, settings)
        # Under the study lock: workers starting at once link to these rows, not race for them.
        self.inputs = data_inputs(data, {"train": len(data.train), "val": len(data.val)})
        records.log_inputs(self.client, self.parent_run_id, self.inputs)
        self.dashboard = None  # pictures and notes for optuna-dashboard, beside the storage
        if storage is not None:
            store = artifact_store(storage, tracking, self.client, self.parent_run_id)
            self.dashboard = DashboardRecords(store, tracking, self.experiment_id)

    def _parent(self, study, settings: dict[str, Any]) -> str:
        run_id = study.user_attrs.get(PARENT_ATTR)
        if run_id:
            try:
                run = self.client.get_run(run_id)
                if run.info.experiment_id == self.experiment_id:
                    self.client.update_run(run_id, status="RUNNING")
                    self._tag_settings(run_id, settings)
                    return run_id
            except Exception:  # noqa: BLE001 - the id belongs to another tracking store
                pass
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.study_name,
            tags={**self.context_tags, "optuna.study": self.study_name, "kind": "study"},
        )
        run_id = run.info.run_id
        self._tag_settings(run_id, settings)
        study.set_user_attr(PARENT_ATTR, run_id)
        return run_id

    def _tag_settings(self, run_id: str, settings: dict[str, Any]) -> None:
        # Tags, not params: a resumed study may run with other settings and params are
        # write-once in MLflow.
        tags = {f"setting.{k}": v for k, v in settings.items()}
        self.client.log_batch(run_id, tags=as_tags(tags))

    def start_trial(self, trial, *, objective: str) -> TrialRun:
        tags = {
            **self.context_tags, "mlflow.parentRunId": self.parent_run_id,
            "optuna.study": self.study_name, "optuna.trial_number": str(trial.number),
            "optuna.state": "RUNNING", "objective": objective,
        }  # fmt: skip
        cell = trial.user_attrs.get(CELL_ATTR)
        name = cell["name"] if cell is not None else f"trial-{trial.number}"
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        records.log_inputs(self.client, run.info.run_id, self.inputs)
        return TrialRun(
            self.client, run.info.run_id, records.artifact_repo(self.client, run.info.artifact_uri),
            dataset=self.data.name, val=self.data.val,
            secrets=self.secrets, experiment_id=self.experiment_id, dashboard=self.dashboard,
            snapshot_every=self.snapshot_every,
        )  # fmt: skip

    @staticmethod
    def safely(call, *args, **kwargs) -> str | None:
        """Run a tracking call; what went wrong as one line (credentials scrubbed), or None.
        An outage past ``--outage-wait`` or a full disk is not a failed write: it stops the
        worker."""
        try:
            call(*args, **kwargs)
        except (OutageError, DiskFullError):
            raise
        except Exception as e:  # noqa: BLE001 - any failure of the store or a picture
            if disk_full(e):  # not a failed write: it stops the worker
                raise as_disk_full(e) from e
            line = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
            return scrub(line, secrets_in())
        return None

    def fetch_resume(self, run_id: str) -> dict | None:
        """The last epoch snapshot an earlier attempt saved in run ``run_id``, if any."""
        import torch

        try:
            with tempfile.TemporaryDirectory(prefix="resume-") as tmp:
                local = self.client.download_artifacts(run_id, f"{RESUME_DIR}/{RESUME_NAME}", tmp)
                return torch.load(local, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - no snapshot (died before its first epoch ended)
            return None

    def mirror(self, study) -> int:
        """Close runs left RUNNING by a process that died, with the status of their trial.

        A run whose trial never recorded it (the storage went away between creating the run
        and linking it to the trial) is closed as FAILED once that trial has ended.
        Returns how many runs were closed.
        """
        trials = study.get_trials(deepcopy=False)
        linked = {t.user_attrs.get("mlflow_run_id"): t for t in trials if t.state.is_finished()}
        by_number = {t.number: t for t in trials}
        closed = 0
        running = self.client.search_runs(
            [self.experiment_id], "attributes.status = 'RUNNING'", max_results=5000
        )
        for run in running:
            if run.info.run_id == self.parent_run_id:
                continue
            trial = linked.get(run.info.run_id)
            if trial is not None:
                state = trial.state.name
                reason = trial.user_attrs.get("fail_reason") or (
                    "the process running this trial stopped (no heartbeat); its parameters "
                    "were queued again"
                )
            else:
                trial = self._unlinked_trial(run, by_number)
                if trial is None:
                    continue
                state = "FAIL"
                reason = (
                    f"trial {trial.number} never recorded this run (its storage was "
                    f"unreachable as the run started); the trial ended {trial.state.name}"
                )
            tags = {"optuna.state": state}
            if state == "FAIL":
                tags["fail_reason"] = reason
            self.client.log_batch(run.info.run_id, tags=as_tags(tags))
            self.client.set_terminated(run.info.run_id, STATUS_OF_STATE[state])
            closed += 1
        return closed

    def _unlinked_trial(self, run, by_number: dict):
        """The ended trial of this study that a RUNNING run was started for (a run that
        trial names as its own was matched before); else None."""
        tags = run.data.tags
        number = tags.get("optuna.trial_number", "")
        if tags.get("optuna.study") != self.study_name or not number.isdigit():
            return None
        trial = by_number.get(int(number))
        return trial if trial is not None and trial.state.is_finished() else None

    def finish(self, summary: dict[str, Any]) -> None:
        tags = {f"summary.{k}": v for k, v in summary.items()}
        self.client.log_batch(self.parent_run_id, tags=as_tags(tags))
        self.client.set_terminated(self.parent_run_id, "FINISHED")

    def interrupted(self) -> None:
        self.client.set_terminated(self.parent_run_id, "KILLED")


class TrialRun:
    """One trial's nested MLflow run. While it trains, its epochs' metrics and the resume
    snapshot are written together after an epoch ending ``snapshot_every`` seconds or more
    after the last such write (0: every epoch), the rest when it is closed: a trial of a few
    seconds writes its curves once, and a worker killed mid-trial loses at most that much
    training and curve (the retry resumes from the snapshot, copying the curve up to it)."""

    def __init__(
        self,
        client,
        run_id: str,
        artifacts,
        *,
        dataset: str,
        val: Split,
        secrets=(),
        experiment_id: str | None = None,
        dashboard=None,
        snapshot_every: float = 0.0,
    ):
        self.client, self.artifacts = client, artifacts  # artifacts: records.artifact_repo
        self.snapshot_every = snapshot_every
        self.pending: list = []  # epoch metrics not written yet
        self.written = time.monotonic()  # the last write of epochs (or the run's creation)
        self.experiment_id = experiment_id
        self.dashboard = dashboard
        self.trial = None
        self.costs: dict | None = None  # set before close: logged as cost_* metrics
        self.extra_metrics: dict[str, float] = {}  # set before close (e.g. test scores)
        self.secrets = set(secrets)
        self.run_id = run_id
        self.dataset = dataset
        self.val = val
        self.spec: TrialSpec | None = None
        self.model, self.codes = None, None  # trained model, last validation pass's codes
        self.closed = False
        self.breakdown: Breakdown | None = None  # the trial's; close() logs it as time_*
        self.problems: dict[str, tuple[str, str]] = {}  # tag: (what failed, why); not fatal

    def start(self, spec: TrialSpec, context: dict[str, Any], trial=None) -> None:
        """Log every setting of the spec, the run's context and, under Optuna's own names,
        the trial's sampled parameters and number as params (the number also as a metric,
        an axis for the MLflow UI's charts)."""
        self.spec = spec
        params = {**spec.flat_params(), **context}
        metrics = {}
        if trial is not None:
            self.trial = trial
            params.update({**trial.params, "trial_number": trial.number})
            metrics["trial_number"] = trial.number
            if self.dashboard is not None:
                self.dashboard.note(trial, self.run_id)
        self.client.log_batch(self.run_id, params=as_params(params), metrics=as_metrics(metrics, 0))

    def epoch(self, result: EpochResult) -> None:
        self.model, self.codes = result.model, result.codes
        self.pending += as_metrics(epoch_metrics(result), result.epoch)  # stamped now
        if time.monotonic() - self.written >= self.snapshot_every:
            self.write_epochs(result)

    def write_epochs(self, result: EpochResult) -> None:
        """The epochs not written yet in one synchronous batch (MLflow's async mode was
        measured slower: ending a run then waits ~0.7 s for its logging queue to shut
        down), then ``result``'s resume snapshot."""
        metrics, self.pending = self.pending, []
        self.client.log_batch(self.run_id, metrics=metrics)
        if result.snapshot is not None:
            # Overwritten each time: a retried trial continues from the last one.

            with tempfile.TemporaryDirectory(prefix="resume-") as tmp:
                path = Path(tmp) / RESUME_NAME
                disk.torch_save(result.snapshot(), path)
                self.artifacts.log_artifact(str(path), RESUME_DIR)
        self.written = time.monotonic()

    def restored(self, history: list[dict], from_trial: int) -> None:
        """Copy the epochs an earlier attempt finished, so this run's curves are whole."""
        metrics = []
        for h in history:
            metrics += as_metrics(epoch_metrics(EpochResult(**h)), h["epoch"])
        last = history[-1]
        tags = {
            "resumed_from_trial": from_trial,
            "resumed_after": f"{last['phase']} epoch {last['epoch']}",
        }
        self.client.log_batch(self.run_id, metrics=metrics, tags=as_tags(tags))

    def _checkpoint(self, tmp: Path) -> None:
        if self.model is None or self.spec is None:
            raise RuntimeError("no trained model to save as the checkpoint")
        path = checkpoint.save(self.model, self.spec, tmp / checkpoint.CHECKPOINT_NAME)
        self.artifacts.log_artifact(str(path), checkpoint.CHECKPOINT_DIR)

    def _logged_model(self) -> None:
        from study.tracking.registry import log_trial_model

        if self.experiment_id is None or self.model is None:
            return
        example = self.val.images[:2].float().div(255)
        log_trial_model(
            self.client, self.experiment_id, self.run_id, self.model, self.spec, example
        )

    def _pictures(self, tmp: Path) -> None:
        model, spec = self.model, self.spec
        if model is None or spec is None:
            return
        autoencoder = getattr(model, "autoencoder", model)
        if spec.objective != "classifier" or spec.model.freeze != "scratch":
            # A scratch classifier never trains its decoder: its reconstructions mean nothing.
            pictures.reconstruction_grid(autoencoder, self.val.images, tmp / "reconstructions.png")
        pictures.latent_scatter(
            model,
            self.val.images,
            self.val.labels,
            tmp / "latent.png",
            dataset=self.dataset,
            title=f"{self.dataset} validation",
            codes=self.codes,
        )
        for name in ("reconstructions.png", "latent.png"):
            if (tmp / name).exists():
                self.artifacts.log_artifact(str(tmp / name), "pictures")
                if self.dashboard is not None and self.trial is not None:
                    self.dashboard.picture(self.trial, tmp / name)

    def close(
        self,
        state: str,
        *,
        value: float | None = None,
        reason: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Log artifacts for the outcome and end the run with the status mirroring ``state``.

        A COMPLETE trial's checkpoint goes first: if it cannot be written this raises before
        the run is marked FINISHED. Pictures that fail are noted, not fatal.
        """
        if self.closed:
            return
        started = time.perf_counter()
        breakdown = self.breakdown or Breakdown()
        tags = {"optuna.state": state}
        if reason:
            tags["fail_reason" if state == "FAIL" else "prune_reason"] = scrub(reason, self.secrets)
        metrics = {"objective_value": value} if value is not None else {}
        for key, cost in (self.costs or {}).items():
            if isinstance(cost, (int, float)):
                metrics[f"cost_{key}"] = cost
        metrics.update(self.extra_metrics)
        with tempfile.TemporaryDirectory(prefix="trial-") as tmp:
            tmp_path = Path(tmp)
            if state == "COMPLETE":
                self._checkpoint(tmp_path)
                problem = StudyTracker.safely(self._logged_model)
                if problem:
                    tags["model_error"] = problem
                    self.problems["model_error"] = ("logged model", problem)
            if state in ("COMPLETE", "PRUNED"):
                with breakdown("pictures"):
                    problem = StudyTracker.safely(self._pictures, tmp_path)
                if problem:
                    tags["pictures_error"] = problem
                    self.problems["pictures_error"] = ("pictures", problem)
            if error is not None:
                text = "".join(traceback.format_exception(error))
                (tmp_path / "traceback.txt").write_text(scrub(text, self.secrets))
                self.artifacts.log_artifact(str(tmp_path / "traceback.txt"))
        breakdown.add("records", time.perf_counter() - started)
        metrics.update(breakdown.metrics())
        batch, self.pending = self.pending + as_metrics(metrics, 0), []
        self.client.log_batch(self.run_id, metrics=batch, tags=as_tags(tags))
        self.client.set_terminated(self.run_id, STATUS_OF_STATE[state])
        self.closed = True

    def taken_over(self, reason: str) -> None:
        """Another worker owns this trial's record: this run ends FAILED, saying why. The
        ``taken_over`` tag is this worker's alone; ``fail_reason`` may also be written by
        the worker that took over (the trial's own reason, ``no heartbeat from ...``)."""
        reason = scrub(reason, self.secrets)
        tags = {"optuna.state": "FAIL", "fail_reason": reason, "taken_over": reason}
        metrics, self.pending = self.pending, []
        self.client.log_batch(self.run_id, metrics=metrics, tags=as_tags(tags))
        self.client.set_terminated(self.run_id, "FAILED")
        self.closed = True
