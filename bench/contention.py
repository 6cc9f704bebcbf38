"""What work beside training costs training on this machine: an MLP autoencoder
(784-256-32-256-784) trained for a few epochs on 3,840 random images (batch 64, torch's
default threads), alone, then with bursts of Python and NumPy work beside it (pickling, a
small matmul: what writing a trial's records is made of), from a thread of the same process
and from another process. The three settings alternate; per setting, the median training
time and how much busy work ran beside it.

    python -m bench.contention --reps 5
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import pickle
import statistics
import threading
import time

BURST, PERIOD = 0.1, 1.0  # seconds of busy work, then seconds of rest


def busy(stop, done) -> None:
    """Bursts of records-like work until ``stop`` is set; ``done`` counts busy seconds."""
    import numpy as np

    a = np.random.default_rng(0).random((200, 200))
    while not stop.is_set():
        start = time.perf_counter()
        while time.perf_counter() - start < BURST:
            pickle.dumps({i: str(i) * 3 for i in range(2000)})
            a @ a
        with done.get_lock():
            done.value += time.perf_counter() - start
        stop.wait(PERIOD)


def train(epochs: int) -> float:
    import torch

    torch.manual_seed(0)
    x = torch.rand(3840, 784)
    sizes = [784, 256, 32, 256, 784]
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    start = time.perf_counter()
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            batch = x[i : i + 64]
            loss = (model(batch) - batch).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def one(setting: str, epochs: int) -> tuple[float, float]:
    """(training seconds, busy seconds beside it) for one setting."""
    ctx = mp.get_context("spawn")
    stop, done = ctx.Event(), ctx.Value("d", 0.0)
    helper = None
    if setting == "thread":
        helper = threading.Thread(target=busy, args=(stop, done))
    elif setting == "process":
        helper = ctx.Process(target=busy, args=(stop, done))
    if helper is not None:
        helper.start()
        while done.value == 0.0:  # the helper is up and has done its first burst
            time.sleep(0.01)
    busy_before = done.value
    seconds = train(epochs)
    busy_during = done.value - busy_before
    stop.set()
    if helper is not None:
        helper.join()
    return seconds, busy_during


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.contention", description=__doc__)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--epochs", type=int, default=6)
    args = p.parse_args(argv)
    results: dict[str, list[tuple[float, float]]] = {"alone": [], "thread": [], "process": []}
    for _ in range(args.reps):
        for setting in results:
            results[setting].append(one(setting, args.epochs))
    print("| beside training | training, median (s) | each run (s) | busy work beside it (s) |")
    print("|---|---|---|---|")
    for setting, runs in results.items():
        times = [round(t, 2) for t, _ in runs]
        work = statistics.median(b for _, b in runs)
        print(f"| {setting} | {statistics.median(times):.2f} | {times} | {work:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
