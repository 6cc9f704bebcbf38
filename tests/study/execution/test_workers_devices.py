"""``--workers N`` hands each worker its own GPU, ``--workers-per-gpu K`` packs K per GPU.

No GPU here: the device count is faked in the process that starts the workers; the workers
run on the CPU but record the ``CUDA_VISIBLE_DEVICES`` they were given. Untested on real
multi-GPU hardware.
"""

from dataclasses import replace

import pytest
import torch

from study import run
from study.execution.workers import assign_devices, gpu_ids, worker_envs
from study.settings import RunSettings, dumps, loads

from ..conftest import TINY, stores
from ..helpers import load


@pytest.mark.parametrize(
    "workers, per_gpu, gpus, expected",
    [
        (4, 1, ["0", "1"], ["0", "1", "0", "1"]),
        (4, 2, ["0", "1"], ["0", "0", "1", "1"]),
        (5, 2, ["0", "1"], ["0", "0", "1", "1", "0"]),
        (3, 1, ["0", "1", "2", "3"], ["0", "1", "2"]),
        (2, 1, [], [None, None]),
    ],
)
def test_workers_get_gpus_round_robin(workers, per_gpu, gpus, expected):
    assert assign_devices(workers, per_gpu, gpus) == expected


def test_visible_devices_of_the_parent_are_handed_on():
    assert gpu_ids("2,5", 2) == ["2", "5"]
    assert gpu_ids(None, 3) == ["0", "1", "2"]
    assert gpu_ids(None, 0) == []


def test_an_explicit_cpu_or_cuda_n_device_is_left_alone(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    for device in ("cpu", "cuda:1"):
        envs = worker_envs(RunSettings(workers=2, device=device), gpu_count=2)
        assert all("CUDA_VISIBLE_DEVICES" not in e for e in envs)
    envs = worker_envs(RunSettings(workers=2, device="auto"), gpu_count=2)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1"]


def test_a_worker_gets_the_settings_whole_from_one_function(tmp_path):
    """The settings cross the process boundary as one JSON text (``dumps`` / ``loads``):
    every field comes back equal, store URLs (with their secret) and tuples included."""
    settings = run.settings_from_argv(
        [
            "--trials", "7", "--epochs", "3", "--limit-train", "64", "--limit-val", "0",
            "--storage", "postgresql://u:s3cret@db:5432/optuna", "--tracking-uri", "none",
            "--enqueue-seeds", "s2-mlp-ae-3d", "--objective", "ae", "--workers", "2",
            "--enqueue-config", str(tmp_path / "a.yaml"), "--heartbeat-grace", "99",
            "--timeout", "12.5", "--no-baseline",
        ]
    )  # fmt: skip
    worker = replace(settings, worker_index=1, threads=4)
    back = loads(dumps(worker))
    assert back == worker
    assert back.storage.url == "postgresql://u:s3cret@db:5432/optuna"
    assert back.enqueue_configs == (tmp_path / "a.yaml",) and back.enqueue_seeds == (
        "s2-mlp-ae-3d",
    )
    assert back.is_worker and back.threads == 4 and not back.baseline


def test_each_worker_records_the_gpu_it_was_given(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    argv = [*TINY, *stores(tmp_path), "--objective", "ae", "--trials", "6", "--workers", "2"]
    assert run.main([*argv, "--heartbeat", "2", "--no-report", "--no-refit"]) == 0
    study, _, _, runs = load(tmp_path, "ae-fashion-mnist")
    by_worker = {}
    for r in runs:
        by_worker.setdefault(r.data.params["worker"], set()).add(
            r.data.params["cuda_visible_devices"]
        )
    # Each worker process stays on the one GPU it was given, and no two share one (which
    # worker got which is the unit tests' business; a worker may also find no trial left).
    assert all(len(gpus) == 1 for gpus in by_worker.values())
    given = [next(iter(gpus)) for gpus in by_worker.values()]
    assert len(set(given)) == len(given) and set(given) <= {"0", "1"}
