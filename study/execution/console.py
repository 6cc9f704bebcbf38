"""What ``study.run`` prints: the header, a progress bar with one line per trial, the summary
and the commands to go on with."""

from __future__ import annotations

import math
import sys

from optuna.trial import TrialState

from study.execution.scheduler import Progress
from study.stores.locations import DEFAULT_STORAGE, DEFAULT_TRACKING


def header(session, data, device) -> list[str]:
    s, objective = session.settings, session.objective
    lines = [
        f"Study {s.name!r}: {objective.description}, on {s.dataset} ({len(data.train)} train / "
        f"{len(data.val)} validation images from {data.source}), device {device}",
        f"  storage {s.storage.redacted}, tracking {s.tracking.redacted}",
    ]
    if session.existing:
        failed = session.before.get(TrialState.FAIL, 0)
        lines.append(
            f"  resuming: {session.finished_before} of {s.trials} trials already finished"
            + (f" ({failed} failed ones do not count)" if failed else "")
        )
    if s.enqueue_configs:
        lines.append(f"  configs enqueued: {session.configs} of {len(s.enqueue_configs)}")
    if session.warm is not None:
        copied, outside = session.warm
        lines.append(
            f"  warm start: {copied} finished trials copied from {s.warm_start!r}"
            + (f" ({outside} outside this search space left out)" if outside else "")
            + "; they inform the sampler and do not count towards --trials"
        )
    if s.enqueue_seeds:
        lines.append(
            f"  seed systems: {session.enqueued} enqueued "
            f"({len(s.enqueue_seeds) - session.enqueued} already there)"
        )
    if session.baseline:
        lines.append(
            f"  baseline: the {s.objective} objective's textbook configuration is enqueued "
            "(objectives/baselines.py; --no-baseline leaves it out)"
        )
    return lines


def value_text(metric: str, value: float | None) -> str:
    return f"{metric}={value:.4f}" if value is not None else f"{metric}=-"


def outcome_line(outcome, metric: str, best) -> str:
    best_text = (
        f"best {metric}={best.values[0]:.4f} (trial {best.number})"
        if best is not None
        else "best -"
    )
    if outcome.state == "PRUNED" and (outcome.reason or "").startswith("over budget"):
        return f"trial {outcome.number:>4}  OVER BUDGET  {outcome.reason.split(': ', 1)[1]}"
    if outcome.state == "TAKEN_OVER":
        return (
            f"trial {outcome.number:>4}  {outcome.reason}; another worker failed it and "
            "queued it again, so this worker leaves it and goes on"
        )
    return (
        f"trial {outcome.number:>4}  {outcome.state:<8}  {value_text(metric, outcome.value):<14}  "
        f"{best_text}  {outcome.epochs} epochs, {outcome.seconds:.1f}s"
    )


class ConsoleProgress(Progress):
    """A tqdm bar over finished trials (on a terminal) and one line per trial."""

    def __init__(self, settings, metric: str, finished_before: int):
        from tqdm import tqdm

        self.metric = metric
        self.bar = tqdm(
            total=settings.trials,
            initial=finished_before,
            unit="trial",
            dynamic_ncols=True,
            file=sys.stderr,
            desc=settings.name,
            disable=True if settings.is_worker else None,  # no bar when not a terminal
        )

    def say(self, line: str) -> None:
        self.bar.write(line, file=sys.stdout)

    def finished(self, n: int, queued: list[int]) -> None:
        if queued:
            self.say(f"queued again (their process stopped or was interrupted): trials {queued}")
        self.bar.n = n
        self.bar.refresh()

    def trial(self, outcome, best) -> None:
        self.say(outcome_line(outcome, self.metric, best))

    def close(self) -> None:
        self.bar.close()


def summary_lines(name: str, summary: dict, seconds: float, best, metric: str) -> list[str]:
    lines = [
        f"Study {name!r}: {summary['finished']} finished trials ({summary['complete']} "
        f"complete, {summary['pruned']} pruned), {summary['failed']} failed, "
        f"{seconds:.1f}s this session."
    ]
    if best is not None:
        lines.append(f"Best trial {best.number}: {metric} = {best.values[0]:.4f}")
        for k, v in best.params.items():
            number = isinstance(v, float) and not math.isnan(v)
            lines.append(f"  {k} = {v:.4g}" if number else f"  {k} = {v}")
    return lines


def commands(settings, experiment_id: str | None, encoder_run: str | None) -> list[str]:
    """How to browse, export and encode what this study made."""
    extra = ""
    if settings.storage.url != DEFAULT_STORAGE:
        extra += f" --storage {settings.storage.redacted}"
    if settings.tracking.url != DEFAULT_TRACKING:
        extra += f" --tracking-uri {settings.tracking.redacted}"
    out = []
    tracking = settings.tracking
    if tracking.kind == "sqlite":
        out.append(f"Browse:  mlflow ui --backend-store-uri {tracking.url}")
        if experiment_id is not None:
            out.append(
                "         then open http://127.0.0.1:5000/#/experiments/"
                f"{experiment_id}/runs?workflowType=machine_learning"
            )
    elif tracking.kind == "http":
        out.append(
            f"Browse:  {tracking.redacted}/#/experiments/{experiment_id}"
            "/runs?workflowType=machine_learning"
        )
    out.append(
        f"Export:  python -m study.export --study-name {settings.name}{extra} --out best.yaml"
    )
    if encoder_run is not None:
        where = "" if tracking.url == DEFAULT_TRACKING else f" --tracking-uri {tracking.redacted}"
        out.append(f"Encode:  python -m study.encode --run {encoder_run}{where} --out latents.npz")
    return out
