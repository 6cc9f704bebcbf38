"""Benchmarks 2-5: whole studies through the real CLI (``study.run``/``export``/``train``).

2. tracking overhead: full MLflow tracking + SQLite storage vs tracking off + in-memory storage;
   ``records``: a finished trial's records written inline against beside training;
   ``steady``: each trial's bookkeeping on the training path once a study runs
3. pruning: the default pruner vs none, same seeded study
4. the default study: ``--trials 100`` with defaults, then export + retrain + test
5. the budget of Optuna's PyTorch example (~97 s here): best test accuracy reached
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from objectives import BASELINE_ATTR
from study import export, run, train
from study.tracking.timing import ACTIVITIES, TIME_ATTR

ON_PATH = ("storage", "tracking", "wait")  # a trial's bookkeeping on the training path


def _run(argv: list[str]) -> tuple[int, str, float]:
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = run.main(argv)
    wall = time.perf_counter() - start
    text = out.getvalue()
    match = re.search(r"([\d.]+)s this session", text)
    loop = float(match.group(1)) if match else wall
    if code != 0:
        raise SystemExit(f"study.run failed ({code}):\n{text}")
    return code, text, loop


def _stores(path: Path) -> list[str]:
    return [
        "--storage",
        f"sqlite:///{path}/optuna.db",
        "--tracking-uri",
        f"sqlite:///{path}/mlflow.db",
    ]


def _outcomes(text: str) -> list[tuple[str, str, str]]:
    """(trial, state, value) of every trial line ``study.run`` printed, by trial number."""
    found = re.findall(r"^trial +(\d+) +(\w+) +(\S+=\S+)", text, re.MULTILINE)
    return sorted(found, key=lambda row: int(row[0]))


def _fresh_run(path: Path, study_args: list[str]) -> str:
    """``study.run`` in a process of its own (it pays the imports, as a user's does) with
    SQLite stores in ``path``; what it printed."""
    argv = [sys.executable, "-m", "study.run", *study_args, *_stores(path)]
    return subprocess.run(argv, capture_output=True, text=True, cwd=path, check=True).stdout


def _breakdown(path: Path, name: str) -> dict[str, float]:
    from study.tracking.timing import totals

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{path}/optuna.db")
    return totals(study.get_trials(deepcopy=False))


def record_errors(path: Path, name: str) -> str:
    """Which of a study's trial runs say a record failed (``*_error`` tags): a benchmark whose
    trials lost their pictures or logged models measured less than a study does."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{path}/mlflow.db")
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    errors = [(k, v) for r in runs for k, v in r.data.tags.items() if k.endswith("_error")]
    if not errors:
        return "Records: none failed."
    counts = ", ".join(
        f"{k} x{n}" for k, n in sorted(collections.Counter(k for k, _ in errors).items())
    )
    return f"Records that FAILED (the timing misses them): {counts}; first: {errors[0][1][:200]}"


def _overhead(study_args: list[str], reps: int, tmp: Path, template: Path) -> dict:
    """Median loop times of both variants, whether every run ran the same trials, and the
    tracked runs' seconds per activity (summed over trials, median over runs)."""
    times = {"tracked": [], "untracked": []}
    outcomes, spent = set(), []
    name = study_args[study_args.index("--study-name") + 1]
    for rep in range(reps):
        for variant in ("tracked", "untracked"):
            d = tmp / f"{variant}{rep}-{len(list(tmp.iterdir()))}"
            shutil.copytree(template, d)
            stores = (
                _stores(d)
                if variant == "tracked"
                else ["--storage", "memory", "--tracking-uri", "none"]
            )
            _, text, loop = _run([*study_args, *stores])
            times[variant].append(loop)
            outcomes.add(tuple(_outcomes(text)))
            if variant == "tracked":
                spent.append(_breakdown(d, name))
            print(f"  {variant} rep {rep}: {loop:.1f}s", flush=True)
    out = {k: statistics.median(v) for k, v in times.items()}
    out["same_trials"] = len(outcomes) == 1
    out["spent"] = {k: statistics.median(s[k] for s in spent) for k in ACTIVITIES}
    return out


