#!/usr/bin/env python
"""Test MAE (meV) of the HOMO-LUMO gap reached under a fixed wall-clock training budget.

Trains molgnn's small ET (``et-small``), small TensorNet (``tensornet-small``) and the pooled GNN
(and, with ``--compare``, torchmd-net 3.x's ET of the same size) with one shared loop: same QM9
subset and split, the benchmarks' one optimiser (AdamW, fused where torch can;
``benchmarks/_harness``), MSE on standardised targets, for ``--budget`` seconds each; then
reports the test MAE. The subset is ``--subset`` molecules drawn uniformly at random from all of
QM9 (seed ``--seed``), split 80/10/10 once; every model trains once per seed of ``--seeds``
(weights and batch order; default: ``--seed`` alone), and the table gives the mean and standard
deviation over the seeds.

    python benchmarks/accuracy_budget.py --budget 120 --subset 5000 --compare
    python benchmarks/accuracy_budget.py --budget 90 --seeds 0 1 --models et tensornet pooled

``--hidden-channels``, ``--num-layers``, ``--num-heads`` and ``--num-rbf`` change the size of
every ET (molgnn's and torchmd-net's alike); all but ``--num-heads`` also apply to TensorNet, and
the first two to the pooled GNN.

Prints a table and writes JSON (default: benchmarks/results/accuracy_budget.json).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from _harness import (
    RESULTS_DIR,
    Column,
    count_parameters,
    machine_meta,
    make_optimizer,
    model_output,
    open_qm9,
    print_table,
    torchmdnet_et,
    write_result,
)
from torch_geometric.loader import DataLoader

from molgnn.data import split_indices

SMALL = {"hidden_channels": 128, "num_layers": 4, "num_heads": 8, "num_rbf": 32}
#: ``--models`` -> the model each names.
MODELS = {
    "et": "molgnn-et-small",
    "tensornet": "molgnn-tensornet-small",
    "pooled": "molgnn-pooled",
}
DEFAULT_OUT = RESULTS_DIR / "accuracy_budget.json"


def build(name: str, sizes: dict[str, int]) -> torch.nn.Module:
    """Model ``name``; ``sizes`` overrides fields of :data:`SMALL` (TensorNet takes all but
    ``num_heads`` from it, the pooled GNN ``hidden_channels`` and ``num_layers``, their presets'
    values otherwise)."""
    from molgnn.models import build_model

    if name == "molgnn-et-small":
        return build_model("et-small", **sizes)
    if name == "molgnn-tensornet-small":
        return build_model(
            "tensornet-small", **{k: v for k, v in sizes.items() if k != "num_heads"}
        )
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
        "seed": seed,
        "params": count_parameters(model),
        "test_mae_mev": mae,
        "steps": steps,
        "molecules_seen": steps * batch_size,
    }


def summarise(rows: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """Per model: the test MAE's mean and standard deviation over its seeds (``None`` for one
    seed), and the mean number of steps."""
    out = []
    for name in names:
        maes = [r["test_mae_mev"] for r in rows if r["model"] == name]
        steps = [r["steps"] for r in rows if r["model"] == name]
        out.append(
            {
                "model": name,
                "seeds": len(maes),
                "test_mae_mev_mean": statistics.fmean(maes),
                "test_mae_mev_std": statistics.stdev(maes) if len(maes) > 1 else None,
                "steps_mean": statistics.fmean(steps),
            }
        )
    return out


def print_summary(summary: list[dict[str, Any]], budget: float) -> None:
    """The table: test MAE mean ± standard deviation over the seeds, per model."""
    print_table(
        [
            {
                **row,
                "mae": f"{row['test_mae_mev_mean']:.1f}"
                + ("" if row["test_mae_mev_std"] is None else f" ± {row['test_mae_mev_std']:.1f}"),
            }
            for row in summary
        ],
        [
            Column("model", "model", align="<"),
            Column("seeds", "seeds"),
            Column("mae", "test MAE (meV)"),
            Column("steps_mean", "steps (mean)", ".0f"),
        ],
        title=f"HOMO-LUMO gap after {budget:g} s of training per run",
    )


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
    p.add_argument("--seed", type=int, default=0, help="the QM9 subset (default: 0)")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        metavar="S",
        help="weights and batch order, one training run per seed (default: --seed)",
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=list(MODELS),
        choices=list(MODELS),
        help=f"molgnn models to train (default: {' '.join(MODELS)})",
    )
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
    seeds = args.seeds if args.seeds is not None else [args.seed]
    if len(set(seeds)) != len(seeds):
        p.error(f"--seeds must differ, got {seeds}")
    names = [MODELS[m] for m in args.models] + (["torchmd-net-et-small"] if args.compare else [])
    rows = []
    for seed in seeds:
        for name in names:
            row = run(name, sizes, data, split, args.budget, args.batch_size, args.lr, seed)
            rows.append(row)
            print(
                f"{name:<22} test MAE {row['test_mae_mev']:8.1f} meV after {row['steps']} steps "
                f"({row['molecules_seen']} molecules) in {args.budget:g} s, seed {seed}",
                flush=True,
            )
    summary = summarise(rows, names)
    print_summary(summary, args.budget)
    write_result(
        args.out,
        "accuracy_budget",
        {**meta, "batch_size": args.batch_size, "lr": args.lr, "molecules": f"QM9 at {data.root}"},
        budget_s=args.budget,
        subset=args.subset,
        seed=args.seed,
        threads=args.threads,
        seeds=seeds,
        sizes={**SMALL, **sizes},
        rows=rows,
        summary=summary,
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
