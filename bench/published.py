"""Benchmark 7: results checked against published numbers (``python -m bench.published``).

Each model is written as an exported config and trained with ``python -m study.train`` (the
60,000 training images, tested once on the 10,000 test images), as a user would:

- the classic MNIST VAE (784-400-20, ReLU, summed BCE + KL, Adam 1e-3, batch 128, 10 epochs:
  PyTorch's ``examples/vae``) on MNIST and on Fashion-MNIST: negative ELBO per test image;
- S0 (MLP AE 784-256-128-32, frozen after 5 epochs of pre-training, head 64-32) and an MLP
  classifier trained from scratch (``freeze: scratch``) on Fashion-MNIST: test accuracy;
- S2 (MLP AE 784-128-64-12-3) on Fashion-MNIST: test reconstruction MSE per pixel.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import tempfile
import time
from pathlib import Path

import models as m
from objectives import TrialSpec
from study import train
from study.artifacts.config_file import write_config

ADAM = m.TrainConfig(lr=1e-3, batch_size=128, epochs=10)
VAE = m.VAEConfig.mlp(hidden=(400,), latent_dim=20, activation="relu")
S0 = m.PRESETS["s0-latent-classifier"]
S2 = m.PRESETS["s2-mlp-ae-3d"]
CHECKS = [
    # (label, objective, dataset, model, train, metric, published figure)
    ("VAE 784-400-20 (PyTorch example)", "vae", "mnist", VAE, ADAM, "nelbo",
     "~104-106 after 10 epochs (PyTorch examples/vae 'Test set loss'; FACTS.md: 105-107)"),
    ("VAE 784-400-20 (PyTorch example)", "vae", "fashion-mnist", VAE, ADAM, "nelbo",
     "no standard figure; the MNIST figure does not apply"),
    ("S0: frozen MLP AE + head 64-32", "classifier", "fashion-mnist", S0.model, S0.train, "acc",
     "MLP 256-128-100: 0.883 (Fashion-MNIST benchmark, MLPClassifier)"),
    ("S0 architecture, freeze=scratch", "classifier", "fashion-mnist",
     m.ClassifierConfig(encoder=S0.model.encoder, head=(64, 32), freeze="scratch",
                        pretrain_epochs=0), S0.train, "acc",
     "MLP 256-128-100: 0.883 (Fashion-MNIST benchmark, MLPClassifier)"),
    ("S2: MLP AE 784-128-64-12-3", "ae", "fashion-mnist", S2.model, S2.train, "mse",
     "none published (S2's write-up shows pictures only)"),
]  # fmt: skip


def check(label, objective, dataset, model, train_cfg, metric, seed: int, tmp: Path) -> float:
    cfg = {
        "objective": objective,
        "dataset": dataset,
        **TrialSpec(objective, model, train_cfg).to_dict(),
    }
    path = tmp / f"{objective}-{dataset}-{seed}.yaml"
    write_config(cfg, path)
    out = io.StringIO()
    argv = ["--config", str(path), "--tracking-uri", "none", "--seed", str(seed)]
    with contextlib.redirect_stdout(out):
        assert train.main(argv) == 0, out.getvalue()
    return float(re.search(rf"test {metric} = ([\d.]+)", out.getvalue()).group(1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.published", description=__doc__)
    p.add_argument("--seeds", type=int, default=1, help="training seeds per model")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, objective, dataset, model, train_cfg, metric, published in CHECKS:
            start = time.perf_counter()
            values = [
                check(label, objective, dataset, model, train_cfg, metric, s, Path(tmp))
                for s in range(args.seeds)
            ]
            seconds = (time.perf_counter() - start) / args.seeds
            rows.append((label, dataset, metric, values, seconds, published))
            print(f"  {label} on {dataset}: {values} ({seconds:.0f} s each)", flush=True)
    print("\nBenchmark 7: results against published numbers (test split)")
    print("| model | data | metric | ours (per seed) | time per run | published |")
    print("|---|---|---|---|---|---|")
    for label, dataset, metric, values, seconds, published in rows:
        ours = ", ".join(f"{v:.4g}" for v in values)
        print(f"| {label} | {dataset} | {metric} | {ours} | {seconds:.0f} s | {published} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
