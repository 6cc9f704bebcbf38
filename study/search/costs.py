"""What a trial costs: its parameters, latent size, seconds per epoch and peak memory.

Recorded on every trial (user attribute ``cost``, MLflow metrics ``cost_*``), they are what
the report's trade-offs, ``study.export --max-params`` and ``study.run --max-params`` use.
"""

from __future__ import annotations

import resource
import sys

import torch

from models import build_model

COST_ATTR = "cost"
OVER_BUDGET_ATTR = "over_budget"


def param_count(model_config) -> int:
    """Trainable parameters of a model config, counted without allocating its weights."""
    with torch.device("meta"):
        model = build_model(model_config)
    return sum(p.numel() for p in model.parameters())


def process_peak_mb() -> float:
    """The process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


class CostMeter:
    """Collects one trial's costs while it trains."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: list[float] = []
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def epoch(self, seconds: float) -> None:
        self.seconds.append(seconds)

    def peak_mb(self) -> float:
        """GPU memory the trial allocated at most (CUDA), else the process's peak RSS."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return process_peak_mb()

    def record(self, spec) -> dict:
        epochs = len(self.seconds)
        return {
            "params": param_count(spec.model),
            "latent": spec.model.latent_dim,
            "epochs": epochs,  # trained by this attempt (pre-training included)
            "epoch_seconds": sum(self.seconds) / epochs if epochs else 0.0,
            "peak_memory_mb": round(self.peak_mb(), 1),
            "memory_kind": "cuda allocated" if self.device.type == "cuda" else "process rss",
        }


def budget_violation(cost: dict, max_params: int | None, max_latent: int | None) -> str | None:
    """Why a trial is over the budget, or None."""
    if max_params is not None and cost["params"] > max_params:
        return f"{cost['params']:,} parameters > --max-params {max_params:,}"
    if max_latent is not None and cost["latent"] > max_latent:
        return f"latent size {cost['latent']} > --max-latent {max_latent}"
    return None


def constraints(max_params: int | None, max_latent: int | None):
    """The sampler's ``constraints_func``: each value > 0 is a violation of the budget."""

    def func(trial) -> tuple[float, ...]:
        cost = trial.user_attrs.get(COST_ATTR)
        if cost is None:  # a trial of an older version, or one that failed early
            return (0.0,)
        out = 0.0
        if max_params is not None:
            out = max(out, (cost["params"] - max_params) / max_params)
        if max_latent is not None:
            out = max(out, float(cost["latent"] - max_latent))
        return (out,)

    return func
