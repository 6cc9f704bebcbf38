"""Benchmark 1b: the optimiser step on the CPU: PyTorch's per-parameter loop, ``foreach`` and
``fused``, one training epoch over the 50,000 training images each, variants alternating.

    python -m bench.optimizers --reps 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import models as m
from models._tasks import task_for
from study.data import loading as data_mod

VARIANTS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
CASES = [  # (preset, batch, optimiser)
    ("s2-mlp-ae-3d", 64, "adam"),
    ("s2-mlp-ae-3d", 256, "adam"),
    ("s3-mlp-vae", 128, "adam"),
    ("s2-mlp-ae-3d", 64, "sgd"),
]


def epoch(preset, batch: int, optimizer: str, variant: dict, train) -> tuple[float, list]:
    torch.manual_seed(0)
    model = m.build_model(preset.model)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, **variant)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9, nesterov=True, **variant)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    m.train_epoch(model, task_for(preset.model), train, opt, batch_size=batch,
                  device=torch.device("cpu"), generator=generator)  # fmt: skip
    return time.perf_counter() - start, [p.detach().clone() for p in model.parameters()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.optimizers", description=__doc__)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    m.flush_denormals()  # as the harness's entry points do, before any parallel work
    train = data_mod.load("fashion-mnist").train
    print("| model | batch | optimiser | " + " | ".join(VARIANTS) + " |")
    print("|---|---|---|" + "---|" * len(VARIANTS))
    for name, batch, optimizer in CASES:
        preset = m.PRESETS[name]
        seconds = {k: [] for k in VARIANTS}
        weights = {}
        for _ in range(args.reps):
            for k, variant in VARIANTS.items():
                s, weights[k] = epoch(preset, batch, optimizer, variant, train)
                seconds[k].append(s)
        cells = []
        for k in VARIANTS:
            same = all(torch.equal(a, b) for a, b in zip(weights["loop"], weights[k], strict=True))
            cells.append(f"{statistics.median(seconds[k]):.2f} s" + ("" if same else " (*)"))
        print(f"| {name} | {batch} | {optimizer} | " + " | ".join(cells) + " |", flush=True)
    print("(*) weights after the epoch not bit-identical to the loop's")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
