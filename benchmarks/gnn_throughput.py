#!/usr/bin/env python
"""Training and inference throughput (molecules/s) of the pooled GNN, beside the ET, on real QM9.

Every model runs on the same batches of randomly drawn QM9 molecules, on the same machine and
thread count, in one process. Edges are built inside ``forward`` (radius graph or covalent
bonds), as in training, so their cost is included.

    python benchmarks/gnn_throughput.py                          # every conv, mean pooling
    python benchmarks/gnn_throughput.py --et                     # + the ET ("et-small")
    python benchmarks/gnn_throughput.py --convs gine pna --pools sum set2set --edges bonds
    python benchmarks/gnn_throughput.py --device cuda --batch-size 128 --et
    python benchmarks/gnn_throughput.py --subset 5000 --seed 1   # from 5,000 random molecules

Rows are timed by the benchmarks' shared harness (``benchmarks/_harness``), exactly as in
``et_throughput.py``: a training step is forward + MSE loss + backward + AdamW (torch's fused
kernel wherever torch has one); inference is a forward pass in eval mode under
``torch.no_grad``. Each number is the median over ``--repeats`` timed runs of ``--steps``
batches after ``--warmup`` untimed ones. Prints a table and writes JSON (default:
benchmarks/results/gnn_throughput.json).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from _harness import (
    RESULTS_DIR,
    Batch,
    Column,
    Timing,
    count_parameters,
    draw_batches,
    log,
    machine_meta,
    measure_throughput,
    open_qm9,
    print_table,
    to_device,
    write_result,
)

from molgnn.models import build_model
from molgnn.nn import CONVS, POOLS

DEFAULT_OUT = RESULTS_DIR / "gnn_throughput.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--convs", nargs="+", default=list(CONVS), choices=list(CONVS))
    p.add_argument("--pools", nargs="+", default=["mean"], choices=list(POOLS))
    p.add_argument("--edges", nargs="+", default=["radius"], choices=["radius", "bonds"])
    p.add_argument("--hidden-channels", type=int, default=128)
    p.add_argument("--num-layers", type=int, default=4)
    p.add_argument("--et", action="store_true", help="also run the ET (preset --et-preset)")
    p.add_argument("--et-preset", default="et-small")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="timed batches per repeat")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--subset",
        type=int,
        default=None,
        help="draw the batches from N molecules sampled at random from QM9 (default: all)",
    )
    p.add_argument("--root", type=Path, default=None, help="QM9 folder (default: <data root>/qm9)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="subset, batches and weights (default: 0)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON (default: {DEFAULT_OUT})")
    args = p.parse_args(argv)
    if min(args.steps, args.repeats, args.threads, args.batch_size) < 1 or args.warmup < 0:
        p.error(
            "--steps, --repeats, --threads and --batch-size must be positive, --warmup non-negative"
        )
    if args.subset is not None and args.subset < 1:
        p.error(f"--subset must be a positive number of molecules, got {args.subset}")
    return args


def model_specs(args: argparse.Namespace) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, preset, overrides) of every row: the ET first with ``--et``, then every edge
    source x conv x pooling of the pooled GNN."""
    specs: list[tuple[str, str, dict[str, Any]]] = []
    if args.et:
        specs.append((args.et_preset, args.et_preset, {}))
    for edges in args.edges:
        for conv in args.convs:
            for pool in args.pools:
                overrides = {
                    "hidden_channels": args.hidden_channels,
                    "num_layers": args.num_layers,
                    "conv": conv,
                    "pool": pool,
                    "edge_source": edges,
                }
                specs.append((f"pooled[{conv},{pool},{edges}]", "pooled", overrides))
    return specs


def measure_row(
    label: str,
    preset: str,
    overrides: dict[str, Any],
    batches: list[Batch],
    timing: Timing,
    seed: int,
) -> dict[str, Any]:
    """One row: ``build_model(preset, **overrides)`` with weights seeded by ``seed``, timed."""
    torch.manual_seed(seed)
    model = build_model(preset, **overrides).to(batches[0].z.device)
    params = count_parameters(model)
    speed = measure_throughput(model, batches, timing).to_dict()
    log(
        f"{label}: train {speed['train_mol_per_s']:.1f} mol/s, "
        f"infer {speed['infer_mol_per_s']:.1f} mol/s"
    )
    return {"model": label, "params": params, **speed, "config": model.config.to_dict()}


def add_ratios(rows: list[dict[str, Any]], et_label: str) -> bool:
    """Each row's speed relative to the ET's row (``train_x_et``, ``infer_x_et``), if it ran."""
    et_row = next((r for r in rows if r["model"] == et_label), None)
    if et_row is None:
        return False
    for r in rows:
        r["train_x_et"] = r["train_mol_per_s"] / et_row["train_mol_per_s"]
        r["infer_x_et"] = r["infer_mol_per_s"] / et_row["infer_mol_per_s"]
    return True


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    meta = machine_meta(device)
    timing = Timing(args.warmup, args.steps, args.repeats)
    ds = open_qm9(args.root, subset=args.subset, seed=args.seed)
    stored = draw_batches(ds, timing.batches, args.batch_size, args.seed)
    batches = [to_device(b, device) for b in stored]
    atoms = sum(b.z.numel() for b in batches) / sum(b.num_molecules for b in batches)

    rows = [
        measure_row(label, preset, overrides, batches, timing, args.seed)
        for label, preset, overrides in model_specs(args)
    ]
    print_table(
        rows,
        [
            Column("model", "model", align="<", width=34),
            Column("params", "params", ",", width=9),
            Column("train_mol_per_s", "train mol/s", ".1f", width=12),
            Column("infer_mol_per_s", "infer mol/s", ".1f", width=12),
        ],
    )
    if add_ratios(rows, args.et_preset):
        print_table(
            rows,
            [
                Column("model", "model", align="<", width=34),
                Column("train_x_et", "train x", ".1f"),
                Column("infer_x_et", "infer x", ".1f"),
            ],
            title=f"relative to {args.et_preset}:",
        )
    settings = {
        "threads": args.threads,
        "batch_size": args.batch_size,
        "mean_atoms_per_molecule": atoms,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "seed": args.seed,
        "subset": args.subset,
        "hidden_channels": args.hidden_channels,
        "num_layers": args.num_layers,
        "molecules": f"QM9 at {ds.root}",
    }
    write_result(args.out, "gnn_throughput", {**meta, **settings}, rows=rows)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
