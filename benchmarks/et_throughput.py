#!/usr/bin/env python
"""Training and inference throughput (molecules/s) of molgnn's ET, TensorNet and pooled GNN,
optionally beside torchmd-net 3.x, on the same random QM9 molecules, configuration and thread
count, in one run.

    python benchmarks/et_throughput.py                       # small config, molgnn only
    python benchmarks/et_throughput.py --compare             # + torchmd-net, same weights, ratios
    python benchmarks/et_throughput.py --configs small paper --models et pooled --compare
    python benchmarks/et_throughput.py --compare --compile --edges cached --backends torch
    python benchmarks/et_throughput.py --compare --steps 2 --warmup 1 --repeats 1   # smoke run
    python benchmarks/et_throughput.py --models tensornet --configs small paper --compare \\
        --compile --edges step --backends torch_scatter

    # A machine without QM9 (e.g. a GPU box): draw the molecules here, benchmark there.
    python benchmarks/et_throughput.py --configs small paper --save-molecules mols.pt
    python benchmarks/et_throughput.py --configs small paper --molecules mols.pt --compare \\
        --device cuda --amp bf16

Every row is timed by the benchmarks' shared harness (``benchmarks/_harness``), as in
``gnn_throughput.py``: a training step is forward + MSE loss + backward + AdamW (torch's fused
kernel wherever torch has one, in every row); inference is a forward pass in eval mode under
``torch.no_grad``. Each row runs ``--warmup`` untimed steps, then ``--repeats`` timed runs of
``--steps`` batches, and reports the median (all repeats are kept in the JSON).

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

``--models tensornet`` times molgnn's TensorNet: in the ``small`` configuration the
``tensornet-small`` preset's sizes (hidden 64, 2 layers, 32 RBF), in ``paper`` the
``tensornet-qm9`` preset's (the TensorNet paper's QM9 settings: hidden 256, 3 layers, 64 RBF),
at the configuration's batch size. With ``--compare`` torchmd-net's TensorNet (O(3), Scalar head,
``static_shapes=False`` as ``torchmd-train`` defaults to) runs beside it with the same weights,
twice: ``torchmd-net-tensornet`` as torchmd-net runs it by default (its Warp kernels when
warp-lang is installed, which the ratios are relative to) and ``torchmd-net-tensornet[plain]``
(its plain-PyTorch formulation); ``--compile-torchmdnet`` adds ``torch.compile`` of torchmd-net's
TensorNet (a row that does not compile records the error). ``--batch-size`` replaces every
configuration's batch size (e.g. to keep the ``paper`` TensorNet rows short on a CPU).

Every row also records the GEMM FLOPs of its training step and inference pass (torch's
``FlopCounterMode`` on the first timed batches, eager) and the table compares its speed with the
arithmetic bound: the machine's float32 GEMM rate (``_harness.gemm_rate``, measured once at the
start with the run's threads) divided by the FLOPs per molecule (``x bound`` = measured / bound).

Prints a table on stdout (progress goes to stderr) and writes JSON (default:
benchmarks/results/et_throughput.json).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from _harness import (
    CUTOFF,
    MAX_NUM_NEIGHBORS,
    RESULTS_DIR,
    Batch,
    Column,
    StoredBatch,
    Timing,
    draw_batches,
    format_cell,
    gemm_flops,
    gemm_rate,
    load_molecules,
    log,
    machine_meta,
    measure_throughput,
    memory_mb,
    memory_note,
    model_output,
    open_qm9,
    package_version,
    peak_memory_mb,
    print_table,
    reset_peak_memory,
    save_molecules,
    sync,
    to_device,
    torchmdnet_et,
    torchmdnet_tensornet,
    use_torchmdnet_plain_tensornet,
    write_json,
    write_result,
)
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
#: TensorNet's sizes in each configuration (a preset, or the sizes themselves for ``tiny``).
TENSORNET: dict[str, str | dict[str, int]] = {
    "small": "tensornet-small",
    "paper": "tensornet-qm9",
    "tiny": {"hidden_channels": 16, "num_layers": 1, "num_rbf": 8},
}
#: Outputs match when max |y - y_torchmdnet| <= REL_TOL * max(1, max |y_torchmdnet|).
REL_TOL = 1e-4
TORCHMDNET = "torchmd-net"
TORCHMDNET_TENSORNET = "torchmd-net-tensornet"
#: Model family -> the torchmd-net implementation its molgnn rows are compared with.
REFERENCES = {"et": TORCHMDNET, "tensornet": TORCHMDNET_TENSORNET}
#: Timed batches on which each row's GEMM FLOPs are counted (per molecule).
FLOP_BATCHES = 2
DEFAULT_OUT = RESULTS_DIR / "et_throughput.json"
SETTINGS = ("threads", "steps", "warmup", "repeats", "seed", "amp", "tune_malloc", "batch_size")


# ----------------------------------------------------------------------------- models


def tensornet_sizes(config: str) -> dict[str, int]:
    """TensorNet's ``hidden_channels``, ``num_layers`` and ``num_rbf`` in configuration
    ``config`` (:data:`TENSORNET`)."""
    entry = TENSORNET[config]
    if isinstance(entry, dict):
        return dict(entry)
    from molgnn.models import model_config

    preset = model_config(entry)
    return {k: int(getattr(preset, k)) for k in ("hidden_channels", "num_layers", "num_rbf")}


def build(impl: str, cfg: dict[str, int], config: str) -> torch.nn.Module:
    """A freshly initialised model (seed it first) of ``impl`` in configuration ``config``
    (``cfg``: its sizes)."""
    sizes = {k: cfg[k] for k in ("hidden_channels", "num_layers", "num_heads", "num_rbf")}
    if impl == TORCHMDNET:
        return torchmdnet_et(**sizes)
    if impl == TORCHMDNET_TENSORNET:
        return torchmdnet_tensornet(**tensornet_sizes(config))
    from molgnn.models import build_model

    if impl == "molgnn-tensornet":
        preset = TENSORNET[config]
        base = preset if isinstance(preset, str) else "tensornet-small"
        return build_model(base, **tensornet_sizes(config))
    if impl == "molgnn-et":
        return build_model("et-qm9", **sizes, max_num_neighbors=MAX_NUM_NEIGHBORS)
    if impl == "molgnn-pooled":
        return build_model(
            "pooled", hidden_channels=cfg["hidden_channels"], num_layers=cfg["num_layers"]
        )
    raise ValueError(f"unknown implementation {impl!r}")


def reference(
    impl: str, cfg: dict[str, int], config: str, seed: int, first: StoredBatch
) -> dict[str, Any]:
    """torchmd-net's weights (of ``impl``), the same weights converted to molgnn, and its output
    on ``first``."""
    from molgnn.interop import from_torchmdnet

    torch.manual_seed(seed)
    tmdn = build(impl, cfg, config).eval()
    converted = from_torchmdnet(tmdn)
    z, pos, batch, _ = to_device(first, "cpu")
    with torch.no_grad():
        y = tmdn(z, pos, batch)[0]
    return {
        "torchmdnet_state": tmdn.state_dict(),
        "molgnn_config": converted.config.to_dict(),
        "molgnn_state": converted.state_dict(),
        "reference": y.detach().clone(),
    }


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


# ----------------------------------------------------------------------------- worker


def setup_process(spec: dict[str, Any]) -> bool:
    """Threads, allocator, scatter backend (and torchmd-net's TensorNet formulation) of the
    row's process; whether malloc was tuned."""
    torch.set_num_threads(spec["threads"])
    mode = spec.get("tune_malloc") or "none"
    tuned = mode == "all" or (mode == "molgnn" and not spec["impl"].startswith(TORCHMDNET))
    if spec.get("plain"):
        use_torchmdnet_plain_tensornet()
    if tuned:
        from molgnn.training import tune_malloc

        tune_malloc()
    if spec["backend"] is not None:
        from molgnn.nn import scatter

        scatter.set_backend(spec["backend"])
    return tuned


def build_row_model(spec: dict[str, Any], run: dict[str, Any]) -> torch.nn.Module:
    """The row's model: torchmd-net's reference weights (and molgnn's ET or TensorNet converted
    from them) with ``--compare``, else a fresh model seeded with ``--seed``."""
    impl, cfg, family = spec["impl"], spec["cfg"], spec["family"]
    ref = run.get("references", {}).get(family)
    torch.manual_seed(spec["seed"])
    if impl.startswith(TORCHMDNET):
        model = build(impl, cfg, spec["config"])
        model.load_state_dict(ref["torchmdnet_state"])
        return model
    if ref is not None:
        from molgnn.models import build_model

        model = build_model(ref["molgnn_config"])
        model.load_state_dict(ref["molgnn_state"])
        return model
    return build(impl, cfg, spec["config"])


def row_edges(model: torch.nn.Module, batches: list[Batch], mode: str) -> list[Tensor | None]:
    """Per-batch ``edge_index`` for ``--edges cached`` (with the model's own cutoff and
    neighbour limit), or ``None`` for each batch with ``step`` (the model builds them)."""
    if mode != "cached":
        return [None] * len(batches)
    config = getattr(model, "config", None)
    cutoff = float(getattr(config, "cutoff_upper", getattr(config, "cutoff", CUTOFF)))
    limit = int(getattr(config, "max_num_neighbors", MAX_NUM_NEIGHBORS))
    return [cached_edges(b.pos, b.batch, cutoff, limit) for b in batches]


def row_forward(
    model: torch.nn.Module, impl: str, batches: list[Batch], edges: list[Tensor | None]
) -> Callable[[int], Tensor]:
    """``forward(i)``: the row's prediction on batch ``i``."""

    def forward(i: int) -> Tensor:
        b = batches[i]
        if impl.startswith(TORCHMDNET):
            return model_output(model(b.z, b.pos, b.batch))
        return model(b.z, b.pos, b.batch, edge_index=edges[i])

    return forward


def check_outputs(
    spec: dict[str, Any],
    run: dict[str, Any],
    model: torch.nn.Module,
    forward: Callable[[int], Tensor],
) -> dict[str, Any]:
    """Compare the row's output on the first batch with torchmd-net's (in float32, before any
    training step changes the weights); all ``None`` without a reference."""
    out: dict[str, Any] = {"max_abs_diff": None, "tolerance": None, "outputs_match": None}
    references = run.get("references", {})
    if spec["family"] not in references:
        return out
    model.eval()
    with torch.no_grad():
        y = forward(0).float().cpu()
    model.train()
    ref = references[spec["family"]]["reference"]
    tol = REL_TOL * max(1.0, float(ref.abs().max()))
    if y.shape != ref.shape:
        log(f"WARNING: {spec['label']} gives shape {list(y.shape)}, torchmd-net {list(ref.shape)}")
        return {**out, "tolerance": tol, "outputs_match": False}
    diff = float((y - ref).abs().max())
    if not diff <= tol:
        log(
            f"WARNING: {spec['label']} differs from torchmd-net on the first batch: "
            f"max |diff| = {diff:.3g} > {tol:.3g}"
        )
    return {"max_abs_diff": diff, "tolerance": tol, "outputs_match": bool(diff <= tol)}


def count_gemm_flops(
    model: torch.nn.Module, batches: list[Batch], forward: Callable[[int], Tensor], first: int
) -> dict[str, float]:
    """GEMM FLOPs per molecule of a training step (forward, MSE loss, backward) and of an
    inference pass, on :data:`FLOP_BATCHES` batches from ``first`` (the first timed ones)."""
    chosen = range(first, min(first + FLOP_BATCHES, len(batches)))
    molecules = sum(batches[i].num_molecules for i in chosen)

    def train() -> None:
        for i in chosen:
            loss = torch.nn.functional.mse_loss(forward(i).float(), batches[i].y)
            loss.backward()

    def infer() -> None:
        with torch.no_grad():
            for i in chosen:
                forward(i)

    model.train()
    train_flops = gemm_flops(train)
    model.zero_grad(set_to_none=True)
    model.eval()
    infer_flops = gemm_flops(infer)
    model.train()
    return {
        "train_gemm_flops_per_mol": train_flops / molecules,
        "infer_gemm_flops_per_mol": infer_flops / molecules,
    }


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one row; runs in its own process."""
    t_start = time.perf_counter()
    tuned = setup_process(spec)
    device = torch.device(spec["device"])
    run = torch.load(spec["data_file"], map_location="cpu", weights_only=True)
    batches = [to_device(b, device) for b in run["batches"]]
    model = build_row_model(spec, run).to(device)
    edges = row_edges(model, batches, spec["edges"])
    forward = row_forward(model, spec["impl"], batches, edges)
    flops = count_gemm_flops(model, batches, forward, spec["warmup"])
    if spec["compiled"]:
        # molgnn's models compile their hot path in place (the ET and TensorNet: the per-edge
        # work of every layer); the radius graph and input checks stay eager. torchmd-net's
        # model is compiled whole (nn.Module.compile, in place).
        model.compile()
    result = {**check_outputs(spec, run, model, forward), **flops, "malloc_tuned": tuned}
    sync(device)
    result["mem_after_setup_mb"] = memory_mb(device)
    reset_peak_memory(device)
    log(f"    setup and check {time.perf_counter() - t_start:.1f}s")

    timing = Timing(spec["warmup"], spec["steps"], spec["repeats"])
    speed = measure_throughput(model, batches, timing, forward, amp=spec["amp"], log=log)
    result["peak_mem_mb"] = peak_memory_mb(device)
    if device.type == "cuda":
        result["device_name"] = torch.cuda.get_device_name(device)
    return {**result, **speed.to_dict(), "wall_s": time.perf_counter() - t_start}


def worker_main(spec_json: str) -> None:
    """The ``--worker`` entry point: measure the row, write its result file (or the error)."""
    spec = json.loads(spec_json)
    try:
        result = worker(spec)
    except Exception as err:
        traceback.print_exc()
        result = {"error": f"{type(err).__name__}: {err}".splitlines()[0][:300]}
    write_json(spec["result_file"], result)


# ----------------------------------------------------------------------------- driver


def reference_specs(model: str, compile_tmdn: bool) -> Iterator[dict[str, Any]]:
    """torchmd-net's rows for model family ``model`` (none for the pooled GNN)."""
    impl = REFERENCES.get(model)
    if impl is None:
        return
    row = {"impl": impl, "family": model, "backend": None, "edges": "step"}
    yield {"label": impl, **row}
    if model == "tensornet":
        yield {"label": f"{impl}[plain]", **row, "plain": True}
        if compile_tmdn:
            yield {"label": f"{impl}[compiled]", **row, "compiled": True}


def row_specs(
    models: list[str],
    backends: list[str],
    edges: list[str],
    compile_: bool,
    compare: bool,
    compile_tmdn: bool = False,
) -> Iterator[dict[str, Any]]:
    """The rows of one configuration: label, impl, model family, scatter backend, edges mode
    (and compiled); torchmd-net's rows of a family come before molgnn's."""
    for model in models:
        if compare:
            yield from reference_specs(model, compile_tmdn)
        impl = f"molgnn-{model}"
        for backend in backends:
            for mode in edges:
                yield {"label": f"{impl}[{backend},{mode}]", "impl": impl, "family": model,
                       "backend": backend, "edges": mode}  # fmt: skip
        if compile_:
            backend = "torch_scatter" if "torch_scatter" in backends else backends[0]
            for mode in edges:
                yield {"label": f"{impl}[{backend},{mode},compiled]", "impl": impl,
                       "family": model, "backend": backend, "edges": mode,
                       "compiled": True}  # fmt: skip


def run_worker(spec: dict[str, Any], threads: int, timeout: float | None) -> dict[str, Any]:
    """Run this script with ``--worker spec`` in a fresh process; its result, or an error."""
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
            env={**os.environ, **env},
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


def ratio(row: dict[str, Any], base: dict[str, Any] | None, key: str) -> float | None:
    if base is None or "error" in row or "error" in base:
        return None
    return row[key] / base[key]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from molgnn.nn import scatter

    p = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[1:]),
    )
    p.add_argument("--configs", nargs="+", default=["small"], choices=list(CONFIGS))
    p.add_argument("--models", nargs="+", default=["et"], choices=["et", "tensornet", "pooled"])
    p.add_argument("--compare", action="store_true", help="also run torchmd-net 3.x (same weights)")
    p.add_argument("--compile", action="store_true", help="also run molgnn under torch.compile")
    p.add_argument(
        "--compile-torchmdnet",
        action="store_true",
        help="with --compare, also run torchmd-net's TensorNet under torch.compile",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="molecules per batch in every configuration (default: each configuration's own)",
    )
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
    if args.batch_size is not None and args.batch_size < 1:
        p.error(f"--batch-size must be positive, got {args.batch_size}")
    from molgnn.data import qm9_root

    args.root = qm9_root(args.root)
    return args


