"""Shared helpers for the frozen, JSON-serialisable model configs."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch.nn as nn

ACTIVATIONS = ("relu", "leaky_relu", "gelu", "elu", "silu", "tanh", "identity")
OUTPUT_ACTIVATIONS = ("sigmoid", "identity")
RECON_LOSSES = ("mse", "bce")
IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = 28 * 28


class ConfigError(ValueError):
    """A config value is out of range or inconsistent with another field."""


def make_activation(name: str) -> nn.Module:
    """Build the activation module called ``name`` (one of ``ACTIVATIONS``)."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)  # the slope S3 uses
    if name == "gelu":
        return nn.GELU()
    if name == "elu":
        return nn.ELU()
    if name == "silu":
        return nn.SiLU()
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "identity":
        return nn.Identity()
    raise ConfigError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


def check_choice(field: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{field} must be one of {choices}, but got {value!r}")


def check_int(field: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{field} must be an integer, but got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{field} must be {bound}, but got {value!r}")


def check_float(
    field: str, value: Any, low: float, high: float | None = None, low_open: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{field} must be a number, but got {value!r}")
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value > high) or value != value:
        op = ">" if low_open else ">="
        bound = f"{op} {low}" if high is None else f"{op} {low} and <= {high}"
        raise ConfigError(f"{field} must be {bound}, but got {value!r}")


def as_int_tuple(field: str, value: Any) -> tuple[int, ...]:
    """Normalise a list of widths to a tuple so JSON round trips compare equal."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"{field} must be a list of integers, but got {value!r}")
    out = tuple(value)
    for i, v in enumerate(out):
        check_int(f"{field}[{i}]", v, 1)
    return out


class ConfigBase:
    """Mixin for the frozen config dataclasses: dict round trip with a family tag."""

    family: ClassVar[str]

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # normalising inside a frozen dataclass

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (str/int/float/bool/list/dict) that ``config_from_dict`` rebuilds."""
        out: dict[str, Any] = {"family": self.family}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, ConfigBase):
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        data = dict(data)
        family = data.pop("family", cls.family)
        if family != cls.family:
            raise ConfigError(f"expected family {cls.family!r}, but got {family!r}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"unknown key(s) {unknown} for a {cls.family!r} config; valid keys: {sorted(names)}"
            )
        return cls(**data)
