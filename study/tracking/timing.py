"""Where a trial's time goes: seconds per activity, kept on the trial (user attribute
``time``), logged to its MLflow run (``time_<activity>_s``) and summed in the report.

On the training path: ``ask`` (waiting for the study lock, then the sampler: drawing each
parameter, which also writes it), ``train``, ``eval`` (the validation pass of every epoch),
``storage`` (Optuna calls while the trial runs: reports, pruning, attributes; not the final
tell, which comes after), ``tracking`` (MLflow writes while it trains: the run, its params,
the epochs' metrics with each resume snapshot, every ``--snapshot-every`` seconds) and
``wait`` (at its first epoch, for the last trial's records to be written).
Off it: ``records``, the finished trial's checkpoint, logged model and pictures, written
while the worker's next trial trains; ``pictures`` is the part of ``records`` spent
drawing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

TIME_ATTR = "time"
ACTIVITIES = ("ask", "train", "eval", "storage", "tracking", "wait", "records", "pictures")
OFF_THE_PATH = ("records", "pictures")


class Breakdown:
    """Seconds per activity for one trial; ``with breakdown("storage"): ...`` adds to one."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(ACTIVITIES, 0.0)

    @contextmanager
    def __call__(self, activity: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[activity] += time.perf_counter() - start

    def add(self, activity: str, seconds: float) -> None:
        self.seconds[activity] += seconds

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.seconds.items()}

    def metrics(self) -> dict[str, float]:
        """As MLflow metric names."""
        return {f"time_{k}_s": v for k, v in self.seconds.items()}


class TimedTrial:
    """An ``optuna.Trial`` whose method calls are timed: ``suggest_*`` as ``ask`` (the sampler
    draws each parameter there, TPE's relative sample at the first; writing the parameter is
    ~20% of it), every other call (reporting, pruning, attributes) as ``storage``."""

    def __init__(self, trial, breakdown: Breakdown):
        self._trial, self._breakdown = trial, breakdown

    def __getattr__(self, name: str):
        attr = getattr(self._trial, name)
        if not callable(attr):
            return attr

        activity = "ask" if name.startswith("suggest") else "storage"

        def timed(*args, **kwargs):
            with self._breakdown(activity):
                return attr(*args, **kwargs)

        return timed


def totals(trials) -> dict[str, float]:
    """Seconds per activity summed over ``trials`` (those that recorded a breakdown)."""
    out = dict.fromkeys(ACTIVITIES, 0.0)
    for t in trials:
        for k, v in (t.user_attrs.get(TIME_ATTR) or {}).items():
            if k in out and isinstance(v, (int, float)):
                out[k] += v
    return out


LABELS = {
    "ask": "waiting for the study lock, sampling",
    "train": "training",
    "eval": "validation passes",
    "storage": "Optuna storage calls while training",
    "tracking": "MLflow writes while training",
    "wait": "waiting for the last trial's records",
    "records": "finished trials' records (beside the next trial)",
    "pictures": "of which pictures",
}


def markdown(trials) -> list[str]:
    """The report's section: the study's seconds per activity."""
    timed = [t for t in trials if t.user_attrs.get(TIME_ATTR)]
    md = ["", "## Where the time went", ""]
    if not timed:
        return md + ["No trial recorded its time yet (trials from before this was measured)."]
    sums = totals(timed)
    path = sum(v for k, v in sums.items() if k not in OFF_THE_PATH)
    md += [
        f"Seconds summed over {len(timed)} trials. The first six are on the training path; "
        "a finished trial's records are written while the worker's next trial trains.",
        "",
        "| activity | seconds | share of the training path |",
        "|---|---|---|",
    ]
    for key, label in LABELS.items():
        share = (
            f"{100 * sums[key] / path:.1f}%" if key not in ("records", "pictures") and path else "-"
        )
        md.append(f"| {label} | {sums[key]:.1f} | {share} |")
    return md