def batch_size(args: argparse.Namespace, name: str) -> int:
    """Molecules per batch in configuration ``name``: ``--batch-size``, else its own."""
    return args.batch_size if args.batch_size is not None else CONFIGS[name]["batch_size"]


def gather_molecules(args: argparse.Namespace) -> dict[str, list[StoredBatch]]:
    """Each configuration's batches: drawn from QM9 with ``--seed``, or read from
    ``--molecules``."""
    count = args.warmup + args.steps
    molecules: dict[str, list[StoredBatch]] = {}
    ds = open_qm9(args.root) if args.molecules is None else None
    for name in args.configs:
        size = batch_size(args, name)
        if ds is None:
            try:
                molecules[name] = load_molecules(args.molecules, name, size, count)
            except ValueError as err:
                raise SystemExit(f"{err} (--molecules)") from None
        else:
            log(f"drawing {count} batches of {size} QM9 molecules for {name} from {args.root}")
            molecules[name] = draw_batches(ds, count, size, args.seed)
    return molecules


def write_row_inputs(
    args: argparse.Namespace, molecules: dict[str, list[StoredBatch]], folder: Path
) -> dict[str, str]:
    """One file per configuration that its rows' workers read: the batches and, with
    ``--compare``, torchmd-net's weights and reference output."""
    files: dict[str, str] = {}
    for name in args.configs:
        run: dict[str, Any] = {"batches": molecules[name], "references": {}}
        families = [m for m in args.models if m in REFERENCES] if args.compare else []
        for family in families:
            impl = REFERENCES[family]
            log(f"building {impl}'s {name} model (seed {args.seed}) and its reference output")
            with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the table
                run["references"][family] = reference(
                    impl, CONFIGS[name], name, args.seed, molecules[name][0]
                )
        files[name] = str(folder / f"{name}.pt")
        torch.save(run, files[name])
    return files


