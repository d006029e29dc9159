"""The arithmetic bound of a model's matrix products (GEMMs) on this machine.

:func:`gemm_flops` counts the floating-point operations of the matrix products (``mm``,
``addmm``, ``bmm``, ``baddbmm``, and what ``matmul`` and ``linear`` lower to) that a call runs,
with torch's ``FlopCounterMode`` (forward and, if the call runs it, backward);
:func:`gemm_rate` measures the FLOP/s of one large float32 GEMM on a device with the current
thread count. A model that did nothing but its GEMMs, at that rate, would reach
``rate / flops_per_molecule`` molecules/s: the bound a throughput row is compared with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from .timing import sync

__all__ = ["GEMM_OPS", "gemm_flops", "gemm_rate"]

#: The aten operators counted as GEMMs.
GEMM_OPS = ("mm", "addmm", "bmm", "baddbmm")


def gemm_flops(fn: Callable[[], Any]) -> int:
    """The FLOPs of the GEMMs that ``fn()`` runs (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    counts = counter.get_flop_counts().get("Global", {})
    return int(sum(v for op, v in counts.items() if str(op).split(".")[-1] in GEMM_OPS))


def gemm_rate(
    device: torch.device | str = "cpu", size: int = 1024, repeats: int = 5, warmup: int = 2
) -> float:
    """FLOP/s of a float32 ``[size, size] @ [size, size]`` on ``device`` (the best of
    ``repeats`` timed products, with the current torch thread count)."""
    if size < 1 or repeats < 1 or warmup < 0:
        raise ValueError(
            f"need size, repeats >= 1 and warmup >= 0, got {size}, {repeats}, {warmup}"
        )
    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    out = torch.empty(size, size, device=device)
    for _ in range(warmup):
        torch.mm(a, b, out=out)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best
