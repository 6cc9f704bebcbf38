"""The least bookkeeping a trial can have: the Optuna and MLflow calls a short trial of
benchmark 2 makes, with no training, pictures, checkpoint or logged model around them.

Two variants alternate, each a fresh process over ``--trials`` trials with the same seeded
sampler, so both ask, sample and prune the same trials:
- *bare*: Optuna's in-memory storage, no MLflow (benchmark 2's "tracking off");
- *stores*: Optuna on SQLite as the harness opens it (WAL, Optuna's cache of finished
  trials; no heartbeats, ~1 ms a trial in a study), and for each trial an MLflow run on
  SQLite (the run with its tags, its dataset inputs, its params, one closing batch of
  metrics and tags, its end): as many of each as a pruned trial of the default study logs.

A trial here: ``ask``, 16 parameters, up to 3 epochs reported with a pruning check each, 6 user
attributes, ``tell``. What ``stores`` costs more per trial is the floor under benchmark 2's
"on the training path": what a tracked trial costs however its records are drawn or written.

    python -m bench.floor --reps 3 --trials 40
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from study.stores.locations import (
    open_storage,
    parse_storage,
    parse_tracking,
    tracking_client,
    use_fast_sqlite,
)
from study.tracking.records import data_inputs, log_inputs

PARAMS, TAGS, EPOCH_METRICS, CLOSING_METRICS = 45, 11, 8, 14  # a default study's pruned trial
WARMUP = 5  # trials run before the timed ones


def _sample(trial) -> None:
    for k in range(6):
        trial.suggest_int(f"width_{k}", 16, 1024, log=True)
    for k in range(5):
        trial.suggest_float(f"rate_{k}", 1e-5, 1e-1, log=True)
    for k in range(5):
        trial.suggest_categorical(f"choice_{k}", ["a", "b", "c"])


class _Runs:
    """One MLflow run per trial, written as the harness writes a short trial's."""

    def __init__(self, root: Path) -> None:
        class Data:  # what data_inputs reads of a loaded dataset
            name, digest, location, source = "fashion-mnist", "0" * 64, str(root), "bench"

        self.client = tracking_client(parse_tracking(f"sqlite:///{root}/mlflow.db"))
        self.experiment = self.client.create_experiment("floor", artifact_location=str(root))
        self.inputs = data_inputs(Data, {"train": 3840, "val": 2500})

    def open(self, number: int) -> str:
        from mlflow.entities import Metric, Param

        tags = {f"tag_{k}": "value" for k in range(TAGS)}
        run = self.client.create_run(self.experiment, run_name=f"trial-{number}", tags=tags)
        run_id = run.info.run_id
        log_inputs(self.client, run_id, self.inputs)
        params = [Param(f"param_{k}", str(k)) for k in range(PARAMS)]
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id, params=params, metrics=[Metric("trial_number", number, now, 0)]
        )
        return run_id

    def close(self, run_id: str, epochs: int) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [
            Metric(f"epoch_{k}", 0.5, now, e) for k in range(EPOCH_METRICS) for e in range(epochs)
        ]
        metrics += [Metric(f"closing_{k}", 1.0, now, 0) for k in range(CLOSING_METRICS)]
        self.client.log_batch(run_id, metrics=metrics, tags=[RunTag("optuna.state", "PRUNED")])
        self.client.set_terminated(run_id, "KILLED")


def child(variant: str, trials: int, root: Path) -> dict[str, float]:
    """Run ``WARMUP`` trials, then ``trials`` timed ones; seconds the timed ones spent: in
    all, asking and sampling, in MLflow's calls."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    use_fast_sqlite()
    url = "memory" if variant == "bare" else f"sqlite:///{root}/optuna.db"
    storage = open_storage(parse_storage(url))
    runs = _Runs(root) if variant == "stores" else None
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=10)
    study = optuna.create_study(
        storage=storage, sampler=sampler, pruner=optuna.pruners.MedianPruner()
    )
    mlflow_s = ask_s = start = 0.0
    for number in range(WARMUP + trials):
        if number == WARMUP:  # the first trials pay for first queries and imports
            mlflow_s = ask_s = 0.0
            start = time.perf_counter()
        t = time.perf_counter()
        trial = study.ask()
        _sample(trial)
        ask_s += time.perf_counter() - t
        if runs is not None:
            t = time.perf_counter()
            run_id = runs.open(number)
            mlflow_s += time.perf_counter() - t
        epochs, state = 0, optuna.trial.TrialState.COMPLETE
        for epoch in range(3):
            epochs += 1
            value = sum(trial.params[f"rate_{k}"] for k in range(5)) / (epoch + 1)
            trial.report(value, epoch)
            if trial.should_prune():
                state = optuna.trial.TrialState.PRUNED
                break
        for k in range(6):
            trial.set_user_attr(f"attr_{k}", {"seconds": 1.0, "k": k})
        if runs is not None:
            t = time.perf_counter()
            runs.close(run_id, epochs)
            mlflow_s += time.perf_counter() - t
        study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)
    return {"total": time.perf_counter() - start, "ask": ask_s, "mlflow": mlflow_s}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--child", choices=["bare", "stores"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
            print(json.dumps(child(args.child, args.trials, Path(tmp))))
        return 0
    seen: dict[str, list[dict[str, float]]] = {"bare": [], "stores": []}
    for rep in range(args.reps):
        for variant in seen:
            cmd = [sys.executable, "-m", "bench.floor", "--child", variant]
            cmd += ["--trials", str(args.trials)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            seen[variant].append(json.loads(out.stdout.splitlines()[-1]))
            print(f"rep {rep + 1} {variant}: {seen[variant][-1]['total']:.2f} s", flush=True)
    n = args.trials

    def ms(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in seen[variant]) / n * 1000

    def rest(variant: str) -> float:  # what benchmark 2 counts on the training path
        return statistics.median(r["total"] - r["ask"] for r in seen[variant]) / n * 1000

    print(f"\n{n} trials, median of {args.reps} alternating runs, ms per trial")
    print("| variant | in all | asking and sampling | the rest | of which MLflow |")
    print("|---|---|---|---|---|")
    print(
        f"| bare | {ms('bare', 'total'):.1f} | {ms('bare', 'ask'):.1f} | {rest('bare'):.1f} | - |"
    )
    print(
        f"| stores | {ms('stores', 'total'):.1f} | {ms('stores', 'ask'):.1f} | "
        f"{rest('stores'):.1f} | {ms('stores', 'mlflow'):.1f} |"
    )
    print(
        f"\nThe stores' floor on the training path: {rest('stores') - rest('bare'):.1f} ms a trial"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
