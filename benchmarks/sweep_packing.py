#!/usr/bin/env python
"""Packing small trials on a GPU: trials per hour and GPU utilisation, 1 vs 0.25 GPU per trial.

Runs the same short ET sweep twice on a CUDA machine, once with ``--gpus-per-trial 1`` and
once with ``0.25`` (four trials share each GPU), samples the GPUs' utilisation with
``nvidia-smi`` once a second while each sweep runs, and prints a table and writes JSON::

    python benchmarks/sweep_packing.py --num-samples 16 --max-epochs 3 --subset 5000

The sweeps train on ``--subset`` QM9 molecules drawn at random, the same ones for every case.
``--space`` picks the search space: the model kind's full one (the default) or the narrowed
space of the ``laptop`` or ``smoke`` sweep profile (:mod:`molgnn.tune.profiles`).

``--device cpu`` (the default where torch sees no CUDA device) runs the sweep on the CPU with
no GPUs in Ray, one case of ``0`` GPUs per trial, and reports trials per hour with no GPU
columns; a quick check that the harness works::

    python benchmarks/sweep_packing.py --device cpu --space smoke --num-samples 2 \
        --max-epochs 1 --subset 200

``--device cuda`` on a machine without CUDA says so and exits with status 2 without running
anything.
"""

from __future__ import annotations

import argparse
import contextlib
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
from _harness import Column, cpu_model, machine_meta, print_table, timed, write_result

SKIPPED = 2
#: ``--space`` choice -> sweep profile whose search space it uses (``full``: the kind's own).
SPACES = {"full": None, "laptop": "laptop", "smoke": "smoke"}


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

    def summary(self) -> dict[str, float | None]:
        """Mean utilisation and peak memory over the samples (``None`` without samples)."""
        if not self.samples:
            return {"gpu_util_mean_pct": None, "gpu_mem_peak_mib": None}
        return {
            "gpu_util_mean_pct": statistics.fmean(statistics.fmean(s[1]) for s in self.samples),
            "gpu_mem_peak_mib": max(max(s[2]) for s in self.samples),
        }


def sweep_space(model: str, space: str) -> dict[str, Any] | None:
    """The search space that ``--space`` names for ``model`` (``None``: the kind's default)."""
    if SPACES[space] is None:
        return None
    from molgnn.models import model_config
    from molgnn.tune import profile

    kind = str(model_config(model).to_dict()["kind"])
    return dict(profile(kind, SPACES[space])["space"])


def run_case(args: argparse.Namespace, gpus_per_trial: float, storage: Path) -> dict[str, Any]:
    from molgnn.tune import SweepConfig, run_sweep

    cuda = args.device == "cuda"
    train = {
        "model": args.model,
        "target": "gap",
        "subset": args.subset,
        "subset_seed": args.seed,  # the QM9 subset drawn with --seed
        "data_root": args.data_root,
        "epochs": args.max_epochs,
        "seed": args.seed,
    }
    config = SweepConfig(
        train=train,
        space=sweep_space(args.model, args.space),
        num_samples=args.num_samples,
        grace_period=args.max_epochs,  # no early stopping: every trial does the same work
        gpus_per_trial=gpus_per_trial,
        cpus_per_trial=args.cpus_per_trial,
        storage_path=str(storage),
        name=f"packing_{gpus_per_trial:g}",
        address=args.address,
        num_cpus=args.num_cpus if args.address is None else None,
        num_gpus=None if cuda or args.address is not None else 0,  # CPU: Ray sees no GPUs
        export=False,
        verbose=0,
    )
    with GpuSampler() if cuda else contextlib.nullcontext() as sampler:
        result, elapsed = timed(lambda: run_sweep(config))
    done = int((result.table["epochs"] >= args.max_epochs).sum())
    gpu = (
        sampler.summary()
        if sampler is not None
        else {"gpu_util_mean_pct": None, "gpu_mem_peak_mib": None}
    )
    return {
        "gpus_per_trial": gpus_per_trial,
        "cpus_per_trial": args.cpus_per_trial,
        "trials": len(result.table),
        "trials_finished": done,
        "elapsed_s": elapsed,
        "trials_per_hour": 3600.0 * done / elapsed,
        "best_val_mae_mev": float(result.table["best_val_mae_mev"].min()),
        **gpu,
    }


