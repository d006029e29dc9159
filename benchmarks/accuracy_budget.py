#!/usr/bin/env python
"""Test MAE (meV) of the HOMO-LUMO gap reached under a fixed wall-clock training budget.

Trains molgnn's small ET and the pooled GNN (and, with ``--compare``, torchmd-net 3.x's ET of the
same size) with one shared loop: same QM9 subset and split, same batches, the benchmarks' one
optimiser (AdamW, fused where torch can; ``benchmarks/_harness``), MSE on standardised targets,
for ``--budget`` seconds each; then reports the test MAE. The subset is
``--subset`` molecules drawn uniformly at random from all of QM9 (seed ``--seed``).

    python benchmarks/accuracy_budget.py --budget 120 --subset 5000 --compare

``--hidden-channels``, ``--num-layers``, ``--num-heads`` and ``--num-rbf`` change the size of
every ET (molgnn's and torchmd-net's alike); the first two also apply to the pooled GNN.

Prints a table and writes JSON (default: benchmarks/results/accuracy_budget.json).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from _harness import (
    RESULTS_DIR,
    count_parameters,
    machine_meta,
    make_optimizer,
    model_output,
    open_qm9,
    torchmdnet_et,
    write_result,
)
from torch_geometric.loader import DataLoader

from molgnn.data import split_indices

SMALL = {"hidden_channels": 128, "num_layers": 4, "num_heads": 8, "num_rbf": 32}
DEFAULT_OUT = RESULTS_DIR / "accuracy_budget.json"


def build(name: str, sizes: dict[str, int]) -> torch.nn.Module:
    """Model ``name``; ``sizes`` overrides fields of :data:`SMALL` (the pooled GNN takes
    ``hidden_channels`` and ``num_layers`` from it, its preset's values otherwise)."""
    from molgnn.models import build_model

    if name == "molgnn-et-small":
        return build_model("et-small", **sizes)
    if name == "molgnn-pooled":
        pooled = {k: v for k, v in sizes.items() if k in ("hidden_channels", "num_layers")}
        return build_model("pooled", **pooled)
    if name == "torchmd-net-et-small":
        return torchmdnet_et(**{**SMALL, **sizes})
    raise ValueError(f"unknown model {name!r}")


def predict(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    return model_output(model(batch.z, batch.pos, batch.batch))


def run(
    name: str,
    sizes: dict[str, int],
    data: Any,
    split: tuple,
    budget: float,
    batch_size: int,
    lr: float,
    seed: int,
) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = build(name, sizes)
    train_idx, _, test_idx = split
    y_train = data._data.y[train_idx]
    mean, std = y_train.mean(), y_train.std()
    opt = make_optimizer(model, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(data[train_idx], batch_size=batch_size, shuffle=True, generator=gen)
    steps, start = 0, time.perf_counter()
    model.train()
    while time.perf_counter() - start < budget:
        for batch in loader:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(predict(model, batch), (batch.y - mean) / std)
            loss.backward()
            opt.step()
            steps += 1
            if time.perf_counter() - start >= budget:
                break
    model.eval()
    errors = []
    with torch.no_grad():
        for batch in DataLoader(data[test_idx], batch_size=128):
            errors.append((predict(model, batch) * std + mean - batch.y).abs())
    mae = torch.cat(errors).mean().item() * 1000
    return {
        "model": name,
        "params": count_parameters(model),
        "test_mae_mev": mae,
        "steps": steps,
        "molecules_seen": steps * batch_size,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=120.0, help="seconds of training per model")
    p.add_argument(
        "--subset", type=int, default=5000, help="QM9 molecules, drawn at random (default: 5000)"
    )
    p.add_argument("--root", type=Path, default=None, help="QM9 folder (default: <data root>/qm9)")
    for field in SMALL:
        p.add_argument(f"--{field.replace('_', '-')}", type=int, default=None, metavar="N")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="subset, weights and batches (default: 0)")
    p.add_argument("--compare", action="store_true", help="also train torchmd-net 3.x's ET")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON (default: {DEFAULT_OUT})")
    args = p.parse_args(argv)
    if not args.budget > 0:
        p.error(f"--budget must be positive seconds, got {args.budget}")
    if args.batch_size < 1 or args.threads < 1:
        p.error("--batch-size and --threads must be positive")
    sizes = {f: getattr(args, f) for f in SMALL if getattr(args, f) is not None}
    for field, value in sizes.items():
        if value < 1:
            p.error(f"--{field.replace('_', '-')} must be positive, got {value}")
    torch.set_num_threads(args.threads)
    meta = machine_meta("cpu")
    data = open_qm9(args.root, subset=args.subset, seed=args.seed)
    split = tuple(torch.as_tensor(s) for s in split_indices(len(data), 0.8, 0.1, seed=1))
    if min(len(s) for s in split) < 1:
        p.error(f"--subset {args.subset} is too small for an 80/10/10 split")
    names = ["molgnn-et-small", "molgnn-pooled"] + (
        ["torchmd-net-et-small"] if args.compare else []
    )
    rows = []
    for name in names:
        row = run(name, sizes, data, split, args.budget, args.batch_size, args.lr, args.seed)
        rows.append(row)
        print(
            f"{name:<22} test MAE {row['test_mae_mev']:8.1f} meV after {row['steps']} steps "
            f"({row['molecules_seen']} molecules) in {args.budget:g} s",
            flush=True,
        )
    write_result(
        args.out,
        "accuracy_budget",
        {**meta, "batch_size": args.batch_size, "lr": args.lr, "molecules": f"QM9 at {data.root}"},
        budget_s=args.budget,
        subset=args.subset,
        seed=args.seed,
        threads=args.threads,
        sizes={**SMALL, **sizes},
        rows=rows,
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
