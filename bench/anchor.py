"""Benchmark 10: the default study against Optuna's own PyTorch example, as a ratio.

The example is Optuna's ``pytorch_simple.py`` (optuna-examples), written here from its
published description: an MLP of 1-3 layers of 4-128 units with dropout 0.2-0.5, Adam, RMSprop
or SGD at a log-uniform learning rate of 1e-5 to 1e-1, batches of 128, 30 batches (3,840
images) per epoch drawn from the shuffled Fashion-MNIST training set through torchvision's
``FashionMNIST`` dataset and ``ToTensor`` (PIL per image), 10 epochs, accuracy on 1,280 images
of the test set after each epoch, Optuna's default sampler and pruner (TPE, median),
100 trials, CPU. Its files are this harness's checked copy (torchvision cannot download
here), read by torchvision as the example reads them.

Both run one after the other, so the ratio of their wall times holds for this machine at this
moment: the example in a process of its own, as a user runs it (without the harness's process
settings such as ``models.flush_denormals``), the default study in this one. The table gives
both accuracies: the example's own metric (best accuracy on its 1,280 test images) and the
default study's best validation accuracy and its refit (its best configuration retrained on
all 60,000 training images and tested on 10,000), which the default study's wall time
includes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import optuna
import torch
from torch import nn

from bench.studies import default_numbers, spent_line
from study.data import loading as data

BATCHSIZE = 128
CLASSES = 10
EPOCHS = 10
N_TRAIN_EXAMPLES = BATCHSIZE * 30
N_VALID_EXAMPLES = BATCHSIZE * 10


def define_model(trial: optuna.Trial) -> nn.Module:
    n_layers = trial.suggest_int("n_layers", 1, 3)
    layers: list[nn.Module] = []
    in_features = 28 * 28
    for i in range(n_layers):
        out_features = trial.suggest_int(f"n_units_l{i}", 4, 128)
        layers += [nn.Linear(in_features, out_features), nn.ReLU()]
        layers.append(nn.Dropout(trial.suggest_float(f"dropout_l{i}", 0.2, 0.5)))
        in_features = out_features
    layers += [nn.Linear(in_features, CLASSES), nn.LogSoftmax(dim=1)]
    return nn.Sequential(*layers)


def loaders(root: str):
    """The example's two loaders (it builds them inside every trial, and so does this)."""
    from torchvision import datasets, transforms

    def dataset(train: bool):
        return datasets.FashionMNIST(root, train=train, transform=transforms.ToTensor())

    train = torch.utils.data.DataLoader(dataset(True), batch_size=BATCHSIZE, shuffle=True)
    valid = torch.utils.data.DataLoader(dataset(False), batch_size=BATCHSIZE, shuffle=True)
    return train, valid


def objective(trial: optuna.Trial, root: str) -> float:
    model = define_model(trial)
    optimizer_name = trial.suggest_categorical("optimizer", ["Adam", "RMSprop", "SGD"])
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    optimizer = getattr(torch.optim, optimizer_name)(model.parameters(), lr=lr)
    train_loader, valid_loader = loaders(root)
    for epoch in range(EPOCHS):
        model.train()
        for batch_idx, (x, target) in enumerate(train_loader):
            if batch_idx * BATCHSIZE >= N_TRAIN_EXAMPLES:
                break
            optimizer.zero_grad()
            loss = nn.functional.nll_loss(model(x.view(x.size(0), -1)), target)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for batch_idx, (x, target) in enumerate(valid_loader):
                if batch_idx * BATCHSIZE >= N_VALID_EXAMPLES:
                    break
                pred = model(x.view(x.size(0), -1)).argmax(dim=1)
                correct += int((pred == target).sum())
        accuracy = correct / min(len(valid_loader.dataset), N_VALID_EXAMPLES)
        trial.report(accuracy, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


def optuna_example(trials: int) -> dict:
    """Run the example; its wall time (study creation to the last trial) and best value."""
    root = str(data.torchvision_root("fashion-mnist"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: objective(t, root), n_trials=trials, timeout=600)
    wall = time.perf_counter() - start
    states = [t.state for t in study.trials]
    return {
        "wall": wall,
        "best": study.best_value,
        "complete": states.count(optuna.trial.TrialState.COMPLETE),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "failed": states.count(optuna.trial.TrialState.FAIL),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.anchor", description=__doc__)
    p.add_argument("--trials", type=int, default=100, help="trials of each (default: 100)")
    p.add_argument("--example-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.example_only:
        print(json.dumps(optuna_example(args.trials)))
        return 0
    cmd = [sys.executable, "-m", "bench.anchor", "--example-only", "--trials", str(args.trials)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    ex = json.loads(out.splitlines()[-1])
    print(f"  Optuna's example: {ex}", flush=True)
    ours = default_numbers(args.trials)
    print(f"  default study: {ours}", flush=True)
    print(
        "\nBenchmark 10: the default study against Optuna's PyTorch example "
        f"({args.trials} trials each)"
    )
    print(
        "| run | wall time | trials complete / pruned / failed | best accuracy (its own metric) | "
        "test acc, trial's checkpoint | test acc, refit on 60k (its time, in the wall time) |"
        "\n|---|---|---|---|---|---|"
    )
    print(
        f"| Optuna's example | {ex['wall']:.0f} s | "
        f"{ex['complete']}/{ex['pruned']}/{ex['failed']} | {ex['best']:.4f} (1,280 test images) | - | - |"
    )
    print(
        f"| default study | {ours['wall']:.0f} s | {ours['counts']} | "
        f"{ours['best']:.4f} (2,500 validation images) | {ours['ckpt']:.4f} | "
        f"{ours['test']:.4f} ({ours['retrain']:.0f} s) |"
    )
    print(spent_line(ours["spent"]))
    print(ours["errors"])
    print(f"\nRatio of wall times: {ours['wall'] / ex['wall']:.1f}x (goal: <= 4x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
