"""The refit: the study's best model at full quality.

When a study is full (or its ``--timeout`` is reached), its best configuration is retrained
on all the training data (train + validation: 60,000 images), for twice its own epoch budget
(``--refit-epochs N`` to choose), from the study's ``--seed``; scored once on the test split; logged as an MLflow run of the
study (``refit-trial-N``, tag ``kind=refit``, under the parent run) with its curves,
checkpoint and test metrics; and registered as the study's ``@best`` model
(``tracking.registry``). With ``--refit-top K`` the K best configurations are refit on the
50,000 training images, the one with the best score on the 10,000 validation images is
picked (the held-out measure: never the test set), and only it is scored on the test split.

Once per study: the study's user attribute ``refit`` records what was refit and its test
score, and a lock of its own beside the study's (``StudyLock(purpose="refit")``) makes one
process refit while the others wait for it and then find it done. A process killed while it
refits releases the lock with its file or database session and records nothing, so the next
run refits (closing the killed refit's MLflow run first). A re-run refits again only when
its best configurations changed.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from study.execution.scheduler import Stop, StopKind
from study.search.results import maximizing, top_completed
from study.settings import REFIT_ATTR, REFIT_EPOCHS_FACTOR
from study.stores.locations import StudyLock

KIND_TAG = "kind"  # the refit's MLflow run: kind=refit
PROBE = 512  # the training images evaluated after each epoch, for the progress line only


@dataclass(frozen=True)
class Refit:
    """A finished refit: the trial whose configuration won, the candidates, how it was
    trained and picked, its test metrics and its MLflow run (None without tracking)."""

    trial: int
    candidates: list[int]
    seed: int
    epochs: int
    images: int
    metric: str
    test: dict[str, float]
    held_out: dict[str, float] | None  # validation metrics, with --refit-top K > 1
    run_id: str | None
    seconds: float

    def to_attr(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attr(cls, attr: dict[str, Any]) -> Refit:
        return cls(**{f.name: attr.get(f.name) for f in fields(cls)})

    @property
    def score(self) -> float:
        return self.test[self.metric]


def skipped(settings, study, stop: Stop) -> str | None:
    """Why this study gets no refit now (None: it does)."""
    from study.experiments.cells import is_experiment

    if not settings.refit or is_experiment(study):
        return "off"
    if stop.kind not in (StopKind.FULL, StopKind.TIMEOUT):
        return "the study did not finish"
    if settings.pareto:
        return "a --pareto study has no single best; export a trial of its front and retrain it"
    return None


def ensure(session, dataset, device, stop: Stop) -> tuple[Refit | None, bool]:
    """The study's refit, done now unless it was already done for the same candidates;
    (the refit or None, whether it was done just now)."""
    settings, study = session.settings, session.study
    reason = skipped(settings, study, stop)
    if reason is not None:
        if reason != "off":
            print(f"No refit: {reason}.")
        return None, False
    top = top_completed(study, settings.refit_top)
    if not top:
        return None, False
    lock = StudyLock(settings.storage, settings.name, purpose="refit")
    with lock(on_wait=lambda: print("Waiting for another process's refit of this study...")):
        done = study.user_attrs.get(REFIT_ATTR)
        if done is not None and done.get("candidates") == [t.number for t in top]:
            return Refit.from_attr(done), False
        if session.tracker is not None:
            close_abandoned(session.tracker)
        refit = run(session, top, dataset, device)
        study.set_user_attr(REFIT_ATTR, refit.to_attr())
    return refit, True


def close_abandoned(tracker) -> None:
    """Refit runs left RUNNING by a process that died refitting (none can be live: the
    refit lock is held) are closed as KILLED."""
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        f"tags.{KIND_TAG} = 'refit' and attributes.status = 'RUNNING'",
    )
    for r in runs:
        tracker.client.set_tag(r.info.run_id, "refit_error", "its process stopped mid-refit")
        tracker.client.set_terminated(r.info.run_id, "KILLED")


def run(session, top: list, dataset, device) -> Refit:
    """Refit ``top`` (one: on train + validation; more: on train, picked on validation),
    score the pick on the test split, log every refit to MLflow."""
    from models import evaluate, task_for
    from objectives import TrialSpec

    settings = session.settings
    whole = len(top) == 1
    train = full_training_set(dataset, settings.refit_limit, with_val=whole).to(device)
    val = None if whole else dataset.val.to(device)  # the held-out measure, with K > 1
    started = time.monotonic()
    fitted = []
    for trial in top:
        spec = TrialSpec.from_dict(trial.user_attrs["spec"])
        epochs = settings.refit_epochs or REFIT_EPOCHS_FACTOR * spec.train.epochs
        spec = replace(spec, train=replace(spec.train, epochs=epochs))
        model, history, run_id = refit_one(session, trial, spec, dataset, train, device)
        held = None if whole else evaluate(model, task_for(spec.model), val, device=device)
        fitted.append((trial, spec, model, run_id, held, history))
    task = task_for(fitted[0][1].model)
    if whole:
        pick = fitted[0]
    else:
        better = max if maximizing(session.study) else min
        pick = better(fitted, key=lambda f: f[4][task.metric])
    trial, spec, model, run_id, held, _ = pick
    test = evaluate(model, task_for(spec.model), dataset.test.to(device), device=device)
    refit = Refit(
        trial=trial.number, candidates=[t.number for t in top], seed=settings.seed,
        epochs=spec.train.epochs, images=len(train), metric=task_for(spec.model).metric,
        test=test, held_out=held, run_id=run_id, seconds=time.monotonic() - started,
    )  # fmt: skip
    if session.tracker is not None and run_id is not None:
        finish_run(session.tracker, refit, fitted)
    return refit


def full_training_set(dataset, limit: int, *, with_val: bool):
    """The refit's images: the 50,000 training images, and the 10,000 validation images
    after them when ``with_val``; the first ``limit`` of those (0: all)."""
    import torch

    from models import Split

    if not with_val:
        return dataset.train.head(limit or None)
    whole = Split(
        torch.cat([dataset.train.images, dataset.val.images]),
        torch.cat([dataset.train.labels, dataset.val.labels]),
    )
    return whole.head(limit or None)


def refit_one(session, trial, spec, dataset, train, device):
    """Train ``spec`` on ``train`` from the study's seed, its run opened in MLflow first
    (so that a process killed meanwhile leaves a RUNNING run to close); (model, history,
    run id or None)."""
    from models import fit

    settings, tracker = session.settings, session.tracker
    print(
        f"Refit of trial {trial.number}'s configuration on {len(train)} images, "
        f"{spec.train.epochs} epochs, seed {settings.seed}, on {device}"
    )
    run_id = open_run(tracker, trial, spec, dataset, len(train), settings.seed) if tracker else None

    def show(result) -> None:
        print(f"  refit {result.phase} epoch {result.epoch}: train loss "
              f"{result.train['loss']:.4f}, {result.seconds:.1f}s", flush=True)  # fmt: skip

    try:
        fitted = fit(
            spec.model, spec.train, train, train.head(PROBE), device=device,
            seed=settings.seed, on_epoch=show, compile=settings.compile,
        )  # fmt: skip
    except BaseException as e:
        if run_id is not None:
            tracker.client.set_tag(run_id, "refit_error", f"{type(e).__name__}: {e}"[:500])
            status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
            tracker.client.set_terminated(run_id, status)
        raise
    return fitted.model, fitted.history, run_id


def open_run(tracker, trial, spec, dataset, images: int, seed: int) -> str:
    from study.tracking.records import as_params, context_tags, data_inputs

    client = tracker.client
    run = client.create_run(
        tracker.experiment_id,
        run_name=f"refit-trial-{trial.number}",
        tags={
            **context_tags(),
            KIND_TAG: "refit",
            "refit": "true",
            "mlflow.parentRunId": tracker.parent_run_id,
            "optuna.trial_number": str(trial.number),
            "objective": spec.objective,
            "source_run_id": str(trial.user_attrs.get("mlflow_run_id")),
        },
    )
    rid = run.info.run_id
    params = {**spec.flat_params(), "images": images, "seed": seed, "trial_number": trial.number}
    client.log_batch(rid, params=as_params(params))
    n_train = min(images, len(dataset.train))
    seen = {"train": n_train, "val": images - n_train, "test": len(dataset.test)}
    client.log_inputs(rid, datasets=data_inputs(dataset, {k: v for k, v in seen.items() if v}))
    return rid


def finish_run(tracker, refit: Refit, fitted: list) -> None:
    """Each refit's curves and checkpoint; the pick's test metrics and held-out score; the
    runs closed FINISHED."""
    from study.artifacts.checkpoint import CHECKPOINT_DIR, CHECKPOINT_NAME, save
    from study.tracking.records import as_metrics

    client = tracker.client
    for trial, spec, model, run_id, held, history in fitted:
        log_curves(client, run_id, history)
        metrics = {}
        if held is not None:
            metrics.update({f"heldout_val_{k}": v for k, v in held.items()})
        if trial.number == refit.trial:
            metrics.update({f"test_{k}": v for k, v in refit.test.items()})
            client.set_tag(run_id, "refit_picked", "true")
        client.log_batch(run_id, metrics=as_metrics(metrics, 0))
        with tempfile.TemporaryDirectory() as tmp:
            save(model, spec, Path(tmp) / CHECKPOINT_NAME)
            client.log_artifact(run_id, str(Path(tmp) / CHECKPOINT_NAME), CHECKPOINT_DIR)
        client.set_terminated(run_id, "FINISHED")


def log_curves(client, run_id: str, history) -> None:
    """The refit's per-epoch training metrics (the probe's are for the progress line only)."""
    from study.tracking.records import as_metrics, epoch_metrics

    for result in history:
        kept = {k: v for k, v in epoch_metrics(result).items() if "val_" not in k}
        client.log_batch(run_id, metrics=as_metrics(kept, result.epoch))


def summary_line(refit: Refit, uri: str | None) -> str:
    where = f" -> {uri}" if uri else ""
    return (
        f"Refit of trial {refit.trial} on {refit.images} images ({refit.epochs} epochs, seed "
        f"{refit.seed}, {refit.seconds:.0f}s): test {refit.metric} = {refit.score:.4f}{where}"
    )


def failed(e: Exception, secrets: set[str]) -> int:
    """One line for a refit that failed (the trials are saved, a re-run refits); the exit
    code: 1, or for a full disk its own."""
    from study.stores.disk import EXIT_DISK_FULL, as_disk_full, disk_full
    from study.stores.secrets import scrub

    if disk_full(e):
        print(f"error: the refit stopped: {as_disk_full(e)}", file=sys.stderr)
        return EXIT_DISK_FULL
    line = scrub(" ".join(f"{type(e).__name__}: {e}".split())[:300], secrets)
    print(
        f"error: the refit failed ({line}); the study's trials are saved: re-run the same "
        "command to refit, or --no-refit",
        file=sys.stderr,
    )
    return 1