def bound_ratios(row: dict[str, Any], rate: float) -> None:
    """Add the arithmetic bound (molecules/s at ``rate`` GEMM FLOP/s) and measured / bound."""
    for phase in ("train", "infer"):
        flops = row.get(f"{phase}_gemm_flops_per_mol")
        bound = rate / flops if flops else None
        row[f"{phase}_gemm_bound_mol_per_s"] = bound
        measured = row.get(f"{phase}_mol_per_s")
        row[f"{phase}_x_bound"] = measured / bound if bound and measured is not None else None


def log_row(where: str, row: dict[str, Any]) -> None:
    if "error" in row:
        log(f"{where}: ERROR {row['error']}")
        return
    log(
        f"{where}: train {row['train_mol_per_s']:.1f} mol/s "
        f"(x tmdn {format_cell(row['train_x_torchmdnet'], '.2f')}), infer "
        f"{row['infer_mol_per_s']:.1f} mol/s "
        f"(x tmdn {format_cell(row['infer_x_torchmdnet'], '.2f')}), "
        f"peak {row['peak_mem_mb']:.0f} MB, {row['wall_s']:.0f}s"
    )


def run_rows(
    args: argparse.Namespace, data_files: dict[str, str], folder: Path, rate: float
) -> list[dict[str, Any]]:
    """Every row of every configuration, each in its own worker process."""
    plan = [
        (name, spec)
        for name in args.configs
        for spec in row_specs(
            args.models, args.backends, args.edges, args.compile, args.compare,
            args.compile_torchmdnet,
        )
    ]  # fmt: skip
    settings = {key: getattr(args, key) for key in SETTINGS}
    rows: list[dict[str, Any]] = []
    base: dict[tuple[str, str], dict[str, Any]] = {}
    for k, (name, spec) in enumerate(plan, 1):
        where = f"[{k}/{len(plan)}] {name} {spec['label']}"
        log(where)
        worker_spec = {
            "compiled": False,
            **spec,
            "config": name,
            "cfg": CONFIGS[name],
            "data_file": data_files[name],
            "result_file": str(folder / f"result{k}.json"),
            "device": args.device,
            **settings,
        }
        row = {
            "config": name,
            "impl": spec["label"],
            "model": spec["family"],
            "backend": spec["backend"],
            "edges": spec["edges"],
            "compiled": worker_spec["compiled"],
            **run_worker(worker_spec, args.threads, args.row_timeout),
        }
        if spec["label"] == REFERENCES.get(spec["family"]):
            base[name, spec["family"]] = row
        reference_row = base.get((name, spec["family"]))
        row["train_x_torchmdnet"] = ratio(row, reference_row, "train_mol_per_s")
        row["infer_x_torchmdnet"] = ratio(row, reference_row, "infer_mol_per_s")
        if "error" not in row:
            bound_ratios(row, rate)
        rows.append(row)
        log_row(where, row)
    return rows


