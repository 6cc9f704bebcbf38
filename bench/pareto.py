"""Benchmark 11: a ``--pareto params`` classifier study with the pareto-halving pruner against
the same study unpruned: epochs trained, and the hypervolume of the final front.

For each seed, the two studies (60 trials, the default settings otherwise, no refit, MLflow
off: the records are not what is measured) run side by side, one thread each, so both see the
same machine. The hypervolume is of the front of completed trials in (1 - validation
accuracy, log10 parameters), both minimised, from one reference point for all the studies:
(1, the largest log10 parameter count any of them completed + 0.1). Epochs trained are summed
over every trial, pruned and failed ones included, pre-training epochs included.

    python -m bench.pareto [--trials 60] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from study.search.costs import COST_ATTR

PRUNERS = ("pareto-halving", "none")


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """The 2-D hypervolume (area) that ``points`` (minimised) dominate up to ``ref``."""
    front = sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1])
    area, best_y = 0.0, ref[1]
    for x, y in front:  # by x ascending; a point counts only where it lowers y
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area


def run_pair(seed: int, trials: int, root: Path) -> dict[str, dict]:
    """Both studies of one seed, side by side; their wall times and stores."""
    procs = {}
    for pruner in PRUNERS:
        db = root / f"{pruner}-{seed}.db"
        argv = [sys.executable, "-m", "study.run", "--objective", "classifier",
                "--pareto", "params", "--pruner", pruner, "--trials", str(trials),
                "--seed", str(seed), "--no-refit", "--no-report", "--threads", "1",
                "--storage", f"sqlite:///{db}", "--tracking-uri", "none"]  # fmt: skip
        procs[pruner] = (subprocess.Popen(argv, stdout=subprocess.DEVNULL), db, time.time())
    out = {}
    while len(out) < len(procs):
        for pruner, (proc, db, started) in procs.items():
            if pruner not in out and proc.poll() is not None:
                assert proc.returncode == 0, f"{pruner} seed {seed} failed"
                out[pruner] = {"db": db, "seconds": time.time() - started}
        time.sleep(0.5)
    return out


def numbers(db: Path) -> tuple[int, list[tuple[float, float]], int]:
    study = optuna.load_study(study_name="classifier-fashion-mnist", storage=f"sqlite:///{db}")
    epochs = sum(t.user_attrs.get(COST_ATTR, {}).get("epochs", 0) for t in study.trials)
    front = [(1 - t.values[0], math.log10(t.values[1])) for t in study.best_trials]
    pruned = sum(t.state.name == "PRUNED" for t in study.trials)
    return epochs, front, pruned


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.pareto", description=__doc__)
    p.add_argument("--trials", type=int, default=60)
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-pareto-") as tmp:
        for seed in seeds:
            for pruner, r in run_pair(seed, args.trials, Path(tmp)).items():
                epochs, front, pruned = numbers(r["db"])
                rows[(pruner, seed)] = {"epochs": epochs, "front": front, "pruned": pruned,
                                        "seconds": round(r["seconds"], 1)}  # fmt: skip
    ref = (1.0, max(y for r in rows.values() for _, y in r["front"]) + 0.1)
    print(f"reference point: (1 - acc, log10 params) = ({ref[0]}, {ref[1]:.3f})")
    print("seed  pruner          epochs  pruned  front  hypervolume  seconds")
    for (pruner, seed), r in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        r["hv"] = hypervolume(r["front"], ref)
        print(f"{seed:>4}  {pruner:<14}  {r['epochs']:>6}  {r['pruned']:>6}  "
              f"{len(r['front']):>5}  {r['hv']:>11.4f}  {r['seconds']:>7}")  # fmt: skip
    mean = {
        pruner: {k: sum(rows[(pruner, s)][k] for s in seeds) / len(seeds)
                 for k in ("epochs", "hv", "seconds")}
        for pruner in PRUNERS
    }  # fmt: skip
    fewer = 1 - mean["pareto-halving"]["epochs"] / mean["none"]["epochs"]
    hv_gap = 1 - mean["pareto-halving"]["hv"] / mean["none"]["hv"]
    print(f"mean over seeds {seeds}: epochs {mean['pareto-halving']['epochs']:.0f} pruned vs "
          f"{mean['none']['epochs']:.0f} unpruned ({fewer:.0%} fewer; goal >= 40%), "
          f"hypervolume {mean['pareto-halving']['hv']:.4f} vs {mean['none']['hv']:.4f} "
          f"({hv_gap:+.1%} below; goal within 2%)")  # fmt: skip
    result = {"fewer_epochs": fewer, "hv_gap": hv_gap, "mean": mean, "ref": ref}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
