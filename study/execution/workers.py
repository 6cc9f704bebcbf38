"""``--workers N``: N worker processes of the same study on this machine, each handed the
study's frozen settings (``study.settings.dumps``) with its own index, device and torch
threads, their output relayed with a ``[worker i]`` prefix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import replace

from study.settings import RunSettings, dumps

# ``python -m study.run WORKER_OPTION``: a worker of ``--workers``, its settings on stdin.
WORKER_OPTION = "--worker-settings-on-stdin"


def gpu_ids(visible: str | None, count: int) -> list[str]:
    """The GPUs this process may hand out: ``$CUDA_VISIBLE_DEVICES``'s entries, or 0..count-1."""
    if visible is not None and visible.strip():
        return [v.strip() for v in visible.split(",") if v.strip()][:count]
    return [str(i) for i in range(count)]


def assign_devices(workers: int, per_gpu: int, gpus: list[str]) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` of each worker: GPUs round-robin, ``per_gpu`` consecutive
    workers sharing one; None for every worker on a machine without GPUs."""
    if not gpus:
        return [None] * workers
    return [gpus[(i // per_gpu) % len(gpus)] for i in range(workers)]


def worker_envs(settings: RunSettings, gpu_count: int) -> list[dict[str, str]]:
    """Each worker's environment: its GPU (when the device may be a CUDA one)."""
    gpus = gpu_ids(os.environ.get("CUDA_VISIBLE_DEVICES"), gpu_count)
    pin = settings.device in ("auto", "cuda")  # cpu, mps or cuda:N: leave as asked
    devices = assign_devices(settings.workers, settings.workers_per_gpu, gpus if pin else [])
    envs = []
    for device in devices:
        env = dict(os.environ)
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        envs.append(env)
    return envs


def spawn(settings: RunSettings, gpu_count: int) -> int:
    """Start the workers on the same study, each handed ``settings`` (as its own worker, with
    its share of the torch threads); relay their output, forward Ctrl-C/SIGTERM; the exit
    code that matters most (non-zero wins, the largest in size)."""
    threads = max(1, (os.cpu_count() or 1) // settings.workers)
    procs = []
    for i, env in enumerate(worker_envs(settings, gpu_count)):
        proc = subprocess.Popen(
            [sys.executable, "-m", "study.run", WORKER_OPTION],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        proc.stdin.write(dumps(replace(settings, worker_index=i, threads=threads)))
        proc.stdin.close()
        procs.append(proc)

    def relay(i: int, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            print(f"[worker {i}] {line}", end="", flush=True)

    relays = [threading.Thread(target=relay, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for t in relays:
        t.start()

    def forward(signum, frame) -> None:
        for p in procs:
            p.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        forward(signal.SIGINT, None)
        codes = [p.wait() for p in procs]
    finally:
        signal.signal(signal.SIGTERM, previous)
        for t in relays:
            t.join(timeout=5)
    return max(codes, key=abs) if any(codes) else 0
