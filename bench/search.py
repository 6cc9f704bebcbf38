"""Benchmark 8: the sampler as configured against Optuna's own TPE defaults.

``python -m bench.search --seeds 3 --trials 40``: the default study (classifier objective,
tracking off, SQLite storage), each seed once with ``--sampler tpe-optuna-defaults`` (what
an unconfigured ``TPESampler`` does in Optuna 5: multivariate without groups) and once with
``--sampler tpe`` (grouped multivariate TPE, as configured). Training on the CPU is
deterministic for a seed, so the two differ only by the trials their samplers propose.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import optuna

from study import run

SAMPLERS = ("tpe-optuna-defaults", "tpe")


def one(sampler: str, seed: int, trials: int, tmp: Path, extra: list[str]) -> tuple[float, float]:
    d = tmp / f"{sampler}-{seed}"
    d.mkdir()
    argv = ["--sampler", sampler, "--seed", str(seed), "--trials", str(trials), "--no-report"]
    argv += extra
    argv += ["--storage", f"sqlite:///{d}/optuna.db", "--tracking-uri", "none"]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        assert run.main(argv) == 0
    wall = time.perf_counter() - start
    study = optuna.load_study(
        study_name="classifier-fashion-mnist", storage=f"sqlite:///{d}/optuna.db"
    )
    return study.best_value, wall


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--epochs", type=int, default=None, help="study.run --epochs (its default)")
    p.add_argument("--limit-train", type=int, default=None, help="study.run --limit-train")
    args = p.parse_args(argv)
    extra = []
    if args.epochs is not None:
        extra += ["--epochs", str(args.epochs)]
    if args.limit_train is not None:
        extra += ["--limit-train", str(args.limit_train)]
    results: dict[str, list[tuple[float, float]]] = {s: [] for s in SAMPLERS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for sampler in SAMPLERS:  # alternating, seed by seed
                results[sampler].append(one(sampler, seed, args.trials, Path(tmp), extra))
                print(f"  seed {seed} {sampler}: {results[sampler][-1]}", flush=True)
    print(f"\nBenchmark 8: best validation accuracy after {args.trials} trials, per seed {extra}")
    print(
        "| sampler | "
        + " | ".join(f"seed {s}" for s in range(args.seeds))
        + " | median | median wall |"
    )
    print("|---|" + "---|" * (args.seeds + 2))
    for sampler, rows in results.items():
        values = [v for v, _ in rows]
        cells = " | ".join(f"{v:.4f}" for v in values)
        walls = statistics.median(w for _, w in rows)
        print(f"| {sampler} | {cells} | **{statistics.median(values):.4f}** | {walls:.0f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
