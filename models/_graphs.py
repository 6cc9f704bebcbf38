"""A whole training step recorded once as a CUDA graph and replayed for every full batch.

A small model's eager step on a GPU is bound by the CPU launching its ~100 kernels one at a
time (~3 ms a step on the H100 machine, whatever the batch size); replayed as one graph the
same step takes ~0.3 ms (BENCHMARKS.md, benchmark 1). The graph holds everything between
two batches: the gather of the batch from the resident split, forward, loss, backward, the
optimiser's update and the running sums of the epoch's metrics. Only its index tensor
changes between replays, so batches are exactly the eager loop's.
"""

from __future__ import annotations

import warnings

import torch

WARMUP_STEPS = 3  # eager steps on a side stream first: lazy state, cuBLAS workspaces


class GraphedStep:
    """Training steps of one phase (one model, task, optimiser, split and batch size).

    Call it with a full batch's indices (on the device); the first ``WARMUP_STEPS`` calls
    run eagerly, the next records the graph and replays it. ``total`` holds the sums of the
    task's metrics over the steps since the last ``reset()``. A step that cannot be recorded
    (an operation CUDA graphs do not support) runs eagerly from then on, with one warning.
    """

    def __init__(self, model, task, optimizer, split, batch_size: int):
        self.model, self.task, self.optimizer, self.split = model, task, optimizer, split
        device = split.images.device
        self.index = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.total = torch.zeros(len(task.names), device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager = False
        self.steps = 0

    def reset(self) -> None:
        self.total.zero_()

    def _step(self) -> None:
        images, labels = self.split.batch(self.index)
        # No autocast cache: cached bf16 weights would go stale between replays.
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            loss, sums = self.task(self.model, images, labels)
        loss.backward()
        self.optimizer.step()
        self.total.add_(torch.stack([sums[k].detach().float() for k in self.task.names]))

    def __call__(self, index: torch.Tensor) -> None:
        self.index.copy_(index)
        with torch.cuda.device(self.index.device):  # streams, capture, replay: the model's GPU
            if self.graph is not None:
                self.graph.replay()
            else:
                self._record_or_warm_up()

    def _record_or_warm_up(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.eager or self.steps < WARMUP_STEPS:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._step()
            torch.cuda.current_stream().wait_stream(side)
            self.steps += 1
            return
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: a records thread using CUDA meanwhile does not break the capture
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self._step()
        except RuntimeError as e:
            warnings.warn(f"training without a CUDA graph: {str(e)[:200]}", stacklevel=3)
            self.eager = True
            self.optimizer.zero_grad(set_to_none=True)
            self._step()  # recording ran nothing: this batch still needs its step
            return
        self.graph = graph
        graph.replay()
