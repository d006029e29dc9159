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
import json
import platform
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from molgnn.online import OnlineConfig, Store, run_online
from molgnn.training.config import parse_assignment


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench_online_warm_start", help="folder for both stores")
    p.add_argument("--model", default="et-small")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
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
    p.add_argument("--data-root")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", default=None, help="results file (default: OUT/results.json)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {}
    for text in args.set:
        key, value = parse_assignment(text)
        overrides[key] = yaml.safe_load(value)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)  # a benchmark starts from empty stores
    base = OnlineConfig(
        store=str(out / "scratch"), model=args.model, model_overrides=overrides,
        target=args.target, subset=args.subset, subset_seed=args.seed, initial=args.initial,
        chunk=args.chunk, growth=args.growth, val=args.val, test=args.test, epochs=args.epochs,
        warm_start=False, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
        data_root=args.data_root,
    )  # fmt: skip
    warm = replace(
        base, store=str(out / "warm"), warm_start=True, epochs=args.warm_epochs or args.epochs
    )
    from molgnn.data import QM9
    from molgnn.training.data import default_data_root

    root = Path(args.data_root) if args.data_root else default_data_root() / "qm9"
    # --subset molecules drawn at random from all of QM9 (its file order runs roughly by size),
    # the source that run_online would open from the config
    source = QM9(
        str(root.resolve()),
        target=args.target,
        subset=base.subset,
        subset_seed=base.subset_seed,
        progress=False,
    )
    results = {}
    for name, config in (("scratch", base), ("warm", warm)):
        print(f"running {name} ...", flush=True)
        results[name] = run_mode(config, source)
    unit = source.units[0]
    print(f"\ntest MAE ({unit}) against training molecules, {args.model} {overrides or ''}")
    print(f"{'molecules':>10}  {'scratch':>10}  {'warm':>10}  {'s scratch':>10}  {'s warm':>10}")
    for s, w in zip(results["scratch"]["models"], results["warm"]["models"], strict=True):
        print(
            f"{s['data_size']:>10}  {s['test_mae']:>10.4f}  {w['test_mae']:>10.4f}  "
            f"{s['train_seconds']:>10.1f}  {w['train_seconds']:>10.1f}"
        )
    print(
        f"{'total':>10}  {'':>10}  {'':>10}  {results['scratch']['train_seconds']:>10.1f}  "
        f"{results['warm']['train_seconds']:>10.1f}"
    )
    report = {
        "settings": {**asdict(base), "warm_epochs": warm.epochs, "store": str(out)},
        "unit": unit,
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        **results,
    }
    path = Path(args.json) if args.json else out / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
