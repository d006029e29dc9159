#!/usr/bin/env python
"""Packing small trials on a GPU: trials per hour and GPU utilisation, 1 vs 0.25 GPU per trial.

Runs the same short ET sweep twice on a CUDA machine, once with ``--gpus-per-trial 1`` and
once with ``0.25`` (four trials share each GPU), samples the GPUs' utilisation with
``nvidia-smi`` once a second while each sweep runs, and prints a table and writes JSON::

    python benchmarks/sweep_packing.py --num-samples 16 --max-epochs 3 --subset 5000

It needs CUDA: on a machine where torch sees no CUDA device it says so and exits with
status 2 without running anything.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

SKIPPED = 2


class GpuSampler:
    """Samples every GPU's utilisation (%) and memory (MiB) with nvidia-smi in a thread."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.samples: list[tuple[float, list[float], list[float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _query(self) -> tuple[list[float], list[float]] | None:
        try:
            out = subprocess.run(
                [
                    "nvidia-smi",
                    "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits",
                ],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        util, mem = [], []
        for line in out.strip().splitlines():
            u, m = (float(v) for v in line.split(","))
            util.append(u)
            mem.append(m)
        return util, mem

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = self._query()
            if sample is not None:
                self.samples.append((time.time(), *sample))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {"gpu_util_mean_pct": float("nan"), "gpu_mem_peak_mib": float("nan")}
        return {
            "gpu_util_mean_pct": statistics.fmean(statistics.fmean(s[1]) for s in self.samples),
            "gpu_mem_peak_mib": max(max(s[2]) for s in self.samples),
        }


def run_case(args: argparse.Namespace, gpus_per_trial: float, storage: Path) -> dict[str, Any]:
    from molgnn.tune import SweepConfig, run_sweep

    config = SweepConfig(
        model=args.model,
        target="gap",
        subset=args.subset,
        num_samples=args.num_samples,
        max_epochs=args.max_epochs,
        grace_period=args.max_epochs,  # no early stopping: every trial does the same work
        gpus_per_trial=gpus_per_trial,
        cpus_per_trial=args.cpus_per_trial,
        storage_path=str(storage),
        name=f"packing_{gpus_per_trial:g}",
        seed=args.seed,
        address=args.address,
        export=False,
        verbose=0,
    )
    with GpuSampler() as sampler:
        start = time.time()
        result = run_sweep(config)
        elapsed = time.time() - start
    done = int((result.table["epochs"] >= args.max_epochs).sum())
    return {
        "gpus_per_trial": gpus_per_trial,
        "trials": len(result.table),
        "trials_finished": done,
        "elapsed_s": elapsed,
        "trials_per_hour": 3600.0 * done / elapsed,
        "best_val_mae_mev": float(result.table["best_val_mae_mev"].min()),
        **sampler.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="et-small", help="model preset (default: et-small)")
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--subset", type=int, default=5000)
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--address", default=None, help="Ray cluster to use (default: local)")
    parser.add_argument("--cases", type=float, nargs="+", default=[1.0, 0.25])
    parser.add_argument("--json", default="sweep_packing.json", help="output JSON file")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print(
            "sweep_packing.py needs CUDA: torch sees no CUDA device on this machine, so there "
            "are no GPUs to pack trials on. Nothing was run.",
            file=sys.stderr,
        )
        return SKIPPED

    rows = []
    storage = Path(tempfile.mkdtemp(prefix="molgnn-packing-"))
    try:
        for gpus in args.cases:
            rows.append(run_case(args, gpus, storage))
    finally:
        shutil.rmtree(storage, ignore_errors=True)

    header = f"{'GPU/trial':>9} {'trials':>6} {'time s':>8} {'trials/h':>9} {'GPU util %':>10} "
    header += f"{'peak MiB':>9} {'best meV':>9}"
    print(header)
    for r in rows:
        print(
            f"{r['gpus_per_trial']:>9g} {r['trials_finished']:>6d} {r['elapsed_s']:>8.1f} "
            f"{r['trials_per_hour']:>9.1f} {r['gpu_util_mean_pct']:>10.1f} "
            f"{r['gpu_mem_peak_mib']:>9.0f} {r['best_val_mae_mev']:>9.2f}"
        )
    report = {
        "benchmark": "sweep_packing",
        "device": torch.cuda.get_device_name(0),
        "num_gpus": torch.cuda.device_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "settings": vars(args),
        "results": rows,
    }
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
