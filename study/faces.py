"""The public face of each room: the few names its ``__init__`` offers
(``from study.execution import run_study``), imported from the private module behind them on
first use, so that importing one module of a room neither imports the whole room nor makes
an import circle within it."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_face(package: str, names: dict[str, str]) -> tuple[Callable, Callable]:
    """``__getattr__`` and ``__dir__`` for ``package``: each of ``names`` (name -> the
    module of ``package`` that defines it) is looked up there when first asked for."""

    def getattr_(name: str):
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted(names)

    return getattr_, dir_
