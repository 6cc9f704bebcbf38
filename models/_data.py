"""The data the engine trains on: a split held as two resident tensors, batched by slicing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class Split:
    """Images (uint8, [N, 1, 28, 28]) and labels (int64, [N]) held as two tensors.

    Batches are index slices of these tensors, scaled to [0, 1] on the fly, so there is no
    per-sample Python work in the training loop.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dim() == 3:
            self.images = self.images.unsqueeze(1)
        if self.images.shape[1:] != (1, 28, 28) or self.images.dtype != torch.uint8:
            raise ValueError(
                f"images must be uint8 [N, 1, 28, 28], got "
                f"{self.images.dtype} {list(self.images.shape)}"
            )
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def head(self, n: int | None) -> Split:
        """The first ``n`` examples (all when ``n`` is None)."""
        return self if n is None else Split(self.images[:n], self.labels[:n])

    def batch(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """The images at ``index`` (a slice or an index tensor) scaled to [0, 1], and their
        labels."""
        return self.images[index].float().div_(255.0), self.labels[index]


def batch_indices(
    split: Split, batch_size: int, generator: torch.Generator | None
) -> Iterator[torch.Tensor | slice]:
    """Each batch's indices: shuffled index tensors on the split's device (a generator given)
    or slices in order."""
    n = len(split)
    if generator is not None:
        order = torch.randperm(n, generator=generator).to(split.device, non_blocking=True)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        if generator is not None and stop - start < 2 <= n:
            break  # a 1-image batch breaks BatchNorm in training mode
        yield slice(start, stop) if generator is None else order[start:stop]


def batches(
    split: Split, batch_size: int, generator: torch.Generator | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled (when a generator is given) index slices, scaled to [0, 1] on the fly."""
    for index in batch_indices(split, batch_size, generator):
        yield split.batch(index)
