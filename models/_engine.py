"""One training engine for every family: epochs over resident tensors, evaluation, callbacks."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ._classifier import ClassifierConfig
from ._codes import CodeTap
from ._config import ConfigBase, check_choice, check_float, check_int
from ._data import Split, batch_indices, batches
from ._device import autocast, prepare_model
from ._graphs import GraphedStep
from ._registry import build_model
from ._tasks import prepare_eval, recon_task, task_for

OPTIMIZERS = ("adam", "adamw", "sgd")
# Evaluation batches: large on a GPU; on a CPU small enough that a conv layer's activations
# stay in the caches (the baseline CNN evaluates 2,500 images in 0.27 s at 128 a batch and
# 0.53 s at 2,048; MLPs differ by milliseconds): benchmark 1, `python -m bench.eval_batch`.
EVAL_BATCH, CPU_EVAL_BATCH = 2048, 128


def eval_batch_size(device: torch.device, train_batch: int = 0) -> int:
    """Evaluation's batch size on ``device``: 128 on a CPU; elsewhere 2,048, or four times the
    training batch if that is larger. Training is unaffected; the metrics' sums group
    differently (the last bits of a mean may differ)."""
    return CPU_EVAL_BATCH if device.type == "cpu" else max(EVAL_BATCH, 4 * train_batch)


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """Optimisation settings shared by every family.

    Attributes:
        optimizer: ``adam``, ``adamw`` or ``sgd`` (momentum 0.9, Nesterov).
        lr: learning rate.
        weight_decay: L2 (adam/sgd) or decoupled (adamw) weight decay.
        batch_size: training batch size; evaluation uses a larger one.
        epochs: epochs of the main phase (classifier pre-training has its own count).
    """

    family = "train"
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 10

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_float("lr", self.lr, 0.0, 10.0, low_open=True)
        check_float("weight_decay", self.weight_decay, 0.0, 1.0)
        check_int("batch_size", self.batch_size, 1, 65536)
        check_int("epochs", self.epochs, 1, 10000)
        self._set("lr", float(self.lr))
        self._set("weight_decay", float(self.weight_decay))


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the message says where and what to try."""


def make_optimizer(params, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """The configured optimiser, with PyTorch's fused step (one kernel for every parameter)
    on CUDA and on the CPU. On the CPU it made an epoch of the small models 17-26% faster
    than the per-parameter loop (BENCHMARKS.md, benchmark 1); its results differ from the
    loop's in the last bits of float32 rounding, and are as repeatable."""
    params = [p for p in params if p.requires_grad]
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {}
    # capturable: Adam's step count stays on the GPU, so the step can be a CUDA graph
    adam = {**fused, "capturable": True} if device.type == "cuda" else fused
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **adam)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **adam)
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay, **fused
    )


class CompiledTask:
    """A task whose loss computation runs through ``torch.compile`` (opt-in: ``compile=True``).

    Compilation costs tens of seconds up front; it pays off on a GPU with long trials, not
    on a CPU (see BENCHMARKS.md).
    """

    def __init__(self, task):
        self.task = task
        self.names, self.metric = task.names, task.metric
        self._fn = torch.compile(task.__call__)

    def __call__(self, model, x, y):
        return self._fn(model, x, y)

    def prepare_eval(self, device: torch.device) -> None:
        prepare_eval(self.task, device)


def _sums(model, task, batches_, device, optimizer):
    total = None
    count = 0
    for x, y in batches_:
        with autocast(device):
            loss, sums = task(model, x, y)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        # Sums stay on the device: no host sync per batch.
        step = torch.stack([sums[k].detach().float() for k in task.names])
        total = step if total is None else total + step
        count += len(y)
    return total, count


def _graphed_sums(graphed: GraphedStep, split, batch_size, generator, optimizer):
    """The batches of ``batches(split, batch_size, generator)``: the full ones replayed as a
    CUDA graph, a smaller last one eagerly."""
    graphed.reset()
    full, last = 0, []
    for index in batch_indices(split, batch_size, generator):
        if len(index) == batch_size:
            graphed(index)
            full += 1
        else:
            last.append(split.batch(index))
    total = graphed.total.clone() if full else None
    t, count = _sums(graphed.model, graphed.task, last, split.device, optimizer)
    if t is not None:
        total = t if total is None else total + t
    return total, full * batch_size + count


def _run_batches(model, task, split, batch_size, device, generator, optimizer=None, graphed=None):
    if graphed is None:
        total, count = _sums(model, task, batches(split, batch_size, generator), device, optimizer)
    else:
        total, count = _graphed_sums(graphed, split, batch_size, generator, optimizer)
    if total is None:
        raise ValueError(f"no batches: the split has {len(split)} images")
    values = (total / count).tolist()  # the one host sync of the epoch
    return dict(zip(task.names, values, strict=True))


