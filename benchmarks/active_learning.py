#!/usr/bin/env python
"""Active learning in the online loop: acquisition strategies against random choice.

Runs ``molgnn.online.run_online`` once per strategy (``--acquire``) on the same QM9 subset,
held-out sets, first version and training: each round offers ``--pool`` unlabelled candidates
and the strategy computes ``--batch`` of them. Prints the test MAE of every retrain against the
number of training molecules, and, for the smallest-gap search, how many of the source's
``--top`` lowest-target molecules each strategy has computed (random choice finds them in
proportion to what it computes). Writes JSON. A CPU run of a few minutes::

    python benchmarks/active_learning.py --subset 1200 --initial 100 --pool 100 --batch 25 \\
        --rounds 6 --epochs 4 --strategies random disagreement largest-error-oracle

``mc-dropout`` needs a model with dropout: ``--model pooled --set dropout=0.1``. The stores stay
under ``--out``; ``Store(OUT/<strategy>).acquisitions()`` holds every round's scores.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from _harness import Column, machine_meta, open_qm9, print_table, write_result

from molgnn.config import parse_assignment
from molgnn.online import ACQUISITION_STRATEGIES, OnlineConfig, Store, run_online


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", default="runs/bench_active_learning", help="folder of the stores")
    p.add_argument(
        "--strategies",
        nargs="+",
        default=["random", "disagreement", "largest-error-oracle"],
        choices=sorted(ACQUISITION_STRATEGIES),
    )
    p.add_argument("--model", default="et-small", help="model preset (default: et-small)")
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="change a model field"
    )
    p.add_argument("--target", default="gap")
    p.add_argument("--subset", type=int, default=1200, help="QM9 molecules (default: 1200)")
    p.add_argument("--val", type=int, default=100)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--initial", type=int, default=100)
    p.add_argument("--pool", type=int, default=100, help="candidates offered per round")
    p.add_argument("--batch", type=int, default=25, help="candidates computed per round")
    p.add_argument("--rounds", type=int, default=6, help="acquisition rounds per strategy")
    p.add_argument("--committee", type=int, default=3, help="models of 'disagreement'")
    p.add_argument("--mc-dropout-samples", type=int, default=20)
    p.add_argument(
        "--growth", type=float, default=0.01, help="retrain trigger (default: after every round)"
    )
    p.add_argument("--epochs", type=int, default=4, help="epochs per retrain")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--top", type=int, default=20, help="lowest-target molecules to search for")
    p.add_argument("--seed", type=int, default=0, help="subset, order and training (default: 0)")
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


def config(args: argparse.Namespace, strategy: str, root: Path, out: Path) -> OnlineConfig:
    """One strategy's settings; everything else is the same for all strategies."""
    train = {
        "model": {"preset": args.model, **model_overrides(args.set)},
        "target": args.target,
        "subset": args.subset,
        "subset_seed": args.seed,
        "epochs": args.epochs,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "data_root": str(root),
    }
    return OnlineConfig(
        store=str(out / strategy), train=train, initial=args.initial, growth=args.growth,
        val=args.val, test=args.test, acquire=strategy, pool=args.pool, batch=args.batch,
        committee=args.committee, mc_dropout_samples=args.mc_dropout_samples,
        max_chunks=args.rounds + 1,  # the first version, then the rounds
    )  # fmt: skip


def run_strategy(settings: OnlineConfig, source: Any, lowest: set[str]) -> dict[str, Any]:
    """One online run; returns its retrains and its smallest-target search."""
    start = time.perf_counter()
    store: Store = run_online(settings, source=source, verbose=False)
    wall = time.perf_counter() - start
    sizes = {v.id: v.size for v in store.versions()}
    models = [
        {"data_size": sizes[m.data_version], "test_mae": m.test_mae, "val_mae": m.val_mae}
        for m in store.models()
    ]
    computed = [mol for record in store.acquisitions() for mol in record.chosen]
    initial = set(store.acquisitions()[0].chosen)
    acquired = [mol for mol in computed if mol not in initial]
    store.close()
    return {
        "wall_seconds": wall,
        "models": models,
        "computed": len(computed),
        "acquired": len(acquired),
        "lowest_found": len(lowest & set(computed)),
        "lowest_found_by_acquisition": len(lowest & set(acquired)),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = machine_meta("cpu")
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)  # a benchmark starts from empty stores
    from molgnn.data import qm9_root
    from molgnn.online import DataStream, molecule_id

    root = qm9_root(args.data_root)
    source = open_qm9(root, target=args.target, subset=args.subset, seed=args.seed)
    configs = {s: config(args, s, root, out) for s in args.strategies}
    # The molecules a strategy can compute (not held out), and the --top lowest of them.
    held = set(DataStream.order_of(len(source), args.seed)[: args.val + args.test])
    values = [
        (float(source[i].y.reshape(-1)[0]), molecule_id(source[i], i))
        for i in range(len(source))
        if i not in held
    ]
    lowest = {mol for _, mol in sorted(values)[: args.top]}
    results = {}
    for strategy, settings in configs.items():
        print(f"running {strategy} ...", flush=True)
        results[strategy] = run_strategy(settings, source, lowest)
    unit = source.units[0]
    rows = []
    for strategy, result in results.items():
        for model in result["models"]:
            rows.append({"strategy": strategy, **model})
    print_table(
        rows,
        [
            Column("strategy", "strategy", align="<", width=22),
            Column("data_size", "molecules", width=10),
            Column("test_mae", f"test MAE ({unit})", ".4f", width=14),
        ],
        title=f"test MAE against training molecules, {args.model} {model_overrides(args.set) or ''}",
    )
    available = len(values)
    search = [
        {
            "strategy": strategy,
            "acquired": r["acquired"],
            "found": r["lowest_found_by_acquisition"],
            "random_expects": args.top * r["acquired"] / available,
            "seconds": r["wall_seconds"],
        }
        for strategy, r in results.items()
    ]
    print_table(
        search,
        [
            Column("strategy", "strategy", align="<", width=22),
            Column("acquired", "acquired", width=9),
            Column("found", f"of {args.top} lowest", width=12),
            Column("random_expects", "random expects", ".1f", width=14),
            Column("seconds", "s", ".0f", width=6),
        ],
        title=f"smallest-{args.target} search: the {args.top} lowest of {available} molecules",
    )
    settings = {k: v for k, v in next(iter(configs.values())).to_dict().items() if k != "train"}
    settings.update(next(iter(configs.values())).train.to_dict(), rounds=args.rounds, top=args.top)
    settings.pop("acquire", None)
    path = Path(args.json) if args.json else out / "results.json"
    write_result(
        path,
        "active_learning",
        meta,
        settings=settings,
        unit=unit,
        search=search,
        strategies=results,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
