"""The codes an evaluation pass computes anyway, kept for pictures of the latent space."""

from __future__ import annotations

import torch
import torch.nn as nn


class CodeTap:
    """Keeps the codes ``model.encode`` gives the first ``n`` images of an evaluation pass,
    from a forward hook on the layer that produces them (``model.code_layer``), so a
    picture of the latent space needs no second pass over those images.

    ``start()`` before the pass, ``take()`` after it (the codes, ``[n, features]``, or
    None if the pass computed none); ``remove()`` once done, before the model is saved or
    exported. Between passes (training) the hook keeps nothing.
    """

    def __init__(self, model: nn.Module, n: int):
        self.n = n
        self.parts: list[torch.Tensor] | None = None  # None: not in a pass
        self.handle = model.code_layer.register_forward_hook(self._keep)

    def _keep(self, module, args, output: torch.Tensor) -> None:
        if self.parts is None:
            return
        have = sum(len(p) for p in self.parts)
        if have < self.n:
            self.parts.append(output[: self.n - have].detach().flatten(1).clone())

    def start(self) -> None:
        self.parts = []

    def take(self) -> torch.Tensor | None:
        parts, self.parts = self.parts, None
        return torch.cat(parts) if parts else None

    def remove(self) -> None:
        self.handle.remove()
