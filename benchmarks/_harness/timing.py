"""The timing loop every throughput row is measured with.

A *training step* is forward + MSE loss (in float32) + backward + an AdamW step, with the
optimiser of :func:`make_optimizer` (torch's fused AdamW kernel wherever torch has one for the
device, as molgnn's Trainer uses); an *inference step* is a forward pass in eval mode under
``torch.no_grad``. Each phase runs ``warmup`` untimed steps, then ``repeats`` timed runs over the
same ``steps`` batches, and reports molecules per second of each run and their median.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

from .molecules import Batch

__all__ = [
    "LR",
    "Throughput",
    "Timing",
    "fused_adamw_supported",
    "make_optimizer",
    "measure_throughput",
    "model_output",
    "seconds_per_call",
    "sync",
    "timed",
]

T = TypeVar("T")

#: The learning rate of every timed training step (the value does not change the work done).
LR = 1e-4
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Timing:
    """How a row is timed: ``warmup`` untimed batches, then ``repeats`` runs of ``steps``."""

    warmup: int = 3
    steps: int = 20
    repeats: int = 3

    def __post_init__(self) -> None:
        if self.steps < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError(
                f"steps and repeats must be positive and warmup non-negative, got steps="
                f"{self.steps}, repeats={self.repeats}, warmup={self.warmup}"
            )

    @property
    def batches(self) -> int:
        """How many batches a row needs: the warm-up ones, then the timed ones."""
        return self.warmup + self.steps


@dataclass(frozen=True)
class Throughput:
    """Molecules per second of every timed run of each phase."""

    train: list[float]
    infer: list[float]
    atoms_per_step: float
    optimizer: str

    def to_dict(self) -> dict[str, Any]:
        """The row keys: medians, every repeat, spreads ((max - min) / median)."""
        out: dict[str, Any] = {}
        for phase, rates in (("train", self.train), ("infer", self.infer)):
            median = statistics.median(rates)
            out[f"{phase}_mol_per_s"] = median
            out[f"{phase}_repeats_mol_per_s"] = list(rates)
            out[f"{phase}_spread"] = (max(rates) - min(rates)) / median
        return {**out, "atoms_per_step": self.atoms_per_step, "optimizer": self.optimizer}


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that a clock read covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fused_adamw_supported(device: torch.device | str) -> bool:
    """Whether torch has a fused AdamW kernel for ``device``'s type."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # a torch without the list: the two devices every recent torch fuses on
        return torch.device(device).type in ("cpu", "cuda")
    return torch.device(device).type in _get_fused_kernels_supported_devices()


def make_optimizer(model: torch.nn.Module, lr: float = LR) -> torch.optim.AdamW:
    """The optimiser of every benchmark: AdamW, fused where the parameters' device has the
    kernel (molgnn's Trainer does the same)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    fused = fused_adamw_supported(params[0].device)
    return torch.optim.AdamW(params, lr=lr, fused=True if fused else None)


def describe_optimizer(opt: torch.optim.Optimizer) -> str:
    fused = bool(opt.defaults.get("fused"))
    return f"{type(opt).__name__}(lr={opt.defaults['lr']:g}, fused={fused})"


def model_output(out: Tensor | tuple[Tensor, ...]) -> Tensor:
    """The prediction of a model that returns it alone or first in a tuple (torchmd-net)."""
    return out[0] if isinstance(out, tuple) else out


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager[Any]:
    if amp not in AMP_DTYPES:
        raise ValueError(f"unknown amp {amp!r}; valid: {', '.join(AMP_DTYPES)}")
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _timed_runs(
    step: Callable[[int], None],
    timing: Timing,
    molecules: int,
    device: torch.device,
    log: Callable[[str], None] | None,
    phase: str,
) -> list[float]:
    for i in range(timing.warmup):
        step(i)
    sync(device)
    rates = []
    for r in range(timing.repeats):
        start = time.perf_counter()
        for i in range(timing.warmup, timing.batches):
            step(i)
        sync(device)
        rates.append(molecules / (time.perf_counter() - start))
        if log is not None:
            log(f"    {phase} repeat {r + 1}/{timing.repeats}: {rates[-1]:.1f} mol/s")
    return rates


def measure_throughput(
    model: torch.nn.Module,
    batches: Sequence[Batch],
    timing: Timing,
    forward: Callable[[int], Tensor] | None = None,
    amp: str = "none",
    log: Callable[[str], None] | None = None,
) -> Throughput:
    """Time training, then inference, of ``model`` on ``batches`` (on the model's device).

    Args:
        model: The model; it is trained (its weights change) by the training phase.
        batches: At least ``timing.batches`` batches: the first ``timing.warmup`` warm up,
            the next ``timing.steps`` are timed.
        timing: Warm-up, timed steps and repeats.
        forward: ``forward(i)``, the prediction ``[B, 1]`` on batch ``i`` (default:
            ``model(z, pos, batch)``, its first element for a tuple).
        amp: ``"bf16"`` runs forward passes under bfloat16 autocast (default: ``"none"``).
        log: Called with a line after each timed repeat (default: silent).
    """
    if len(batches) < timing.batches:
        raise ValueError(f"timing needs {timing.batches} batches, got {len(batches)}")
    device = batches[0].z.device
    if forward is None:

        def forward(i: int) -> Tensor:
            b = batches[i]
            return model_output(model(b.z, b.pos, b.batch))

    opt = make_optimizer(model)

    def train_step(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        with _autocast(device, amp):
            pred = forward(i)
        loss = torch.nn.functional.mse_loss(pred.float(), batches[i].y)
        loss.backward()
        opt.step()

    def infer_step(i: int) -> None:
        with _autocast(device, amp):
            forward(i)

    timed = batches[timing.warmup : timing.batches]
    molecules = sum(b.num_molecules for b in timed)
    model.train()
    train = _timed_runs(train_step, timing, molecules, device, log, "train")
    model.eval()
    with torch.no_grad():
        infer = _timed_runs(infer_step, timing, molecules, device, log, "infer")
    atoms = sum(b.z.numel() for b in timed) / timing.steps
    return Throughput(train, infer, atoms, describe_optimizer(opt))


def seconds_per_call(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Mean wall-clock seconds of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and the wall-clock seconds it took (for a one-off step: no warm-up, one run)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start
