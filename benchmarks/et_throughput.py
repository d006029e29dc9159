#!/usr/bin/env python
"""Training and inference throughput (molecules/s) of molgnn's ET and pooled GNN, optionally beside
torchmd-net 3.x, on the same random QM9 molecules, configuration and thread count, in one run.

    python benchmarks/et_throughput.py                       # small config, molgnn only
    python benchmarks/et_throughput.py --compare             # + torchmd-net, same weights, ratios
    python benchmarks/et_throughput.py --configs small paper --models et pooled --compare
    python benchmarks/et_throughput.py --compare --compile --edges cached --backends torch
    python benchmarks/et_throughput.py --compare --steps 2 --warmup 1 --repeats 1   # smoke run

    # A machine without QM9 (e.g. a GPU box): draw the molecules here, benchmark there.
    python benchmarks/et_throughput.py --configs small paper --save-molecules mols.pt
    python benchmarks/et_throughput.py --configs small paper --molecules mols.pt --compare \\
        --device cuda --amp bf16

A training step is forward + MSE loss + backward + AdamW (torch's fused kernel, in every row);
inference is a forward pass in eval mode under ``torch.no_grad``. Each row runs ``--warmup``
untimed steps, then ``--repeats`` timed runs of ``--steps`` batches, and reports the median (all
repeats are kept in the JSON).

Rows (one per implementation and variant) each run in a fresh worker process (this script,
re-invoked with a hidden ``--worker`` argument), so that memory is measured per row: the peak RSS
of the worker and its RSS after setup on CPU, ``torch.cuda.max_memory_allocated`` from the end of
setup on CUDA. All rows of a configuration use the same batches. molgnn rows:

* scatter backend: every backend in ``molgnn.nn.scatter.available_backends()`` (``--backends``);
* ``--edges``: ``step`` builds the radius graph inside every forward pass (as torchmd-net always
  does); ``cached`` precomputes it once per molecule (5 Å, at most 64 neighbours, no self loops)
  and passes ``edge_index`` to the model;
* ``--compile`` adds rows with ``model.compile()`` (``torch.compile`` of the per-edge hot path),
  with torch-scatter when it is available.

With ``--compare`` torchmd-net's ET (``output_model="Scalar"``, which torchmd-net turns into its
``EquivariantScalar`` head for the ET; sum, 64 neighbours, vector cutoff) is built with
``--seed`` and the molgnn ET rows get the same weights through ``molgnn.interop.from_torchmdnet``;
before timing every row checks its output on the first batch against torchmd-net's (computed on
the CPU; the check runs in float32 even with ``--amp``) and records ``max_abs_diff``; a row beyond
``1e-4 * max(1, |y|)`` is flagged. Without ``--compare`` the molgnn ET is
``build_model("et-qm9", ...)`` with the configuration's sizes and ``--seed``. ``--compile`` can
take minutes per row; ``--row-timeout`` bounds each row.

Prints a table on stdout (progress goes to stderr) and writes JSON (default:
benchmarks/results/et_throughput.json).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

CONFIGS: dict[str, dict[str, int]] = {
    "small": {
        "hidden_channels": 128,
        "num_layers": 4,
        "num_heads": 8,
        "num_rbf": 32,
        "batch_size": 32,
    },
    "paper": {
        "hidden_channels": 256,
        "num_layers": 8,
        "num_heads": 8,
        "num_rbf": 64,
        "batch_size": 128,
    },
    # A smoke-test size (tests/benchmarks/test_et_throughput_script.py).
    "tiny": {
        "hidden_channels": 16,
        "num_layers": 1,
        "num_heads": 2,
        "num_rbf": 8,
        "batch_size": 4,
    },
}
CUTOFF = 5.0
MAX_NUM_NEIGHBORS = 64
#: Outputs match when max |y - y_torchmdnet| <= REL_TOL * max(1, max |y_torchmdnet|).
REL_TOL = 1e-4
MOLECULES_FORMAT = "molgnn-et-throughput-molecules/1"
TORCHMDNET = "torchmd-net"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "et_throughput.json"

#: (z [N] int64, pos [N, 3] float32, batch [N] int64, y [B, 1] float32)
Batch = tuple[Tensor, Tensor, Tensor, Tensor]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- molecules


def draw_batches(ds: Any, count: int, batch_size: int, seed: int) -> list[dict[str, Tensor]]:
    """``count`` batches of ``batch_size`` random molecules of ``ds``, stored compactly."""
    from torch_geometric.data import Batch as PygBatch

    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        idx = torch.randint(len(ds), (batch_size,), generator=gen).tolist()
        b = PygBatch.from_data_list([ds[i] for i in idx])
        out.append(
            {
                "z": b.z.to(torch.int8),
                "pos": b.pos.to(torch.float32),
                "batch": b.batch.to(torch.int32),
                "y": b.y.to(torch.float32).reshape(batch_size, -1)[:, :1],
            }
        )
    return out


def unpack(b: dict[str, Tensor], device: torch.device) -> Batch:
    return (
        b["z"].to(device, torch.long),
        b["pos"].to(device, torch.float32),
        b["batch"].to(device, torch.long),
        b["y"].to(device, torch.float32),
    )


def save_molecules(path: Path, molecules: dict[str, dict[str, Any]], seed: int) -> None:
    payload = {"format": MOLECULES_FORMAT, "seed": seed, "configs": molecules}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_molecules(path: Path, name: str, batch_size: int, count: int) -> list[dict[str, Tensor]]:
    """The first ``count`` batches of config ``name`` from a ``--save-molecules`` file."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != MOLECULES_FORMAT:
        raise SystemExit(f"{path} is not a molecules file written by --save-molecules")
    entry = payload["configs"].get(name)
    if entry is None:
        raise SystemExit(
            f"{path} has no batches for config {name!r} (has {list(payload['configs'])})"
        )
    if entry["batch_size"] != batch_size:
        raise SystemExit(
            f"{path}: config {name!r} was saved with batch size {entry['batch_size']}, "
            f"this run needs {batch_size}"
        )
    if len(entry["batches"]) < count:
        raise SystemExit(
            f"{path}: config {name!r} holds {len(entry['batches'])} batches, this run needs "
            f"{count} (--warmup + --steps); save it again with these options"
        )
    return list(entry["batches"][:count])


