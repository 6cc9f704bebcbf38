"""bf16 autocast on the CPU (measured, not adopted): epoch times and validation metrics.

The CUDA path trains under bf16 autocast; this CPU has AMX-BF16, so the same might pay on
the CPU. Each run is a fresh subprocess (flushed subnormals, 2 threads, as the harness runs),
the variants alternate, and the median of the later epochs is reported with each variant's
validation metric after 3 epochs.

    python -m bench.cpu_bf16 --reps 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

import torch

from bench.denormals import train_preset

CASES = [("s2-mlp-ae-3d", 64), ("s3-mlp-vae", 128), ("s0-latent-classifier", 128)]
EPOCHS = 3


def one(preset: str, batch: int, bf16: bool) -> dict:
    import models as m
    import models._engine as engine

    m.flush_denormals()
    if bf16:
        engine.autocast = lambda device: torch.autocast("cpu", dtype=torch.bfloat16)
    model, _, task, full, seconds = train_preset(preset, batch, EPOCHS)
    val = m.evaluate(model, task, full.val, device=torch.device("cpu"))
    return {
        "epoch": statistics.median(seconds[1:]),
        "metric": task.metric,
        "value": val[task.metric],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cpu_bf16", description=__doc__)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # PRESET BATCH BF16 (0/1)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.one[2] == "1")))
        return 0
    print(f"bf16 autocast on the CPU: s/epoch over 50,000 images, median of {args.reps} runs")
    print("| model | batch | float32 (s/epoch) | bf16 autocast (s/epoch) | change | val, float32 | val, bf16 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for preset, batch in CASES:
        runs = {False: [], True: []}
        for _ in range(args.reps):
            for bf16 in (False, True):
                cmd = [sys.executable, "-m", "bench.cpu_bf16", "--one", preset, str(batch),
                       str(int(bf16))]  # fmt: skip
                out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
                runs[bf16].append(json.loads(out.strip().splitlines()[-1]))
        fp, bf = (statistics.median(r["epoch"] for r in runs[k]) for k in (False, True))
        metric = runs[False][0]["metric"]
        print(f"| {preset} | {batch} | {fp:.2f} | {bf:.2f} | {bf / fp - 1:+.0%} | "
              f"{metric} {runs[False][0]['value']:.4f} | {runs[True][0]['value']:.4f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