def print_rows(rows: list[dict[str, Any]], cuda: bool) -> None:
    """The table; a row whose output differs from torchmd-net's is marked ``!``."""
    shown = []
    for r in rows:
        diff = "-" if r.get("max_abs_diff") is None else f"{r['max_abs_diff']:.1e}"
        shown.append({**r, "diff": diff + (" !" if r.get("outputs_match") is False else "")})
    print_table(
        shown,
        [
            Column("config", "config", align="<", width=7),
            Column("impl", "impl", align="<"),
            Column("train_mol_per_s", "train mol/s", ".1f"),
            Column("infer_mol_per_s", "infer mol/s", ".1f"),
            Column("train_x_torchmdnet", "train x tmdn", ".2f"),
            Column("infer_x_torchmdnet", "infer x tmdn", ".2f"),
            Column("train_x_bound", "train x bound", ".3f"),
            Column("infer_x_bound", "infer x bound", ".3f"),
            Column("peak_mem_mb", "peak MB" if cuda else "peak RSS MB", ".0f"),
            Column("diff", "max_abs_diff"),
        ],
    )
    bad = [r for r in rows if r.get("outputs_match") is False]
    if bad:
        print(
            f"\nWARNING: {len(bad)} row(s) marked '!' differ from torchmd-net by more than "
            f"{REL_TOL:g} * max(1, |y|) on the first batch: "
            + ", ".join(f"{r['config']}/{r['impl']}" for r in bad)
        )


