#!/usr/bin/env python
"""Training and inference throughput (molecules/s) of molgnn's ET and pooled GNN, optionally beside
torchmd-net 3.x, on the same random QM9 molecules, configuration and thread count, in one run.

    python benchmarks/et_throughput.py                       # small config, molgnn only
    python benchmarks/et_throughput.py --compare             # + torchmd-net, with ratios
    python benchmarks/et_throughput.py --configs small paper --models et pooled --compare

A training step is forward + backward + AdamW; inference is a forward pass under no_grad.
Prints a table and writes JSON (default: benchmarks/results/et_throughput.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path
from typing import Any

import torch

CONFIGS = {
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
}


def molecules(
    n: int, seed: int, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``n`` batches' worth of random real QM9 molecules, as (z, pos, batch) tensors."""
    from molgnn.data import QM9
    from molgnn.training.data import default_data_root

    ds = QM9(str(default_data_root() / "qm9"), target="gap", progress=False)
    return ds, torch.Generator().manual_seed(seed)  # type: ignore[return-value]


def batches(
    ds: Any, gen: torch.Generator, batch_size: int, count: int, device: torch.device
) -> list[tuple]:
    from torch_geometric.data import Batch

    out = []
    for _ in range(count):
        idx = torch.randint(len(ds), (batch_size,), generator=gen).tolist()
        b = Batch.from_data_list([ds[i] for i in idx]).to(device)
        out.append((b.z, b.pos, b.batch, b.y))
    return out


def build(impl: str, cfg: dict[str, int], device: torch.device) -> torch.nn.Module:
    if impl.startswith("molgnn-et"):
        from molgnn.models import build_model

        kw = {k: v for k, v in cfg.items() if k != "batch_size"}
        return build_model("et-qm9", **kw).to(device)
    if impl.startswith("molgnn-pooled"):
        from molgnn.models import build_model

        return build_model(
            "pooled", hidden_channels=cfg["hidden_channels"], num_layers=cfg["num_layers"]
        ).to(device)
    if impl == "torchmd-net":
        from torchmdnet.models.model import create_model

        args = dict(
            model="equivariant-transformer", embedding_dimension=cfg["hidden_channels"],
            num_layers=cfg["num_layers"], num_rbf=cfg["num_rbf"], rbf_type="expnorm",
            trainable_rbf=False, activation="silu", attn_activation="silu", neighbor_embedding=True,
            num_heads=cfg["num_heads"], distance_influence="both", cutoff_lower=0.0, cutoff_upper=5.0,
            max_z=100, max_num_neighbors=64, vector_cutoff=True, output_model="Scalar",
            reduce_op="sum", prior_model=None, derivative=False, atom_filter=-1, precision=32,
        )  # fmt: skip
        return create_model(args).to(device)
    raise ValueError(impl)


def forward(
    impl: str, model: torch.nn.Module, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor
) -> torch.Tensor:
    out = model(z, pos, batch)
    return out[0] if isinstance(out, tuple) else out


def measure(
    impl: str,
    cfg: dict[str, int],
    data: list[tuple],
    warmup: int,
    steps: int,
    device: torch.device,
    compile_: bool,
) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build(impl, cfg, device)
    if compile_:
        model = torch.compile(model, dynamic=True)  # type: ignore[assignment]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def train_step(z, pos, batch, y):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(forward(impl, model, z, pos, batch), y)
        loss.backward()
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for z, pos, b, y in data[:warmup]:
        train_step(z, pos, b, y)
    sync()
    t = time.perf_counter()
    for z, pos, b, y in data[warmup : warmup + steps]:
        train_step(z, pos, b, y)
    sync()
    train_s = time.perf_counter() - t
    model.eval()
    with torch.no_grad():
        for z, pos, b, _ in data[:warmup]:
            forward(impl, model, z, pos, b)
        sync()
        t = time.perf_counter()
        for z, pos, b, _ in data[warmup : warmup + steps]:
            forward(impl, model, z, pos, b)
        sync()
        infer_s = time.perf_counter() - t
    n = steps * cfg["batch_size"]
    return {
        "train_mol_per_s": n / train_s,
        "infer_mol_per_s": n / infer_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["small"], choices=list(CONFIGS))
    p.add_argument("--models", nargs="+", default=["et"], choices=["et", "pooled"])
    p.add_argument("--compare", action="store_true", help="also run torchmd-net 3.x")
    p.add_argument("--compile", action="store_true", help="also run molgnn under torch.compile")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "et_throughput.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from molgnn.nn import scatter

    ds, gen = molecules(0, args.seed, device)
    rows = []
    for name in args.configs:
        cfg = CONFIGS[name]
        data = batches(ds, gen, cfg["batch_size"], args.warmup + args.steps, device)
        impls: list[tuple[str, str | None, bool]] = []
        for backend in scatter.available_backends():
            if "et" in args.models:
                impls.append((f"molgnn-et[{backend}]", backend, False))
            if "pooled" in args.models:
                impls.append((f"molgnn-pooled[{backend}]", backend, False))
        if args.compile and "et" in args.models:
            impls.append(("molgnn-et[compiled]", "torch", True))
        if args.compare:
            impls.append(("torchmd-net", None, False))
        for label, backend, comp in impls:
            if backend is not None:
                scatter.set_backend(backend)
            impl = "torchmd-net" if label == "torchmd-net" else label.split("[")[0]
            result = measure(impl, cfg, data, args.warmup, args.steps, device, comp)
            rows.append({"config": name, "impl": label, **result})
            print(
                f"{name:>6} {label:<28} train {result['train_mol_per_s']:8.1f} mol/s   "
                f"infer {result['infer_mol_per_s']:8.1f} mol/s   peak RSS {result['peak_rss_mb']:7.0f} MB",
                flush=True,
            )
    ref = {r["config"]: r for r in rows if r["impl"] == "torchmd-net"}
    print(
        "\nconfig  impl                          train mol/s  infer mol/s  train x tmdn  infer x tmdn"
    )
    for r in rows:
        base = ref.get(r["config"])
        rt = f"{r['train_mol_per_s'] / base['train_mol_per_s']:.2f}" if base else "-"
        ri = f"{r['infer_mol_per_s'] / base['infer_mol_per_s']:.2f}" if base else "-"
        r["train_ratio_vs_torchmdnet"] = (
            None if not base else r["train_mol_per_s"] / base["train_mol_per_s"]
        )
        r["infer_ratio_vs_torchmdnet"] = (
            None if not base else r["infer_mol_per_s"] / base["infer_mol_per_s"]
        )
        print(
            f"{r['config']:<7} {r['impl']:<28} {r['train_mol_per_s']:11.1f}  "
            f"{r['infer_mol_per_s']:11.1f}  {rt:>12}  {ri:>12}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "threads": args.threads,
        "device": str(device),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "steps": args.steps,
        "seed": args.seed,
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
