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

A training step is forward + MSE loss + backward + AdamW; inference is a forward pass in eval
mode under ``torch.no_grad``. Each number is the median over ``--repeats`` timed runs of
``--steps`` batches after ``--warmup`` untimed ones. Prints a table and writes JSON (default:
benchmarks/results/gnn_throughput.json).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from molgnn.models import CONVS, build_model
from molgnn.nn import POOLS

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def draw_batches(
    root: Path,
    count: int,
    batch_size: int,
    seed: int,
    subset: int | None,
    device: torch.device,
) -> list[Batch]:
    """``count`` batches of ``batch_size`` random QM9 molecules as (z, pos, batch, y).

    With ``subset``, the batches come from ``subset`` molecules drawn uniformly at random (seed
    ``seed``) from all of QM9, so that they are as large as QM9's molecules on average.
    """
    from torch_geometric.data import Batch as PygBatch

    from molgnn.data import QM9

    ds = QM9(str(root), target="gap", subset=subset, subset_seed=seed, progress=False)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        idx = torch.randint(len(ds), (batch_size,), generator=gen).tolist()
        b = PygBatch.from_data_list([ds[i] for i in idx]).to(device)
        out.append((b.z, b.pos, b.batch, b.y))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    model: torch.nn.Module,
    data: list[Batch],
    warmup: int,
    steps: int,
    repeats: int,
    device: torch.device,
) -> dict[str, float]:
    """Median training and inference molecules/s of ``model`` over ``data``."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step(z: torch.Tensor, pos: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(z, pos, b), y)
        loss.backward()
        opt.step()

    def timed(step: Any, batches: list[Batch]) -> float:
        sync(device)
        start = time.perf_counter()
        for z, pos, b, y in batches:
            step(z, pos, b, y)
        sync(device)
        return time.perf_counter() - start

    def infer_step(z: torch.Tensor, pos: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> None:
        model(z, pos, b)

    molecules = sum(int(b[2].max()) + 1 for b in data[warmup : warmup + steps])
    model.train()
    timed(train_step, data[:warmup])
    train = [molecules / timed(train_step, data[warmup : warmup + steps]) for _ in range(repeats)]
    model.eval()
    with torch.no_grad():
        timed(infer_step, data[:warmup])
        infer = [
            molecules / timed(infer_step, data[warmup : warmup + steps]) for _ in range(repeats)
        ]
    return {
        "train_mol_per_s": statistics.median(train),
        "infer_mol_per_s": statistics.median(infer),
        "train_spread": (max(train) - min(train)) / statistics.median(train),
        "infer_spread": (max(infer) - min(infer)) / statistics.median(infer),
    }


def main(argv: list[str] | None = None) -> None:
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
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "gnn_throughput.json"))
    args = p.parse_args(argv)
    if min(args.steps, args.repeats, args.threads, args.batch_size) < 1 or args.warmup < 0:
        p.error(
            "--steps, --repeats, --threads and --batch-size must be positive, --warmup non-negative"
        )
    if args.subset is not None and args.subset < 1:
        p.error(f"--subset must be a positive number of molecules, got {args.subset}")
    if args.root is None:
        from molgnn.training.data import default_data_root

        args.root = default_data_root() / "qm9"

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = draw_batches(
        args.root, args.warmup + args.steps, args.batch_size, args.seed, args.subset, device
    )
    atoms = sum(b[0].numel() for b in data) / sum(int(b[2].max()) + 1 for b in data)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    runs: list[tuple[str, dict[str, Any]]] = []
    if args.et:
        runs.append((args.et_preset, {"config": args.et_preset}))
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
                runs.append((f"pooled[{conv},{pool},{edges}]", {"config": "pooled", **overrides}))

    rows = []
    print(f"{'model':<34} {'params':>9} {'train mol/s':>12} {'infer mol/s':>12}", flush=True)
    for label, spec in runs:
        torch.manual_seed(args.seed)
        spec = dict(spec)
        model = build_model(spec.pop("config"), **spec).to(device)
        params = sum(q.numel() for q in model.parameters())
        result = measure(model, data, args.warmup, args.steps, args.repeats, device)
        rows.append({"model": label, "params": params, **result, "config": model.config.to_dict()})
        print(
            f"{label:<34} {params:>9,} {result['train_mol_per_s']:>12.1f} "
            f"{result['infer_mol_per_s']:>12.1f}",
            flush=True,
        )
    et_row = next((r for r in rows if r["model"] == args.et_preset), None)
    if et_row is not None:
        print(f"\nrelative to {args.et_preset}:")
        for r in rows:
            r["train_x_et"] = r["train_mol_per_s"] / et_row["train_mol_per_s"]
            r["infer_x_et"] = r["infer_mol_per_s"] / et_row["infer_mol_per_s"]
            print(
                f"  {r['model']:<32} train x{r['train_x_et']:6.1f}   infer x{r['infer_x_et']:6.1f}"
            )

    import torch_geometric

    meta = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_start": load_before,
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "torch_scatter_installed": importlib.util.find_spec("torch_scatter") is not None,
        "machine": platform.machine(),
        "batch_size": args.batch_size,
        "mean_atoms_per_molecule": atoms,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "seed": args.seed,
        "subset": args.subset,
        "hidden_channels": args.hidden_channels,
        "num_layers": args.num_layers,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
