"""Conv autoencoders in PyTorch's default (NCHW) memory format against ``channels_last``, on
the CPU: milliseconds per training step (forward, MSE, backward, Adam), the two variants
alternating within one run, the median of ``--reps``. The engine runs conv models
channels-last (``models.prepare_model``); BENCHMARKS.md, 10.

    python -m bench.memory_format --reps 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from models import ConvAEConfig, build_model, flush_denormals

CASES = [  # (channels, downsample, batch norm, batch, FC latent)
    ((16, 32, 64), "maxpool", True, 256, None),
    ((32, 64, 64), "maxpool", False, 128, None),
    ((32, 64), "stride", False, 128, None),
    ((8, 16, 32), "stride", True, 64, 16),
]


def ms_per_step(model: torch.nn.Module, x: torch.Tensor, steps: int = 15) -> float:
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    flat = x.reshape(x.shape[0], -1)
    for i in range(3 + steps):  # three warm-up steps
        if i == 3:
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        (out.reshape(x.shape[0], -1) - flat).pow(2).mean().backward()
        opt.step()
    return (time.perf_counter() - start) / steps * 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory_format", description=__doc__)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    flush_denormals()  # as the harness's entry points do, before any parallel work
    print(
        "| channels | downsample | BatchNorm | batch | NCHW (ms/step) | channels_last (ms/step) |"
    )
    print("|---|---|---|---|---|---|")
    for channels, down, bn, batch, fc in CASES:
        cfg = ConvAEConfig(
            channels=channels, downsample=down, batch_norm=bn, fc_latent=fc, activation="relu"
        )
        torch.manual_seed(0)
        weights = build_model(cfg).state_dict()
        x = torch.rand(batch, 1, 28, 28)
        times: dict[str, list[float]] = {"nchw": [], "cl": []}
        for _ in range(args.reps):
            for variant in times:
                model = build_model(cfg)
                model.load_state_dict(weights)
                if variant == "cl":
                    model = model.to(memory_format=torch.channels_last)
                times[variant].append(ms_per_step(model, x))
        nchw, cl = (statistics.median(times[k]) for k in ("nchw", "cl"))
        print(
            f"| {'-'.join(map(str, channels))} | {down} | {bn} | {batch} | {nchw:.1f} | {cl:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