def train_epoch(
    model: nn.Module,
    task,
    split: Split,
    optimizer,
    *,
    batch_size: int,
    device: torch.device,
    generator: torch.Generator,
    graphed: GraphedStep | None = None,
) -> dict[str, float]:
    """One shuffled pass over ``split``; returns the epoch's mean metrics. ``graphed`` (CUDA):
    the phase's step as a CUDA graph, built for this model, task, optimiser and split."""
    model.train()
    return _run_batches(model, task, split, batch_size, device, generator, optimizer, graphed)


@torch.inference_mode()
def evaluate(
    model: nn.Module, task, split: Split, *, device: torch.device, batch_size: int | None = None
) -> dict[str, float]:
    """Mean metrics over ``split`` in eval mode, in batches of ``batch_size`` (default:
    ``eval_batch_size(device)``); repeatable (a VAE's sampling noise restarts from its own
    seed for each evaluation)."""
    model.eval()
    prepare_eval(task, device)
    batch_size = batch_size or eval_batch_size(device)
    return _run_batches(model, task, split, batch_size, device, None)


@dataclass
class EpochResult:
    """What the per-epoch callback sees.

    Attributes:
        phase: ``pretrain`` (classifier's reconstruction pre-training) or ``train``.
        epoch: 1-based epoch within the phase.
        train, val: mean metrics of the epoch on the training and validation splits.
        seconds: wall time of the epoch, evaluation included.
        eval_seconds: the part of ``seconds`` spent evaluating on the validation split.
        metric: name of the phase's score (``acc``, ``mse``, ``nelbo``).
        model: the whole model (during pre-training too), e.g. for checkpoints.
        snapshot: returns everything ``fit(resume=...)`` needs to continue after this epoch
            (weights, optimiser, random state, history). Its tensors are the live ones:
            serialise it before training goes on.
        codes: with ``fit(keep_codes=n)``, what ``model.encode`` gave the first ``n``
            validation images in this epoch's evaluation, flattened (else None).
    """

    phase: str
    epoch: int
    train: dict[str, float]
    val: dict[str, float]
    seconds: float
    metric: str
    model: nn.Module = field(repr=False, compare=False, default=None)
    snapshot: Callable[[], dict] = field(repr=False, compare=False, default=None)
    eval_seconds: float = 0.0
    codes: torch.Tensor | None = field(repr=False, compare=False, default=None)

    @property
    def value(self) -> float:
        return self.val[self.metric]

    def record(self) -> dict:
        """The plain-data part (phase, epoch, metrics, time)."""
        return {
            "phase": self.phase,
            "epoch": self.epoch,
            "train": self.train,
            "val": self.val,
            "seconds": self.seconds,
            "metric": self.metric,
            "eval_seconds": self.eval_seconds,
        }


@dataclass
class FitResult:
    model: nn.Module
    history: list[EpochResult] = field(default_factory=list)

    @property
    def last(self) -> EpochResult:
        return self.history[-1]


def _check_finite(result: EpochResult, lr: float) -> None:
    for where, metrics in (("train", result.train), ("validation", result.val)):
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:
            raise NonFiniteLossError(
                f"non-finite {where} {', '.join(f'{k}={v}' for k, v in bad.items())} in "
                f"{result.phase} epoch {result.epoch}; the learning rate (lr={lr:g}) is "
                "probably too high"
            )


