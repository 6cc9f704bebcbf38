"""Devices: which one to train on, and how a model and its arithmetic are set up there."""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from ._config import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} was asked for but CUDA is not available; use --device auto or cpu"
        )
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise ConfigError(
            f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) here"
        )
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ConfigError(f"device {name!r} was asked for but MPS is not available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device``; conv models go channels-last (NHWC), which oneDNN on
    CPUs and cuDNN on tensor cores run faster (BENCHMARKS.md: 15-25% per conv epoch on CPU)."""
    model = model.to(device)
    if any(isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)) for mod in model.modules()):
        model = model.to(memory_format=torch.channels_last)
    return model


def flush_denormals() -> bool:
    """Treat subnormal floats as zero in CPU arithmetic (x86 FTZ/DAZ), as TensorFlow's CPU
    threads do by default; ``False`` where the CPU has no such mode.

    Adam's moving averages of weights whose gradient has become zero (dead ReLU units, pixels
    that are almost always black) decay by 0.9 per step through the subnormal range, where x86
    arithmetic is many times slower: unflushed, the S2 MLP AE's fused Adam step took 6x as
    long and its whole epoch 1.5x (BENCHMARKS.md, benchmark 1). The trained weights are
    bit-identical either way (checked on the S0, S2, S3 and S4 presets; an update of ~1e-39
    does not change a float32 weight). The mode is per thread and new threads inherit it, so
    call this before the process's first parallel torch operation (the harness's entry points
    do): torch's OpenMP threads, created then, flush too.
    """
    return bool(torch.set_flush_denormal(True))


def autocast(device: torch.device):
    """bf16 autocast on CUDA (tensor cores, no loss scaling needed); full precision elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
