"""Keep freed memory in the process on glibc, so training steps stop paying for page faults.

PyTorch's CPU tensors come from ``malloc``. glibc hands blocks above its mmap threshold (a few MB to
32 MB) back to the kernel when they are freed, and trims the top of the heap, so every training
step maps fresh pages for its large temporaries and the kernel zeroes them on first touch: on the
ET's paper configuration about half of all CPU time goes to the kernel.
[`tune_malloc`][molgnn.training.tune_malloc] asks glibc to keep freed memory for reuse instead
(``mallopt``), the runtime equivalent of
``MALLOC_TRIM_THRESHOLD_``/``MALLOC_TOP_PAD_``/``MALLOC_MMAP_MAX_``. The price: the process keeps
its peak memory until it exits. [`Trainer`][molgnn.training.Trainer] calls it on the CPU unless
``TrainConfig.tune_malloc`` is off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["tune_malloc"]

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
_done = False


def tune_malloc(top_pad_mb: int = 256) -> bool:
    """Make glibc keep freed memory for reuse (idempotent, process-wide).

    Args:
        top_pad_mb: Extra memory (MB) glibc reserves each time the heap grows.

    Returns:
        ``True`` if glibc accepted the settings (or already had them), ``False`` where there is
        no glibc (macOS, Windows, musl), which is left unchanged.
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = all(
        mallopt(param, value) == 1
        for param, value in (
            (_M_TRIM_THRESHOLD, 2**31 - 1),  # never give the top of the heap back
            (_M_TOP_PAD, top_pad_mb << 20),  # grow the heap in large steps
            (_M_MMAP_MAX, 0),  # large blocks from the heap too, where they are reused
        )
    )
    _done = ok
    return ok