def fit(
    model_config,
    train_config: TrainConfig,
    train: Split,
    val: Split,
    *,
    device: torch.device,
    seed: int = 0,
    on_epoch: Callable[[EpochResult], None] | None = None,
    resume: dict | None = None,
    compile: bool = False,
    cuda_graphs: bool = True,
    keep_codes: int = 0,
) -> FitResult:
    """Build ``model_config`` and train it; ``on_epoch`` is called after every epoch.

    Classifiers with ``freeze`` in (frozen, finetune) first pre-train their autoencoder on
    reconstruction for ``pretrain_epochs`` (phase ``pretrain``); every family then trains
    for ``train_config.epochs`` (phase ``train``). The callback may raise to stop training
    (the study's pruner does); a NaN or infinite loss raises ``NonFiniteLossError``.

    ``resume`` is an ``EpochResult.snapshot()``: training continues after that epoch with
    the same weights, optimiser state and random state, as if it had never stopped.
    ``compile=True`` runs each loss computation through ``torch.compile``. On CUDA each
    phase's full batches replay one CUDA graph of the whole step (``cuda_graphs=False``: an
    eager step, as on the CPU). Training on the CPU is reproducible for a given ``seed``.
    ``keep_codes=n`` keeps each evaluation's codes of the first ``n`` validation images
    (``EpochResult.codes``, for pictures; not with ``compile``).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = prepare_model(build_model(model_config), device)
    result = FitResult(model)
    start_phase, start_epoch = 0, 1
    if resume is not None:
        model.load_state_dict(resume["model"])
        generator.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in resume:  # a VAE's noise, dropout
            torch.cuda.set_rng_state(resume["cuda_rng"], device)
        result.history = [EpochResult(**h) for h in resume["history"]]
        start_phase, start_epoch = resume["phase_index"], resume["epoch"] + 1
    tap = CodeTap(model, keep_codes) if keep_codes and not compile else None
    run = _Run(model, train_config, train, val, device, generator, result, on_epoch, tap)
    try:
        _train(run, model_config, (start_phase, start_epoch), resume, compile, cuda_graphs)
    finally:
        if tap is not None:  # nothing of it stays on the model (saved, pickled, exported)
            tap.remove()
    return result


def _train(run: _Run, model_config, start: tuple[int, int], resume, compile, cuda_graphs) -> None:
    """Every phase's epochs from ``start`` (phase index, epoch)."""
    model, train_config, device, train = run.model, run.train_config, run.device, run.train
    start_phase, start_epoch = start
    for index, (phase, module, task, epochs) in enumerate(
        phases(model_config, model, train_config)
    ):
        if index < start_phase:
            continue
        if phase == "train" and getattr(model_config, "freeze", None) == "frozen":
            model.freeze_encoder()  # a latent classifier's frozen encoder
        optimizer = make_optimizer(module.parameters(), train_config, device)
        first = start_epoch if index == start_phase else 1
        if 1 < first <= epochs:
            optimizer.load_state_dict(resume["optimizer"])
        task = CompiledTask(task) if compile else task
        graphed = None
        if device.type == "cuda" and cuda_graphs and not compile:
            graphed = GraphedStep(module, task, optimizer, train, train_config.batch_size)
        for epoch in range(first, epochs + 1):
            run.epoch(index, phase, epoch, module, task, optimizer, graphed)


def phases(model_config, model: nn.Module, train_config: TrainConfig) -> list[tuple]:
    """(phase, module trained, task, epochs): pre-training (some classifiers), then train."""
    out = []
    if isinstance(model_config, ClassifierConfig) and model_config.pretrains:
        pretrain_task = recon_task(model_config.encoder)
        out.append(("pretrain", model.autoencoder, pretrain_task, model_config.pretrain_epochs))
    out.append(("train", model, task_for(model_config), train_config.epochs))
    return out


@dataclass
class _Run:
    """What every epoch of one ``fit`` shares."""

    model: nn.Module
    train_config: TrainConfig
    train: Split
    val: Split
    device: torch.device
    generator: torch.Generator
    result: FitResult
    on_epoch: Callable[[EpochResult], None] | None
    tap: CodeTap | None = None

    def epoch(self, index, phase, epoch, module, task, optimizer, graphed=None) -> None:
        cfg = self.train_config
        start = time.perf_counter()
        train_metrics = train_epoch(
            module,
            task,
            self.train,
            optimizer,
            batch_size=cfg.batch_size,
            device=self.device,
            generator=self.generator,
            graphed=graphed,
        )
        eval_batch = eval_batch_size(self.device, cfg.batch_size)
        trained = time.perf_counter()
        if self.tap is not None:
            self.tap.start()
        val_metrics = evaluate(module, task, self.val, device=self.device, batch_size=eval_batch)
        codes = self.tap.take() if self.tap is not None else None
        end = time.perf_counter()
        result = EpochResult(
            phase,
            epoch,
            train_metrics,
            val_metrics,
            end - start,
            task.metric,
            self.model,
            eval_seconds=end - trained,
            codes=codes,
        )
        if self.result.history:  # only the last epoch's codes are kept
            self.result.history[-1].codes = None
        self.result.history.append(result)
        _check_finite(result, cfg.lr)
        result.snapshot = functools.partial(self.snapshot, index, epoch, optimizer)
        if self.on_epoch is not None:
            self.on_epoch(result)

    def snapshot(self, index, epoch, optimizer) -> dict:
        cuda = self.device.type == "cuda"
        return {
            "phase_index": index,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            **({"cuda_rng": torch.cuda.get_rng_state(self.device)} if cuda else {}),
            "history": [h.record() for h in self.result.history],
        }
