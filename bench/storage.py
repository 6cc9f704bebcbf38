"""Benchmark 6: Optuna storages under several worker processes (``python -m bench.storage``).

a. Storage cost alone: N processes run a trivial objective (one float, no training) on one
   study through ``study.stores.locations.open_storage`` (so SQLite gets the harness's WAL settings and
   heartbeats). Reports trials/second over all processes and ms per trial per process.
   SQLite, the journal file and PostgreSQL (a throw-away local cluster, as in the tests).
b. A real small study through ``study.run`` with ``--workers 1`` and ``--workers 2``.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEARTBEAT = 30


def _worker(url: str, name: str, trials: int, start_at: float, out) -> None:
    import warnings

    import optuna

    warnings.filterwarnings("ignore")

    from study.stores.locations import open_storage, parse_storage, use_fast_sqlite

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    use_fast_sqlite()
    storage = open_storage(parse_storage(url), heartbeat=HEARTBEAT)
    # Random sampling: the storage's cost, not TPE's, which grows with the trial count.
    study = optuna.load_study(
        study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler()
    )
    time.sleep(max(0.0, start_at - time.time()))  # everyone starts together
    begin = time.time()
    for _ in range(trials):
        trial = study.ask()
        study.tell(trial, trial.suggest_float("x", 0.0, 1.0) ** 2)
    out.put((begin, time.time()))


def measure(url: str, workers: int, total: int) -> tuple[float, float]:
    """(trials per second over all workers, ms per trial in one worker)."""
    import optuna

    from study.stores.locations import open_storage, parse_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name = f"bench-{workers}-{time.time_ns()}"
    optuna.create_study(
        study_name=name, storage=open_storage(parse_storage(url), heartbeat=HEARTBEAT)
    )
    per = total // workers
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 8.0  # after every process has imported and connected
    procs = [
        ctx.Process(target=_worker, args=(url, name, per, start_at, out)) for _ in range(workers)
    ]
    for p in procs:
        p.start()
    spans = [out.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    begin = min(b for b, _ in spans)
    end = max(e for _, e in spans)
    per_trial = sum(e - b for b, e in spans) / len(spans) / per
    return per * workers / (end - begin), per_trial * 1000


def storage_table(total: int, worker_counts: list[int], kinds: list[str]) -> list[str]:
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    urls = {}
    if "sqlite" in kinds:
        urls["SQLite (WAL)"] = f"sqlite:///{tmp}/optuna.db"
    if "journal" in kinds:
        urls["journal file"] = f"journal:{tmp}/journal.log"
    with contextlib.ExitStack() as servers:
        servers.callback(shutil.rmtree, tmp, ignore_errors=True)
        if "postgres" in kinds:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.servers import postgres

            pg = servers.enter_context(postgres(databases=("optuna",)))
            urls["PostgreSQL (local)"] = f"{pg}/optuna"
        for label, url in urls.items():
            cells = []
            for n in worker_counts:
                rate, ms = measure(url, n, total)
                cells.append(f"{rate:.0f}/s, {ms:.0f} ms")
                print(f"  {label}, {n} workers: {rate:.1f} trials/s, {ms:.1f} ms/trial", flush=True)
            rows.append(f"| {label} | " + " | ".join(cells) + " |")
    head = "| storage | " + " | ".join(f"{n} worker{'s' * (n > 1)}" for n in worker_counts) + " |"
    return [head, "|---|" + "---|" * len(worker_counts), *rows]


def real_study(trials: int, workers: int) -> tuple[float, str]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    cmd = [sys.executable, "-m", "study.run", "--trials", str(trials), "--workers", str(workers)]
    # No pruning: the same work either way (asynchronous pruning prunes less with 2 workers).
    cmd += ["--epochs", "4", "--limit-train", "5000", "--limit-val", "1000", "--no-report"]
    cmd += ["--pruner", "none"]
    cmd += [
        "--storage",
        f"sqlite:///{tmp}/optuna.db",
        "--tracking-uri",
        f"sqlite:///{tmp}/mlflow.db",
    ]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - start
    shutil.rmtree(tmp, ignore_errors=True)
    summary = re.search(r"\d+ finished trials \((\d+) complete, (\d+) pruned\)", out)
    return wall, f"{summary.group(1)}/{summary.group(2)}" if summary else "?"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.storage")
    p.add_argument("--total", type=int, default=400, help="trivial trials per measurement")
    p.add_argument("--workers", default="1,2,4,8")
    p.add_argument("--storages", default="sqlite,journal,postgres")
    p.add_argument("--study-trials", type=int, default=20, help="trials of the real study (b)")
    p.add_argument("--skip-study", action="store_true")
    args = p.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    print(f"6a. storage cost, {args.total} trivial trials per cell")
    lines = storage_table(args.total, counts, args.storages.split(","))
    print("\n".join(lines))
    if not args.skip_study:
        print(f"6b. a real small study, {args.study_trials} trials, SQLite")
        for n in (1, 2):
            wall, split = real_study(args.study_trials, n)
            print(
                f"  --workers {n}: {wall:.0f} s, {args.study_trials / wall * 3600:.0f} trials/hour "
                f"(complete/pruned {split})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