def result_meta(
    args: argparse.Namespace, meta: dict[str, Any], rows: list[dict[str, Any]], rate: float
) -> dict[str, Any]:
    """The result's ``meta``: the machine (probed at the start), the settings, the rows'
    device."""
    names = [r["device_name"] for r in rows if r.get("device_name")]
    return {
        **meta,
        "device_name": names[0] if names else meta["device_name"],
        "torchmd_net": package_version("torchmd-net") if args.compare else None,
        **{key: getattr(args, key) for key in SETTINGS},
        "edges": args.edges,
        "backends": args.backends,
        "compare": args.compare,
        "molecules": str(args.molecules) if args.molecules else f"QM9 at {args.root}",
        "cutoff": CUTOFF,
        "max_num_neighbors": MAX_NUM_NEIGHBORS,
        "rel_tol": REL_TOL,
        "memory": memory_note(args.device) + ", each row in its own worker process",
        "configs": {n: {**CONFIGS[n], "batch_size": batch_size(args, n)} for n in args.configs},
        "models": args.models,
        "tensornet_sizes": (
            {n: tensornet_sizes(n) for n in args.configs} if "tensornet" in args.models else None
        ),
        "gemm_flop_per_s": rate,
        "gemm_bound": "float32 [1024, 1024] @ [1024, 1024] on the device with the run's threads, "
        f"best of 5; GEMM FLOPs per molecule counted on {FLOP_BATCHES} timed batches "
        "(FlopCounterMode: mm, addmm, bmm, baddbmm)",
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.compare and importlib.util.find_spec("torchmdnet") is None:
        log("WARNING: --compare needs torchmd-net 3.x (pip install torchmd-net); molgnn only")
        args.compare = False
    torch.set_num_threads(args.threads)
    meta = machine_meta(args.device)
    molecules = gather_molecules(args)
    if args.save_molecules is not None:
        save_molecules(args.save_molecules, molecules, args.seed)
        log(f"wrote {args.save_molecules} ({args.save_molecules.stat().st_size / 2**20:.1f} MB)")
        return
    rate = gemm_rate(args.device)
    log(f"GEMM rate: {rate / 1e9:.1f} GFLOP/s (float32, {args.threads} threads)")
    with tempfile.TemporaryDirectory(prefix="et_throughput_") as tmp:
        data_files = write_row_inputs(args, molecules, Path(tmp))
        rows = run_rows(args, data_files, Path(tmp), rate)
    print_rows(rows, torch.device(args.device).type == "cuda")
    write_result(args.out, "et_throughput", result_meta(args, meta, rows, rate), rows=rows)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2])
    else:
        main()