# ----------------------------------------------------------------------------- models


def torchmdnet_args(cfg: dict[str, int]) -> dict[str, Any]:
    return dict(
        model="equivariant-transformer", embedding_dimension=cfg["hidden_channels"],
        num_layers=cfg["num_layers"], num_rbf=cfg["num_rbf"], rbf_type="expnorm",
        trainable_rbf=False, activation="silu", attn_activation="silu", neighbor_embedding=True,
        num_heads=cfg["num_heads"], distance_influence="both", cutoff_lower=0.0,
        cutoff_upper=CUTOFF, max_z=100, max_num_neighbors=MAX_NUM_NEIGHBORS, vector_cutoff=True,
        output_model="Scalar", reduce_op="sum", prior_model=None, derivative=False,
        atom_filter=-1, precision=32,
    )  # fmt: skip


def build(impl: str, cfg: dict[str, int]) -> torch.nn.Module:
    """A freshly initialised model (seed it first) of ``impl`` in configuration ``cfg``."""
    if impl == TORCHMDNET:
        from torchmdnet.models.model import create_model

        return create_model(torchmdnet_args(cfg))
    from molgnn.models import build_model

    if impl == "molgnn-et":
        return build_model(
            "et-qm9",
            hidden_channels=cfg["hidden_channels"],
            num_layers=cfg["num_layers"],
            num_heads=cfg["num_heads"],
            num_rbf=cfg["num_rbf"],
            max_num_neighbors=MAX_NUM_NEIGHBORS,
        )
    if impl == "molgnn-pooled":
        return build_model(
            "pooled", hidden_channels=cfg["hidden_channels"], num_layers=cfg["num_layers"]
        )
    raise ValueError(f"unknown implementation {impl!r}")


def reference(cfg: dict[str, int], seed: int, first: dict[str, Tensor]) -> dict[str, Any]:
    """torchmd-net's weights, the same weights converted to molgnn, and its output on ``first``."""
    from molgnn.interop import from_torchmdnet

    torch.manual_seed(seed)
    tmdn = build(TORCHMDNET, cfg).eval()
    converted = from_torchmdnet(tmdn)
    z, pos, batch, _ = unpack(first, torch.device("cpu"))
    with torch.no_grad():
        y = tmdn(z, pos, batch)[0]
    return {
        "torchmdnet_state": tmdn.state_dict(),
        "molgnn_config": converted.config.to_dict(),
        "molgnn_state": converted.state_dict(),
        "reference": y.detach().clone(),
    }