def ray_auth_mode() -> str:
    """``"token"`` or ``"disabled"``: the authentication of the Ray cluster the sweeps used.

    Ray decides it once per process (``RAY_AUTH_MODE``; a local ``ray.init`` turns tokens on
    by default), so asking after the sweeps gives the mode they ran with.
    """
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
    except ImportError:  # the module moved in another Ray version
        return "unknown"
    return "token" if is_token_auth_enabled() else "disabled"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="et-small", help="model preset (default: et-small)")
    parser.add_argument(
        "--space",
        default="full",
        choices=list(SPACES),
        help="search space: the kind's full one or a profile's narrowed one (default: full)",
    )
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument(
        "--subset", type=int, default=5000, help="QM9 molecules, drawn at random (default: 5000)"
    )
    parser.add_argument("--data-root", default=None, help="QM9 folder (default: <data root>/qm9)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="subset, sampler, training")
    parser.add_argument("--address", default=None, help="Ray cluster to use (default: local)")
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        choices=["cuda", "cpu"],
        help="where the trials train (default: cuda if torch sees it, else cpu)",
    )
    parser.add_argument(
        "--cases",
        type=float,
        nargs="+",
        default=None,
        help="GPUs per trial, one sweep each (default: 1 0.25 on cuda, 0 on cpu)",
    )
    parser.add_argument("--json", default="sweep_packing.json", help="output JSON file")
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    if args.cases is None:
        args.cases = [1.0, 0.25] if cuda else [0.0]
    if not cuda and any(c != 0 for c in args.cases):
        parser.error(f"--device cpu runs with 0 GPUs per trial only, got --cases {args.cases}")
    if cuda and any(not c > 0 for c in args.cases):
        parser.error(f"--device cuda needs --cases above 0 GPUs per trial, got {args.cases}")
    from molgnn.data import qm9_root

    args.data_root = str(qm9_root(args.data_root))  # one folder for every trial

    if cuda and not torch.cuda.is_available():
        print(
            "sweep_packing.py --device cuda needs CUDA: torch sees no CUDA device on this "
            "machine, so there are no GPUs to pack trials on. Nothing was run "
            "(--device cpu runs the sweep on the CPU).",
            file=sys.stderr,
        )
        return SKIPPED

    meta = machine_meta("cuda" if cuda else "cpu")
    rows = []
    storage = Path(tempfile.mkdtemp(prefix="molgnn-packing-"))
    try:
        for gpus in args.cases:
            rows.append(run_case(args, gpus, storage))
    finally:
        shutil.rmtree(storage, ignore_errors=True)

    print_table(
        rows,
        [
            Column("gpus_per_trial", "GPU/trial", "g"),
            Column("cpus_per_trial", "CPU/trial", "g"),
            Column("trials_finished", "trials", "d"),
            Column("elapsed_s", "time s", ".1f", width=8),
            Column("trials_per_hour", "trials/h", ".1f"),
            Column("gpu_util_mean_pct", "GPU util %", ".1f"),
            Column("gpu_mem_peak_mib", "peak MiB", ".0f"),
            Column("best_val_mae_mev", "best meV", ".2f"),
        ],
        title=f"{args.device}: {args.model}, space {args.space}, {args.num_samples} trials",
    )
    write_result(
        args.json,
        "sweep_packing",
        meta,
        device_type=args.device,
        device=torch.cuda.get_device_name(0) if cuda else cpu_model(),
        num_gpus=torch.cuda.device_count() if cuda else 0,
        ray_auth_mode=ray_auth_mode(),
        settings=vars(args),
        results=rows,
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
