#!/usr/bin/env python
"""Warm start versus training from scratch in the online loop.

Runs ``molgnn.online.run_online`` twice on the same QM9 subset, arrival order, held-out sets
and growth trigger: once warm-starting every retrain from the previous model, once training
every model from scratch. Prints the test MAE of each retrain against the data size and the
training time, and writes JSON::

    python benchmarks/online_warm_start.py --subset 1500 --initial 200 --chunk 100 \\
        --growth 0.25 --epochs 3 --set hidden_channels=64 --set num_layers=2

``--warm-epochs`` gives warm-started retrains a different (usually smaller) epoch budget, the
case where warm starts pay off most. Both runs are kept under ``--out`` and can be inspected
with ``molgnn registry list --store OUT/warm``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import yaml
from _harness import Column, machine_meta, open_qm9, print_table, write_result

from molgnn.config import parse_assignment
from molgnn.online import OnlineConfig, Store, run_online


def run_mode(config: OnlineConfig, source: Any) -> dict[str, Any]:
    """One online run; returns its per-model results."""
    start = time.perf_counter()
    store: Store = run_online(config, source=source, verbose=False)
    wall = time.perf_counter() - start
    sizes = {v.id: v.size for v in store.versions()}
    models = [
        {
            "id": m.id,
            "data_size": sizes[m.data_version],
            "data_version": m.data_version,
            "parent_model": m.parent_model,
            "epochs": m.metrics.get("epochs_run"),
            "val_mae": m.val_mae,
            "test_mae": m.test_mae,
            "train_seconds": m.metrics.get("train_seconds"),
        }
        for m in store.models()
    ]
    store.close()
    return {
        "wall_seconds": wall,
        "train_seconds": sum(m["train_seconds"] or 0.0 for m in models),
        "models": models,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", default="runs/bench_online_warm_start", help="folder for both stores")
    p.add_argument("--model", default="et-small", help="model preset (default: et-small)")
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="change a model field"
    )
    p.add_argument("--target", default="gap")
    p.add_argument(
        "--subset", type=int, default=1500, help="QM9 molecules, drawn at random (default: 1500)"
    )
    p.add_argument("--val", type=int, default=100)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--initial", type=int, default=200)
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--growth", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=3, help="epochs per retrain from scratch")
    p.add_argument("--warm-epochs", type=int, help="epochs per warm retrain (default: --epochs)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument(
        "--seed", type=int, default=0, help="subset, arrival order and training (default: 0)"
    )
    p.add_argument("--data-root", help="QM9 folder (default: <data root>/qm9)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", default=None, help="results file (default: OUT/results.json)")
    return p.parse_args(argv)


def model_overrides(assignments: list[str]) -> dict[str, Any]:
    """``--set FIELD=VALUE`` as model fields, each value read as YAML."""
    overrides = {}
    for text in assignments:
        key, value = parse_assignment(text)
        overrides[key] = yaml.safe_load(value)
    return overrides


def configs(
    args: argparse.Namespace, overrides: dict[str, Any], root: Path, out: Path
) -> tuple[OnlineConfig, OnlineConfig]:
    """The from-scratch and the warm-start config: the same data, trigger and training."""
    train = {
        "model": {"preset": args.model, **overrides},
        "target": args.target,
        "subset": args.subset,
        "subset_seed": args.seed,
        "epochs": args.epochs,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "data_root": str(root),
    }
    base = OnlineConfig(
        store=str(out / "scratch"), train=train, initial=args.initial, chunk=args.chunk,
        growth=args.growth, val=args.val, test=args.test, warm_start=False,
    )  # fmt: skip
    warm_train = base.train.replace(epochs=args.warm_epochs or args.epochs)
    warm = replace(base, store=str(out / "warm"), warm_start=True, train=warm_train)
    return base, warm


def print_runs(results: dict[str, Any]) -> None:
    """Each retrain's test MAE and training seconds, scratch beside warm, and the totals."""
    rows: list[dict[str, Any]] = [
        {
            "molecules": s["data_size"],
            "scratch": s["test_mae"],
            "warm": w["test_mae"],
            "s_scratch": s["train_seconds"],
            "s_warm": w["train_seconds"],
        }
        for s, w in zip(results["scratch"]["models"], results["warm"]["models"], strict=True)
    ]
    rows.append(
        {
            "molecules": "total",
            "s_scratch": results["scratch"]["train_seconds"],
            "s_warm": results["warm"]["train_seconds"],
        }
    )
    print_table(
        rows,
        [
            Column("molecules", "molecules", width=10),
            Column("scratch", "scratch", ".4f", width=10),
            Column("warm", "warm", ".4f", width=10),
            Column("s_scratch", "s scratch", ".1f", width=10),
            Column("s_warm", "s warm", ".1f", width=10),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = machine_meta("cpu")
    overrides = model_overrides(args.set)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)  # a benchmark starts from empty stores
    from molgnn.data import qm9_root

    root = qm9_root(args.data_root)
    base, warm = configs(args, overrides, root, out)
    # --subset molecules drawn at random from all of QM9 (its file order runs roughly by size),
    # the source that run_online would open from the config
    source = open_qm9(root, target=args.target, subset=args.subset, seed=args.seed)
    results = {}
    for name, config in (("scratch", base), ("warm", warm)):
        print(f"running {name} ...", flush=True)
        results[name] = run_mode(config, source)
    unit = source.units[0]
    print(f"\ntest MAE ({unit}) against training molecules, {args.model} {overrides or ''}")
    print_runs(results)
    settings = {k: v for k, v in base.to_dict().items() if k != "train"}
    settings.update(base.train.to_dict(), warm_epochs=warm.train.epochs, store=str(out))
    path = Path(args.json) if args.json else out / "results.json"
    write_result(path, "online_warm_start", meta, settings=settings, unit=unit, **results)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