# ----------------------------------------------------------------------------- worker


def _proc_status_mb(field: str) -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


def rss_mb() -> float:
    """Current resident set size in MB (Linux), else the peak so far."""
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


def cached_edges(pos: Tensor, batch: Tensor, cutoff: float, max_neighbors: int) -> Tensor:
    """Each molecule's radius graph (no self loops), as if built per ``Data`` and batched."""
    from molgnn.nn.radius import radius_graph

    counts = torch.bincount(batch).tolist()
    pieces, offset = [], 0
    for mol_pos in torch.split(pos, counts):
        pieces.append(
            radius_graph(mol_pos, cutoff, None, loop=False, max_num_neighbors=max_neighbors)
            + offset
        )
        offset += mol_pos.size(0)
    return torch.cat(pieces, dim=1)


def build_row_model(spec: dict[str, Any], run: dict[str, Any]) -> torch.nn.Module:
    impl, cfg = spec["impl"], spec["cfg"]
    torch.manual_seed(spec["seed"])
    if impl == TORCHMDNET:
        model = build(TORCHMDNET, cfg)
        model.load_state_dict(run["torchmdnet_state"])
        return model
    if impl == "molgnn-et" and "molgnn_state" in run:
        from molgnn.models import build_model

        model = build_model(run["molgnn_config"])
        model.load_state_dict(run["molgnn_state"])
        return model
    return build(impl, cfg)


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one row; runs in its own process."""
    t_start = time.perf_counter()
    torch.set_num_threads(spec["threads"])
    mode = spec.get("tune_malloc") or "none"
    tuned = mode == "all" or (mode == "molgnn" and spec["impl"] != TORCHMDNET)
    if tuned:
        from molgnn.training import tune_malloc

        tune_malloc()
    device = torch.device(spec["device"])
    cuda = device.type == "cuda"
    if spec["backend"] is not None:
        from molgnn.nn import scatter

        scatter.set_backend(spec["backend"])
    run = torch.load(spec["data_file"], map_location="cpu", weights_only=True)
    batches = [unpack(b, device) for b in run["batches"]]
    impl = spec["impl"]
    model = build_row_model(spec, run).to(device)
    edges: list[Tensor | None] = [None] * len(batches)
    if spec["edges"] == "cached":
        config = getattr(model, "config", None)
        cutoff = float(getattr(config, "cutoff_upper", getattr(config, "cutoff", CUTOFF)))
        limit = int(getattr(config, "max_num_neighbors", MAX_NUM_NEIGHBORS))
        edges = [cached_edges(pos, b, cutoff, limit) for _, pos, b, _ in batches]
    if spec["compiled"]:
        # molgnn's models compile their hot path in place (the ET: the per-edge work of every
        # layer); the radius graph and input checks stay eager.
        model.compile()
    # Every row uses torch's fused AdamW, as molgnn's Trainer does.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def forward(i: int) -> Tensor:
        z, pos, b, _ = batches[i]
        if impl == TORCHMDNET:
            return model(z, pos, b)[0]
        return model(z, pos, b, edge_index=edges[i])

    def autocast() -> contextlib.AbstractContextManager[Any]:
        if spec["amp"] == "bf16":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    # Output check on the first batch, in float32, before any training step changes the weights.
    result: dict[str, Any] = {
        "max_abs_diff": None,
        "tolerance": None,
        "outputs_match": None,
        "malloc_tuned": tuned,
    }
    if "reference" in run and impl in (TORCHMDNET, "molgnn-et"):
        model.eval()
        with torch.no_grad():
            y = forward(0).float().cpu()
        ref = run["reference"]
        diff = float((y - ref).abs().max()) if y.shape == ref.shape else math.inf
        tol = REL_TOL * max(1.0, float(ref.abs().max()))
        result.update(max_abs_diff=diff, tolerance=tol, outputs_match=bool(diff <= tol))
        if not diff <= tol:
            log(
                f"WARNING: {spec['label']} differs from torchmd-net on the first batch: "
                f"max |diff| = {diff:.3g} > {tol:.3g}"
            )
        model.train()
    sync()
    if cuda:
        result["mem_after_setup_mb"] = torch.cuda.memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
    else:
        result["mem_after_setup_mb"] = rss_mb()
    log(f"    setup and check {time.perf_counter() - t_start:.1f}s")

    warmup, steps, repeats = spec["warmup"], spec["steps"], spec["repeats"]
    timed = range(warmup, warmup + steps)
    molecules = steps * spec["cfg"]["batch_size"]

    def train_step(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = torch.nn.functional.mse_loss(forward(i).float(), batches[i][3])
        loss.backward()
        opt.step()

    def infer_step(i: int) -> None:
        with autocast():
            forward(i)

    def measure(step: Callable[[int], None], phase: str) -> list[float]:
        for i in range(warmup):
            step(i)
        sync()
        rates = []
        for r in range(repeats):
            t = time.perf_counter()
            for i in timed:
                step(i)
            sync()
            rates.append(molecules / (time.perf_counter() - t))
            log(f"    {phase} repeat {r + 1}/{repeats}: {rates[-1]:.1f} mol/s")
        return rates

    model.train()
    train = measure(train_step, "train")
    model.eval()
    with torch.no_grad():
        infer = measure(infer_step, "infer")
    if cuda:
        result["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        result["device_name"] = torch.cuda.get_device_name(device)
    else:
        result["peak_mem_mb"] = peak_rss_mb()
    atoms = sum(batches[i][0].numel() for i in timed)
    return {
        **result,
        "train_mol_per_s": statistics.median(train),
        "infer_mol_per_s": statistics.median(infer),
        "train_repeats_mol_per_s": train,
        "infer_repeats_mol_per_s": infer,
        "atoms_per_step": atoms / steps,
        "wall_s": time.perf_counter() - t_start,
    }


def worker_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    try:
        result = worker(spec)
    except Exception as err:
        traceback.print_exc()
        result = {"error": f"{type(err).__name__}: {err}".splitlines()[0][:300]}
    tmp = spec["result_file"] + ".tmp"
    Path(tmp).write_text(json.dumps(result))
    os.replace(tmp, spec["result_file"])


# ----------------------------------------------------------------------------- driver


def row_specs(
    models: list[str], backends: list[str], edges: list[str], compile_: bool, compare: bool
) -> Iterator[dict[str, Any]]:
    """The rows of one configuration: label, impl, scatter backend, edges mode (and compiled)."""
    if compare:
        yield {"label": TORCHMDNET, "impl": TORCHMDNET, "backend": None, "edges": "step"}
    for model in models:
        impl = f"molgnn-{model}"
        for backend in backends:
            for mode in edges:
                yield {"label": f"{impl}[{backend},{mode}]", "impl": impl, "backend": backend,
                       "edges": mode}  # fmt: skip
        if compile_:
            backend = "torch_scatter" if "torch_scatter" in backends else backends[0]
            for mode in edges:
                yield {"label": f"{impl}[{backend},{mode},compiled]", "impl": impl,
                       "backend": backend, "edges": mode, "compiled": True}  # fmt: skip


def run_worker(spec: dict[str, Any], threads: int, timeout: float | None) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
            env=env,
            stdout=sys.stderr,  # keep stdout for the table (some libraries print banners)
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g}s (--row-timeout)"}
    path = Path(spec["result_file"])
    if path.exists():
        return json.loads(path.read_text())
    return {"error": f"worker exited with code {proc.returncode} and no result"}


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    with contextlib.suppress(PackageNotFoundError):
        return dist_version(module)
    return None


def ratio(row: dict[str, Any], base: dict[str, Any] | None, key: str) -> float | None:
    if base is None or "error" in row or "error" in base:
        return None
    return row[key] / base[key]


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict[str, Any]], mem_label: str) -> None:
    width = max([len(r["impl"]) for r in rows] + [4])
    header = (
        f"{'config':<7} {'impl':<{width}} {'train mol/s':>11} {'infer mol/s':>11} "
        f"{'train x tmdn':>12} {'infer x tmdn':>12} {mem_label:>12} {'max_abs_diff':>12}"
    )
    print("\n" + header)
    print("-" * len(header))
    for r in rows:
        if "error" in r:
            print(f"{r['config']:<7} {r['impl']:<{width}} ERROR: {r['error']}")
            continue
        diff = fmt(r["max_abs_diff"], ".1e")
        if r["outputs_match"] is False:
            diff += " !"
        print(
            f"{r['config']:<7} {r['impl']:<{width}} {r['train_mol_per_s']:11.1f} "
            f"{r['infer_mol_per_s']:11.1f} {fmt(r['train_x_torchmdnet'], '.2f'):>12} "
            f"{fmt(r['infer_x_torchmdnet'], '.2f'):>12} {r['peak_mem_mb']:12.0f} {diff:>12}"
        )
    bad = [r for r in rows if r.get("outputs_match") is False]
    if bad:
        print(
            f"\nWARNING: {len(bad)} row(s) marked '!' differ from torchmd-net by more than "
            f"{REL_TOL:g} * max(1, |y|) on the first batch: "
            + ", ".join(f"{r['config']}/{r['impl']}" for r in bad)
        )


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=path.name + ".", suffix=".tmp", delete=False
    ) as f:
        json.dump(payload, f, indent=2)
    os.replace(f.name, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from molgnn.nn import scatter

    p = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[1:]),
    )
    p.add_argument("--configs", nargs="+", default=["small"], choices=list(CONFIGS))
    p.add_argument("--models", nargs="+", default=["et"], choices=["et", "pooled"])
    p.add_argument("--compare", action="store_true", help="also run torchmd-net 3.x (same weights)")
    p.add_argument("--compile", action="store_true", help="also run molgnn under torch.compile")
    p.add_argument(
        "--backends",
        nargs="+",
        default=list(scatter.available_backends()),
        choices=list(scatter.available_backends()),
        help="molgnn scatter backends (default: every available one)",
    )
    p.add_argument(
        "--edges",
        nargs="+",
        default=["cached", "step"],
        choices=["cached", "step"],
        help="molgnn edges: precomputed per molecule, or built in every step (default: both)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads per worker (default: 2)")
    p.add_argument("--steps", type=int, default=20, help="batches per timed repeat (default: 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed batches first (default: 3)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="molecules and weights (default: 0)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--amp", default="none", choices=["none", "bf16"], help="bf16 autocast (CUDA only)"
    )
    p.add_argument(
        "--tune-malloc",
        nargs="?",
        const="all",
        default="none",
        choices=["none", "molgnn", "all"],
        help="rows that keep freed memory (molgnn.training.tune_malloc): 'all' (torchmd-net too; "
        "the default when given alone), 'molgnn' (molgnn's rows, as its Trainer runs on a CPU; "
        "torchmd-net as it ships) or 'none' (default)",
    )
    p.add_argument("--root", type=Path, default=None, help="QM9 folder (default: <data root>/qm9)")
    p.add_argument("--molecules", type=Path, help="read the batches from this file, not QM9")
    p.add_argument(
        "--save-molecules", type=Path, help="write the drawn batches to this file and exit"
    )
    p.add_argument(
        "--row-timeout",
        type=float,
        help="give up on a row after this many seconds (default: never)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON (default: {DEFAULT_OUT})")
    args = p.parse_args(argv)
    if args.amp == "bf16" and torch.device(args.device).type != "cuda":
        p.error("--amp bf16 applies only on CUDA; on the CPU run without --amp")
    if args.steps < 1 or args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--steps, --repeats and --threads must be positive, --warmup non-negative")
    if args.root is None:
        from molgnn.training.data import default_data_root

        args.root = default_data_root() / "qm9"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    count = args.warmup + args.steps
    if args.compare and importlib.util.find_spec("torchmdnet") is None:
        log(
            "WARNING: --compare needs torchmd-net 3.x (pip install torchmd-net); running molgnn only"
        )
        args.compare = False

    molecules: dict[str, list[dict[str, Tensor]]] = {}
    ds = None
    if args.molecules is None:
        from molgnn.data import QM9

        ds = QM9(str(args.root), target="gap", progress=False)
    for name in args.configs:
        size = CONFIGS[name]["batch_size"]
        if args.molecules is not None:
            molecules[name] = load_molecules(args.molecules, name, size, count)
        else:
            log(f"drawing {count} batches of {size} QM9 molecules for {name} from {args.root}")
            molecules[name] = draw_batches(ds, count, size, args.seed)
    if args.save_molecules is not None:
        save_molecules(
            args.save_molecules,
            {
                n: {"batch_size": CONFIGS[n]["batch_size"], "batches": b}
                for n, b in molecules.items()
            },
            args.seed,
        )
        log(f"wrote {args.save_molecules} ({args.save_molecules.stat().st_size / 2**20:.1f} MB)")
        return

    plan = [
        (name, spec)
        for name in args.configs
        for spec in row_specs(args.models, args.backends, args.edges, args.compile, args.compare)
    ]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="et_throughput_") as tmp:
        data_files: dict[str, str] = {}
        for name in args.configs:
            run: dict[str, Any] = {"batches": molecules[name]}
            if args.compare:
                log(f"building torchmd-net's {name} ET (seed {args.seed}) and its reference output")
                with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the table
                    run.update(reference(CONFIGS[name], args.seed, molecules[name][0]))
            data_files[name] = str(Path(tmp) / f"{name}.pt")
            torch.save(run, data_files[name])
        base: dict[str, dict[str, Any]] = {}
        settings = {
            key: getattr(args, key)
            for key in ("threads", "steps", "warmup", "repeats", "seed", "amp", "tune_malloc")
        }
        for k, (name, spec) in enumerate(plan, 1):
            label = spec["label"]
            log(f"[{k}/{len(plan)}] {name} {label}")
            worker_spec = {
                "compiled": False,
                **spec,
                "config": name,
                "cfg": CONFIGS[name],
                "data_file": data_files[name],
                "result_file": str(Path(tmp) / f"result{k}.json"),
                "device": args.device,
                **settings,
            }
            result = run_worker(worker_spec, args.threads, args.row_timeout)
            row = {
                "config": name,
                "impl": label,
                "model": "et" if spec["impl"] != "molgnn-pooled" else "pooled",
                "backend": spec["backend"],
                "edges": spec["edges"],
                "compiled": worker_spec["compiled"],
                **result,
            }
            if label == TORCHMDNET:
                base[name] = row
            row["train_x_torchmdnet"] = ratio(row, base.get(name), "train_mol_per_s")
            row["infer_x_torchmdnet"] = ratio(row, base.get(name), "infer_mol_per_s")
            rows.append(row)
            if "error" in row:
                log(f"[{k}/{len(plan)}] {name} {label}: ERROR {row['error']}")
            else:
                log(
                    f"[{k}/{len(plan)}] {name} {label}: train {row['train_mol_per_s']:.1f} mol/s "
                    f"(x tmdn {fmt(row['train_x_torchmdnet'], '.2f')}), infer "
                    f"{row['infer_mol_per_s']:.1f} mol/s (x tmdn "
                    f"{fmt(row['infer_x_torchmdnet'], '.2f')}), peak {row['peak_mem_mb']:.0f} MB, "
                    f"{row['wall_s']:.0f}s"
                )

    cuda = torch.device(args.device).type == "cuda"
    mem = (
        "torch.cuda.max_memory_allocated from the end of setup (MB)"
        if cuda
        else "peak RSS (VmHWM) of the row's worker process (MB)"
    )
    print_table(rows, "peak MB" if cuda else "peak RSS MB")
    names = [r["device_name"] for r in rows if r.get("device_name")]
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": args.device,
        "device_name": (names[0] if names else None) if cuda else cpu_model(),
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchmd_net": version("torchmd-net") if args.compare else None,
        "molgnn": version("molgnn"),
        **settings,
        "edges": args.edges,
        "backends": args.backends,
        "compare": args.compare,
        "molecules": str(args.molecules) if args.molecules else f"QM9 at {args.root}",
        "cutoff": CUTOFF,
        "max_num_neighbors": MAX_NUM_NEIGHBORS,
        "rel_tol": REL_TOL,
        "memory": mem,
        "configs": {n: CONFIGS[n] for n in args.configs},
    }
    write_json(args.out, {"meta": meta, "rows": rows})
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2])
    else:
        main()
