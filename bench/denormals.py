"""Flushing subnormal floats to zero (``models.flush_denormals``): epoch times and weights.

The mode is per thread and torch's OpenMP threads inherit it when they are created, so the
two variants cannot share a process: each epoch pair runs in a fresh subprocess, the variants
alternate, and each subprocess reports its epoch times, a digest of the trained weights and
how many of Adam's moving averages are subnormal. The S2 rows also give the epoch against the
compute floor (the model's training FLOPs at the measured speed of a 2048x2048 matmul).

    python -m bench.denormals --reps 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time

import torch

CASES = [("s2-mlp-ae-3d", 64), ("s2-mlp-ae-3d", 256), ("s3-mlp-vae", 128),
         ("s4-conv-ae-nofc", 64), ("s0-latent-classifier", 128)]  # fmt: skip
EPOCHS = 3  # the first has few subnormals yet; the median of the later ones is reported
TINY = torch.finfo(torch.float32).tiny


def matmul_gflops() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    start, n = time.perf_counter(), 20
    for _ in range(n):
        a @ b
    return 2 * 2048**3 * n / (time.perf_counter() - start) / 1e9


def mlp_training_flops(model) -> int:
    """Multiply-adds of every Linear layer x 2 (FLOPs) x 3 (forward, two backward GEMMs)."""
    return 6 * sum(m.in_features * m.out_features for m in model.modules()
                   if isinstance(m, torch.nn.Linear))  # fmt: skip


def train_preset(preset: str, batch: int, epochs: int = EPOCHS):
    """``preset``'s model trained from seed 0 on the CPU for ``epochs`` epochs over the 50,000
    training images (2 threads, as the harness runs): (model, optimizer, task, data, seconds
    per epoch). Call ``models.flush_denormals`` first where wanted."""
    import models as m
    from study.data import loading as data_mod

    torch.set_num_threads(2)
    full = data_mod.load("fashion-mnist")
    p = m.PRESETS[preset]
    task = m.task_for(p.model)
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = m.prepare_model(m.build_model(p.model), cpu)
    optimizer = m.make_optimizer(model.parameters(), m.TrainConfig(batch_size=batch), cpu)
    generator = torch.Generator().manual_seed(0)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        m.train_epoch(model, task, full.train, optimizer, batch_size=batch,
                      device=cpu, generator=generator)  # fmt: skip
        seconds.append(time.perf_counter() - start)
    return model, optimizer, task, full, seconds


def one(preset: str, batch: int, flush: bool) -> dict:
    import models as m

    if flush:
        m.flush_denormals()  # before any parallel operation, as the entry points do
    model, optimizer, _, full, seconds = train_preset(preset, batch)
    digest = hashlib.sha256()
    for value in model.state_dict().values():
        digest.update(value.contiguous().numpy().tobytes())
    averages = [s["exp_avg"] for s in optimizer.state.values()]
    subnormal = sum(int(((a != 0) & (a.abs() < TINY)).sum()) for a in averages)
    return {
        "epoch": statistics.median(seconds[1:]),
        "weights": digest.hexdigest()[:12],
        "subnormal": subnormal / sum(a.numel() for a in averages),
        "floor": mlp_training_flops(model) * len(full.train) / matmul_gflops() / 1e9,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.denormals", description=__doc__)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--one", nargs=3, metavar=("PRESET", "BATCH", "FLUSH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.one[2] == "1")))
        return 0
    print(f"One epoch over 50,000 training images, 2 threads, median of {args.reps} processes "
          "per variant (each: the median of epochs 2-3)")  # fmt: skip
    print("| model | batch | subnormal (kept) | kept (s/epoch) | flushed (s/epoch) | change "
          "| flushed vs floor | same weights |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for preset, batch in CASES:
        runs = {"0": [], "1": []}
        for _ in range(args.reps):
            for flush in runs:
                cmd = [sys.executable, "-m", "bench.denormals", "--one", preset, str(batch), flush]
                out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
                runs[flush].append(json.loads(out.splitlines()[-1]))
        kept, flushed = (statistics.median(r["epoch"] for r in runs[k]) for k in ("0", "1"))
        same = len({r["weights"] for r in runs["0"] + runs["1"]}) == 1
        floor = statistics.median(r["floor"] for r in runs["1"])
        ratio = f"{flushed / floor:.1f}x" if preset.startswith("s2") else "-"
        print(f"| {preset} | {batch} | {runs['0'][0]['subnormal']:.2%} | {kept:.2f} | "
              f"{flushed:.2f} | {flushed / kept - 1:+.0%} | {ratio} | {'yes' if same else 'NO'} |",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
