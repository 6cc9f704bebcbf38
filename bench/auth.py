"""A study against an MLflow server with its basic-auth app, with and without the app's
password cache (``auth_cache_ttl_seconds``; MLflow's default is 0: a scrypt check of the
password on every request). Same seeded study each time, the two servers alternating; the
median wall time of ``study.run`` and how many requests the server answered.

    python -m bench.auth --reps 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRIALS = 6
STUDY = ["--trials", str(TRIALS), "--pruner", "none", "--epochs", "3", "--seed", "0", "--no-report"]
STUDY += ["--limit-train", "2000", "--limit-val", "500", "--objective", "ae"]
PASSWORD = "bench-Secret-1"


def check_seconds() -> float:
    """What one check of a password costs here (werkzeug's default hash, as MLflow's)."""
    from werkzeug.security import check_password_hash, generate_password_hash

    digest = generate_password_hash(PASSWORD)
    start = time.perf_counter()
    for _ in range(10):
        check_password_hash(digest, PASSWORD)
    return (time.perf_counter() - start) / 10


def one_study(url: str, workdir: Path, log: Path) -> tuple[float, int]:
    """Wall seconds of one study against the server at ``url``; requests it answered."""
    before = log.read_text().count("HTTP/1.1")
    tmp = Path(tempfile.mkdtemp(prefix="bench-auth-", dir=workdir))
    cmd = [sys.executable, "-m", "study.run", *STUDY, "--study-name", tmp.name]
    cmd += ["--storage", f"sqlite:///{tmp}/optuna.db", "--tracking-uri", url]
    env = {**os.environ, "MLFLOW_TRACKING_USERNAME": "admin"}
    env["MLFLOW_TRACKING_PASSWORD"] = PASSWORD
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"study.run failed:\n{out.stdout}\n{out.stderr}")
    if f"{TRIALS} finished trials" not in out.stdout:
        raise SystemExit(f"unexpected output:\n{out.stdout}")
    time.sleep(1)  # the server's access log is written after the response
    return wall, log.read_text().count("HTTP/1.1") - before


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__)
    p.add_argument("--reps", type=int, default=2)
    args = p.parse_args(argv)
    from contextlib import ExitStack

    from tests.servers import mlflow_server

    root = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    print(f"one password check: {check_seconds() * 1000:.0f} ms", flush=True)
    results: dict[int, list[tuple[float, int]]] = {0: [], 300: []}
    try:
        with ExitStack() as stack:
            servers = {}
            for ttl in results:
                work = root / f"ttl{ttl}"
                work.mkdir()
                url = stack.enter_context(
                    mlflow_server(
                        f"sqlite:///{work}/mlflow.db",
                        work,
                        serve_artifacts=True,
                        admin_password=PASSWORD,
                        auth_cache_s=ttl,
                    )
                )
                servers[ttl] = (url, work)
            for rep in range(args.reps):
                for ttl, (url, work) in servers.items():
                    wall, requests = one_study(url, work, work / "mlflow-server.log")
                    results[ttl].append((wall, requests))
                    print(
                        f"  rep {rep} cache {ttl} s: {wall:.1f} s, {requests} requests", flush=True
                    )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("| auth_cache_ttl_seconds | study.run wall (s), median | requests per study |")
    print("|---|---|---|")
    for ttl, rows in results.items():
        wall = statistics.median(w for w, _ in rows)
        print(f"| {ttl} | {wall:.1f} | {rows[-1][1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
