"""Evaluation's batch size on this device: each phase of the objective's baseline and of
``--specs`` models its space samples at random evaluates the 2,500 validation images of a
default study at each batch size in turn, ``--reps`` times (the sizes alternate); per model
the median seconds, and the sum over the models.

    python -m bench.eval_batch --objective classifier --specs 10 --seed 11
"""

from __future__ import annotations

import argparse
import statistics
import time

import optuna

import models as m
from models._engine import phases
from objectives import OBJECTIVES, baseline_params
from study.data import loading as data_mod

from .engine import _sync


def specs(objective: str, n: int, seed: int):
    """The objective's baseline, then ``n`` specs sampled at random."""
    obj = OBJECTIVES[objective]
    yield (
        "baseline",
        obj.suggest(
            optuna.trial.FixedTrial(baseline_params(objective, max_epochs=10)), max_epochs=10
        ),
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for i in range(n):
        yield f"random {i}", obj.suggest(study.ask(), max_epochs=10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.eval_batch", description=__doc__)
    p.add_argument("--objective", default="classifier", choices=sorted(OBJECTIVES))
    p.add_argument("--specs", type=int, default=10)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 2048])
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    m.flush_denormals()  # as the harness's entry points do
    device = m.resolve_device(args.device)
    full = data_mod.load("fashion-mnist")
    val = m.Split(full.val.images[:2500], full.val.labels[:2500]).to(device)
    print(f"| model | phase | {' | '.join(f'batch {b} (s)' for b in args.sizes)} |")
    print(f"|---|---|{'---|' * len(args.sizes)}")
    totals = dict.fromkeys(args.sizes, 0.0)
    for name, spec in specs(args.objective, args.specs, args.seed):
        model = m.build_model(spec.model).to(device)
        for phase, module, task, _ in phases(spec.model, model, spec.train):
            seconds: dict[int, list[float]] = {b: [] for b in args.sizes}
            for _ in range(args.reps):
                for b in args.sizes:
                    _sync(device)
                    start = time.perf_counter()
                    m.evaluate(module, task, val, device=device, batch_size=b)
                    _sync(device)
                    seconds[b].append(time.perf_counter() - start)
            medians = {b: statistics.median(v) for b, v in seconds.items()}
            for b, v in medians.items():
                totals[b] += v
            kind = type(getattr(spec.model, "encoder", spec.model)).__name__
            cells = " | ".join(f"{medians[b]:.3f}" for b in args.sizes)
            print(f"| {name} ({kind}) | {phase} | {cells} |")
    print(f"| **sum** | | {' | '.join(f'**{totals[b]:.2f}**' for b in args.sizes)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
