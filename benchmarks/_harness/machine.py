"""What a benchmark records about the machine it ran on: hardware, versions, threads and load.

On Linux the probes read ``/proc`` (``cpuinfo``, ``loadavg``, ``uptime``, ``self/status``);
elsewhere they fall back to :mod:`platform`, :func:`os.getloadavg` and :mod:`resource`, or
record ``None``.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "cpu_model",
    "load",
    "machine_meta",
    "memory_mb",
    "memory_note",
    "package_version",
    "peak_memory_mb",
    "peak_rss_mb",
    "reset_peak_memory",
    "rss_mb",
]


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else what :mod:`platform` says."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or ``None`` if it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    with contextlib.suppress(PackageNotFoundError):
        return version(dist)
    return None


def load() -> dict[str, Any]:
    """The machine's load now: 1, 5 and 15 minute load averages, runnable/total tasks, and
    seconds since boot (``None`` for what this system does not tell)."""
    averages: list[float] | None = None
    tasks: str | None = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path("/proc/loadavg").read_text().split()
        averages, tasks = [float(v) for v in fields[:3]], fields[3]
    if averages is None and hasattr(os, "getloadavg"):
        with contextlib.suppress(OSError):
            averages = list(os.getloadavg())
    uptime: float | None = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    return {"load_average": averages, "tasks_running_total": tasks, "uptime_s": uptime}


def _usable_cpus() -> int | None:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def machine_meta(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What every result file's ``meta`` starts with: date, device, CPU, versions, torch
    threads and the load when the benchmark started (``load_at_start``)."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    cpu = cpu_model()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else cpu,
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "usable_cpus": _usable_cpus(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": package_version("torch_geometric"),
        "torch_scatter_installed": importlib.util.find_spec("torch_scatter") is not None,
        "molgnn": package_version("molgnn"),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "load_at_start": load(),
    }


def _proc_status_mb(field: str) -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


def rss_mb() -> float:
    """This process's resident set size in MB (Linux), else its peak so far."""
    current = _proc_status_mb("VmRSS")
    return peak_rss_mb() if current is None else current


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB.

    On Linux this is ``VmHWM``, the high-water mark of the process's own memory: ``ru_maxrss``
    survives ``execve`` (the kernel keeps the larger of the old and new image's peaks), so in a
    worker started by a parent that already holds torch it would report the parent's peak.
    """
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 / (1024 if sys.platform == "darwin" else 1)


def memory_note(device: torch.device | str) -> str:
    """What :func:`memory_mb` and :func:`peak_memory_mb` measure on ``device``."""
    if torch.device(device).type == "cuda":
        return "torch.cuda.max_memory_allocated from the end of setup (MB)"
    return "peak RSS (VmHWM) of the process (MB)"


def memory_mb(device: torch.device | str) -> float:
    """Memory in use now: CUDA memory allocated by torch, or the process's RSS on a CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return rss_mb()


def reset_peak_memory(device: torch.device | str) -> None:
    """Start :func:`peak_memory_mb` afresh (CUDA; a process's peak RSS cannot be reset)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device | str) -> float:
    """Peak memory: CUDA memory allocated since :func:`reset_peak_memory`, or peak RSS."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()
