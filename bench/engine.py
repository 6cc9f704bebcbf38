"""Benchmark 1: one epoch of the harness engine against the usual PyTorch loop.

The usual loop is the one the source write-ups and Optuna's examples use: a torchvision
dataset with ``ToTensor``, a shuffling ``DataLoader`` (2 worker processes), each batch copied
to the device, ``loss.item()`` every batch. Same model, batch size, optimiser and data; the
variants alternate so that machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import models as m
from study.data import loading as data_mod

MODELS = {
    "S2 MLP AE": "s2-mlp-ae-3d",
    "S4 conv AE": "s4-conv-ae-nofc",
    "S3 MLP VAE": "s3-mlp-vae",
}


def usual_epoch(model, task, loader, optimizer, device) -> float:
    model.train()
    total = 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss, _ = task(model, x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()  # the per-batch host sync such loops have
    return total


def harness_epoch(model, task, split, optimizer, device, batch_size, generator, graphed=None):
    return m.train_epoch(
        model,
        task,
        split,
        optimizer,
        batch_size=batch_size,
        device=device,
        generator=generator,
        graphed=graphed,
    )["loss"]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(
    preset: str,
    batch_size: int,
    device: torch.device,
    reps: int,
    root: str,
    split,
    with_compile: bool,
):
    import torchvision
    from torchvision.transforms import ToTensor

    config = m.PRESETS[preset].model
    task = m.task_for(config)
    settings = m.TrainConfig(batch_size=batch_size)
    torch.manual_seed(0)
    model = m.build_model(config).to(device)  # the usual loop's model, as it is built
    optimizer = m.make_optimizer(model.parameters(), settings, device)
    torch.manual_seed(0)
    ours = m.prepare_model(m.build_model(config), device)  # the engine's (channels-last conv)
    our_optimizer = m.make_optimizer(ours.parameters(), settings, device)
    dataset = torchvision.datasets.FashionMNIST(root, train=True, transform=ToTensor())
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=2,
        pin_memory=device.type == "cuda",
        persistent_workers=True,
    )
    resident = split.to(device)
    generator = torch.Generator().manual_seed(0)
    variants = {
        "usual": lambda: usual_epoch(model, task, loader, optimizer, device),
        "harness": lambda: harness_epoch(
            ours, task, resident, our_optimizer, device, batch_size, generator
        ),
    }
    if device.type == "cuda":  # the harness's own path there: the step as one CUDA graph
        graphed = m.GraphedStep(ours, task, our_optimizer, resident, batch_size)
        variants["graphed"] = lambda: harness_epoch(
            ours, task, resident, our_optimizer, device, batch_size, generator, graphed
        )
    if with_compile:
        compiled = m.CompiledTask(task)
        variants["compiled"] = lambda: harness_epoch(
            ours, compiled, resident, our_optimizer, device, batch_size, generator
        )
    times = {k: [] for k in variants}
    # One warm-up epoch each (worker start-up, allocator, cuDNN autotune, compilation).
    warmup = {}
    for name, epoch in variants.items():
        _sync(device)
        start = time.perf_counter()
        epoch()
        _sync(device)
        warmup[name] = time.perf_counter() - start
    for _ in range(reps):
        for name, epoch in variants.items():
            _sync(device)
            start = time.perf_counter()
            epoch()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}, warmup


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    p.add_argument("--device", default="auto")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    p.add_argument("--compile", action="store_true", help="also time the torch.compile'd engine")
    args = p.parse_args(argv)
    m.flush_denormals()  # as the harness's entry points do, before any parallel work
    device = m.resolve_device(args.device)
    root = str(data_mod.torchvision_root("fashion-mnist"))
    full = data_mod.load("fashion-mnist")
    # The whole 60k training file, as the usual loop sees it.
    split = m.Split(
        torch.cat([full.train.images, full.val.images]),
        torch.cat([full.train.labels, full.val.labels]),
    )
    print(
        f"Benchmark 1: one epoch over {len(split)} Fashion-MNIST images on {device} "
        f"({torch.get_num_threads()} threads), median of {args.reps} alternating runs"
    )
    cuda = device.type == "cuda"
    extra = " harness, CUDA graph (s/epoch) | speed-up |" if cuda else ""
    extra += " harness + compile (s/epoch; first epoch) |" if args.compile else ""
    print(f"| model | batch | usual loop (s/epoch) | harness (s/epoch) | speed-up |{extra}")
    print("|---|---|---|---|---|" + "---|" * extra.count("|"))
    for label, preset in MODELS.items():
        for batch in args.batch:
            t, warm = measure(preset, batch, device, args.reps, root, split, args.compile)
            row = (
                f"| {label} | {batch} | {t['usual']:.2f} | {t['harness']:.3f} | "
                f"{t['usual'] / t['harness']:.1f}x |"
            )
            if cuda:
                row += f" {t['graphed']:.3f} | {t['usual'] / t['graphed']:.1f}x |"
            if args.compile:
                row += f" {t['compiled']:.3f}; {warm['compiled']:.1f} |"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
