"""Where a tracked study's fixed cost goes, call by call: the default study's first
``--trials`` trials in this process (SQLite stores, ``--no-report``), with the tracking calls
timed. Per call: the first (which pays the session's imports: Matplotlib, MLflow's PyTorch
flavour, optuna-dashboard) and the median of the rest.

    python -m bench.calls --trials 20
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import shutil
import statistics
import tempfile
import time

TIMED = {  # (module, owner, attribute): label
    ("study.tracking.pictures", None, "latent_scatter"): "latent scatter (pictures)",
    ("study.tracking.pictures", None, "project_2d"): "latent scatter: PCA",
    ("study.tracking.pictures", None, "scatter_png"): "latent scatter: drawing the PNG",
    ("study.tracking.pictures", None, "reconstruction_grid"): "reconstruction grid (pictures)",
    ("study.tracking.optuna_artifacts", "DashboardRecords", "picture"): "optuna-dashboard picture",
    ("study.tracking.optuna_artifacts", "DashboardRecords", "note"): "optuna-dashboard note",
    ("study.tracking.runs", "TrialRun", "_logged_model"): "logged model (COMPLETE only)",
    ("study.tracking.runs", "TrialRun", "_checkpoint"): "checkpoint (COMPLETE only)",
    ("study.tracking.runs", "TrialRun", "epoch"): "an epoch's metrics and resume snapshot",
    ("study.tracking.runs", "TrialRun", "start"): "the run's params (and the note)",
    ("study.tracking.runs", "StudyTracker", "start_trial"): "creating the trial's run",
    ("study.tracking.runs", "TrialRun", "close"): "closing the run (all records)",
    (
        "study.execution.trial",
        "_Life",
        "record",
    ): "recording a finished trial (closing the run, tell)",
    (
        "study.execution.trial",
        "_Life",
        "guard",
    ): "the takeover check (re-reading the running trial)",
    ("optuna.study.study", "Study", "tell"): "Optuna's tell",
}


def timed(times: dict[str, list[float]], label: str, call):
    @functools.wraps(call)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            times[label].append(time.perf_counter() - start)

    return wrapper


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.calls", description=__doc__)
    p.add_argument("--trials", type=int, default=20)
    args = p.parse_args(argv)
    import importlib

    from study import run

    times: dict[str, list[float]] = collections.defaultdict(list)
    originals = []
    for (module, owner, name), label in TIMED.items():
        target = importlib.import_module(module)
        target = getattr(target, owner) if owner else target
        originals.append((target, name, getattr(target, name)))
        setattr(target, name, timed(times, label, getattr(target, name)))
    work, cwd = tempfile.mkdtemp(prefix="bench-calls-"), os.getcwd()
    try:
        os.chdir(work)
        stores = ["--storage", "sqlite:///optuna.db", "--tracking-uri", "sqlite:///mlflow.db"]
        if run.main(["--trials", str(args.trials), "--no-report", *stores]) != 0:
            raise SystemExit("study.run failed")
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)
        for target, name, call in originals:
            setattr(target, name, call)
    print("\n| call | calls | first (ms) | median of the rest (ms) | total (s) |")
    print("|---|---|---|---|---|")
    for label, seconds in sorted(times.items(), key=lambda kv: -sum(kv[1])):
        rest = statistics.median(seconds[1:]) * 1000 if len(seconds) > 1 else float("nan")
        print(
            f"| {label} | {len(seconds)} | {seconds[0] * 1000:.0f} | {rest:.1f} "
            f"| {sum(seconds):.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