def tracking_overhead(args) -> None:
    """Training on the CPU is deterministic and every trial is sampled before the one before
    it is told (whatever its records cost), so both variants sample, train and prune exactly
    the same trials (the table says whether they did); only the stores differ."""
    studies = {
        f"first {args.trials} trials of the default study": ["--trials", str(args.trials)],
        f"{args.trials // 2} trials, --pruner none (full-length trials)": [
            "--trials", str(args.trials // 2), "--pruner", "none"],
    }  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template"
        template.mkdir()
        from mlflow import MlflowClient

        MlflowClient(f"sqlite:///{template}/mlflow.db").search_experiments()  # schema once
        for label, study_args in studies.items():
            n = int(study_args[1])
            study_args += ["--study-name", "bench-tracking", "--records", args.records]
            t = _overhead(study_args, args.reps, Path(tmp), template)
            rows.append((label, n, t))
    print(
        f"\nBenchmark 2: tracking overhead, median of {args.reps} alternating runs "
        f"(--records {args.records})"
    )
    print(
        "| study | MLflow SQLite + Optuna SQLite (s) | tracking off + in-memory (s) | "
        "overhead | per trial | same trials |\n|---|---|---|---|---|---|"
    )
    for label, n, t in rows:
        tracked, untracked = t["tracked"], t["untracked"]
        print(
            f"| {label} | {tracked:.1f} | {untracked:.1f} | "
            f"{100 * (tracked / untracked - 1):+.1f}% | "
            f"{(tracked - untracked) / n * 1000:.0f} ms (trials average {untracked / n:.1f} s) "
            f"| {'yes' if t['same_trials'] else 'NO'} |"
        )
    print("\nThe tracked studies' seconds per activity, summed over their trials:")
    print("| study | " + " | ".join(ACTIVITIES) + " |\n|---|" + "---|" * len(ACTIVITIES))
    for label, _, t in rows:
        print(f"| {label} | " + " | ".join(f"{t['spent'][k]:.2f}" for k in ACTIVITIES) + " |")


def _epochs(path: Path, name: str) -> tuple[int, float | None]:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{path}/optuna.db")
    epochs = 0
    for t in study.trials:
        spec = t.user_attrs.get("spec", {})
        pre = spec.get("model", {}).get("pretrain_epochs", 0) or 0
        epochs += len(t.intermediate_values) + (pre if t.intermediate_values else 0)
    return epochs, study.best_value


def pruning(args) -> None:
    from study.run import build_parser

    default = build_parser().get_default("pruner")
    pruners = args.pruners or [default]
    common = ["--trials", str(args.trials), "--seed", "3", "--study-name", "bench-pruning",
              "--tracking-uri", "none"]  # fmt: skip
    if args.threads:  # one core per study, so two can run side by side
        common += ["--threads", str(args.threads)]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pruner in [*pruners, "none"]:
            d = Path(tmp) / pruner
            d.mkdir()
            storage = ["--storage", f"sqlite:///{d}/optuna.db"]
            _, _, wall = _run([*common, "--pruner", pruner, *storage])
            rows[pruner] = (*_epochs(d, "bench-pruning"), wall)
            print(f"  {pruner}: {rows[pruner]}", flush=True)
    e0, b0, w0 = rows["none"]
    print(f"\nBenchmark 3: the same seeded {args.trials}-trial default study, pruner vs none")
    print(
        "| pruner | epochs trained | wall time (s) | best val acc | epochs saved | time saved "
        "| best value vs none |\n|---|---|---|---|---|---|---|"
    )
    for pruner, (e, b, w) in rows.items():
        name = f"{pruner} (default)" if pruner == default else pruner
        print(
            f"| {name} | {e} | {w:.0f} | {b:.4f} | {100 * (1 - e / e0):.0f}% | "
            f"{100 * (1 - w / w0):.0f}% | {100 * (b - b0):+.2f} points |"
        )


def _test_accuracy(path: Path, name: str, *, retrain: bool, trial: int | None = None) -> float:
    cfg = path / "best.yaml"
    which = [] if trial is None else ["--trial", str(trial)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert export.main([*_stores(path), "--study-name", name, "--out", str(cfg), *which]) == 0
    out = io.StringIO()
    argv = ["--config", str(cfg), "--tracking-uri", f"sqlite:///{path}/mlflow.db"]
    with contextlib.redirect_stdout(out):
        assert train.main(argv if retrain else [*argv, "--from-checkpoint"]) == 0
    return float(re.search(r"test acc = ([\d.]+)", out.getvalue()).group(1))


def default_numbers(trials: int, extra: tuple[str, ...] = ()) -> dict:
    """``study.run --trials N`` with every default (plus ``extra``): its wall time, the
    refit included (the registered @best model and its test accuracy, when it refits); the
    best trial's own checkpoint on the test set; and, with ``--no-refit`` in ``extra``, its
    configuration retrained on 60k by ``study.train`` and tested, as before the refit."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        start = time.perf_counter()
        _, text, loop = _run([*_stores(d), "--trials", str(trials), *extra])
        wall = time.perf_counter() - start
        best = re.search(r"Best trial (\d+): acc = ([\d.]+)", text)
        counts = re.search(r"\((\d+) complete, (\d+) pruned\), (\d+) failed", text)
        refit = re.search(r"Refit of trial \d+ on \d+ images \(.*?, ([\d.]+)s\): test acc = "
                          r"([\d.]+)", text)  # fmt: skip
        spent = _breakdown(d, "classifier-fashion-mnist")
        errors = record_errors(d, "classifier-fashion-mnist")
        ckpt = _test_accuracy(d, "classifier-fashion-mnist", retrain=False)
        if refit is not None:
            test, retrain = float(refit.group(2)), float(refit.group(1))
        else:
            start = time.perf_counter()
            test = _test_accuracy(d, "classifier-fashion-mnist", retrain=True)
            retrain = time.perf_counter() - start
    return {
        "wall": wall, "loop": loop, "counts": "/".join(counts.groups()),
        "best": float(best.group(2)), "trial": int(best.group(1)), "ckpt": ckpt,
        "test": test, "retrain": retrain, "refit": refit is not None, "spent": spent,
        "errors": errors,
    }  # fmt: skip


def spent_line(spent: dict[str, float]) -> str:
    """Where a study's time went, seconds summed over its trials (the trials' ``time``)."""
    return "Seconds per activity, summed over the trials: " + ", ".join(
        f"{k} {v:.0f}" for k, v in spent.items()
    )


def default_study(args) -> None:
    r = default_numbers(args.trials, tuple(args.run_args.split()))
    print(f"\nBenchmark 4: python -m study.run --trials {args.trials} {args.run_args}")
    print(
        "| wall time | trials complete / pruned / failed | best val acc | test acc, "
        "trial's checkpoint | test acc, refit on 60k (its time) |\n|---|---|---|---|---|"
    )
    print(
        f"| {r['wall'] / 60:.1f} min (loop {r['loop'] / 60:.1f} min) | {r['counts']} | "
        f"{r['best']:.4f} (trial {r['trial']}) | {r['ckpt']:.4f} | "
        f"{r['test']:.4f} ({r['retrain']:.0f} s) |"
    )
    print(spent_line(r["spent"]))
    print(r["errors"])


def _in_budget(path: Path, name: str, budget: float):
    """(trial, value) of the best complete trial that finished within ``budget`` seconds of
    the study's first trial starting, and whether it is the baseline."""
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{path}/optuna.db")
    trials = study.get_trials(deepcopy=False)
    start = min(t.datetime_start for t in trials if t.datetime_start)
    done = [
        t for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE
        and (t.datetime_complete - start).total_seconds() <= budget
    ]  # fmt: skip
    best = (max if study.direction.name == "MAXIMIZE" else min)(done, key=lambda t: t.value)
    return best.number, best.value, BASELINE_ATTR in best.user_attrs


def same_budget(args) -> None:
    """The default study (plus ``--run-args``) under ``--timeout BUDGET``, once per seed: the
    best trial that finished within the budget, its own checkpoint on the test set."""
    extra = args.run_args.split()
    print(
        f"\nBenchmark 5: study.run --timeout {args.budget:g} {' '.join(extra)} (Optuna's "
        "example: 100 trials in ~97-130 s)\n| seed | trials finished (complete / pruned) | "
        "session (s) | best within the budget: val acc (trial) | test acc, its checkpoint |"
        "\n|---|---|---|---|---|"
    )  # fmt: skip
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            start = time.perf_counter()
            _, text, _ = _run([*_stores(d), "--trials", "1000", "--timeout", str(args.budget),
                               "--study-name", "bench-budget", "--seed", str(seed), *extra])  # fmt: skip
            wall = time.perf_counter() - start
            counts = re.search(r"(\d+) finished trials \((\d+) complete, (\d+) pruned", text)
            number, value, base = _in_budget(d, "bench-budget", args.budget)
            ckpt = _test_accuracy(d, "bench-budget", retrain=False, trial=number)
        n, c, pr = counts.groups()
        label = f"{value:.4f} (trial {number}{', the baseline' if base else ''})"
        print(f"| {seed} | {n} ({c} / {pr}) | {wall:.0f} | {label} | {ckpt:.4f} |", flush=True)


def records_placement(args) -> None:
    """``--records inline`` against ``background``: the same tracked study (SQLite stores),
    each run a fresh ``study.run`` process as a user's (it pays the imports), the two
    alternating, the order swapped each repetition. Median loop time, and the seconds per
    activity summed over trials (median over runs): what each leaves on the training path
    (storage, tracking, wait) and whether writing beside training slows it (train, eval)."""
    study = ["--trials", str(args.trials), "--study-name", "bench-records", "--no-report"]
    modes = ("inline", "background")
    loops, spent = {m: [] for m in modes}, {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for mode in modes if rep % 2 == 0 else modes[::-1]:
                d = Path(tmp) / f"{mode}{rep}"
                d.mkdir()
                out = _fresh_run(d, [*study, "--records", mode])
                loops[mode].append(float(re.search(r"([\d.]+)s this session", out)[1]))
                spent[mode].append(_breakdown(d, "bench-records"))
                print(f"  {mode} rep {rep}: {loops[mode][-1]:.1f}s", flush=True)
    n = args.trials
    print(f"\nBenchmark 2, where records are written: {n} trials, {args.reps} runs each")
    print("| --records | loop (s), each run | median (s) | on the training path per trial "
          "(storage + tracking + wait) | " + " | ".join(ACTIVITIES) + " |")  # fmt: skip
    print("|---|---|---|---|" + "---|" * len(ACTIVITIES))
    for mode in modes:
        med = {k: statistics.median(s[k] for s in spent[mode]) for k in ACTIVITIES}
        path = sum(med[k] for k in ON_PATH) / n * 1000
        runs = ", ".join(f"{t:.1f}" for t in loops[mode])
        print(f"| {mode} | {runs} | {statistics.median(loops[mode]):.1f} | {path:.0f} ms | "
              + " | ".join(f"{med[k]:.2f}" for k in ACTIVITIES) + " |")  # fmt: skip


def steady_state(args) -> None:
    """What a tracked study leaves on each trial's training path once it runs: a fresh
    ``study.run`` process (SQLite stores), then the sum of ``storage``, ``tracking`` and
    ``wait`` in each trial's ``time`` attribute, from the fifth trial on (the first ones pay
    the session's imports), by how the trial ended."""
    name = "bench-steady"
    with tempfile.TemporaryDirectory() as tmp:
        _fresh_run(Path(tmp), ["--trials", str(args.trials), "--no-report", "--study-name", name])
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp}/optuna.db")
        trials = [t for t in study.trials[4:] if t.state.name in ("COMPLETE", "PRUNED")]
    groups = {"all": trials}
    for state in ("COMPLETE", "PRUNED"):
        groups[state.lower()] = [t for t in trials if t.state.name == state]
    print(f"\nBenchmark 2, steady state: trials 4-{args.trials - 1} of a {args.trials}-trial study")
    print("| trials | n | on the training path, median (ms) | range (ms) | trial, median (s) |")
    print("|---|---|---|---|---|")
    for label, group in groups.items():
        if not group:
            continue
        spent = [t.user_attrs.get(TIME_ATTR, {}) for t in group]
        path = sorted(1000 * sum(s.get(k, 0.0) for k in ON_PATH) for s in spent)
        total = statistics.median(sum(s.values()) for s in spent)
        print(f"| {label} | {len(group)} | {statistics.median(path):.0f} | "
              f"{path[0]:.0f}-{path[-1]:.0f} | {total:.2f} |")  # fmt: skip


BENCHES = {
    "tracking": tracking_overhead,
    "records": records_placement,
    "steady": steady_state,
    "pruning": pruning,
    "default": default_study,
    "budget": same_budget,
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.studies", description=__doc__)
    p.add_argument("which", nargs="*", choices=sorted(BENCHES), default=sorted(BENCHES))
    p.add_argument("--trials", type=int, default=None)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--budget", type=float, default=97.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="budget: study seeds")
    p.add_argument(
        "--run-args", default="", help="budget, default: more study.run options, one string"
    )
    p.add_argument("--pruners", nargs="*", default=None, help="pruning: pruners to compare")
    p.add_argument("--threads", type=int, default=None, help="pruning: study.run's --threads")
    p.add_argument(
        "--records", default="auto", help="tracking: study.run's --records for both variants"
    )
    args = p.parse_args(argv)
    defaults = {"tracking": 10, "records": 12, "steady": 24, "pruning": 30, "default": 100,
                "budget": None}  # fmt: skip
    for name in args.which:
        ns = argparse.Namespace(**vars(args))
        ns.trials = args.trials or defaults[name]
        BENCHES[name](ns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
