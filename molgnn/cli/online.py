"""``molgnn online``: ingest a growing dataset, retrain on growth, register models."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``molgnn online``."""
    p = subparsers.add_parser(
        "online",
        help="simulate arriving data and retrain as it grows",
        description="Stream a random QM9 subset in chunks into a versioned store, retrain when "
        "the data has grown by --growth, and register every model. Safe to kill and re-run.",
    )
    p.add_argument("--store", required=True, help="store folder (SQLite registry + checkpoints)")
    p.add_argument("--model", default="et-small", help="model preset")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="model config override (repeatable)",
    )
    p.add_argument("--target", default="gap")
    p.add_argument(
        "--subset",
        type=int,
        default=2000,
        help="molecules in the simulated source, drawn at random from all of QM9",
    )
    p.add_argument("--subset-seed", type=int, default=0, help="seed of the --subset draw")
    p.add_argument("--initial", type=int, default=200, help="molecules in the first version")
    p.add_argument("--chunk", type=int, default=100, help="molecules per chunk")
    p.add_argument("--growth", type=float, default=0.25, help="retrain after this relative growth")
    p.add_argument("--val", type=int, default=100, help="held-out validation molecules")
    p.add_argument("--test", type=int, default=200, help="held-out test molecules")
    p.add_argument("--epochs", type=int, default=5, help="epochs per retrain")
    p.add_argument("--from-scratch", action="store_true", help="do not warm-start retrains")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--data-root")
    p.add_argument("--max-chunks", type=int, help="stop after this many chunks in this run")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``molgnn online``."""
    import yaml

    from molgnn.online import OnlineConfig, run_online
    from molgnn.training.config import parse_assignment

    overrides = {}
    for text in args.set:
        key, value = parse_assignment(text)
        overrides[key] = yaml.safe_load(value)
    config = OnlineConfig(
        store=args.store, model=args.model, model_overrides=overrides, target=args.target,
        subset=args.subset, subset_seed=args.subset_seed, initial=args.initial, chunk=args.chunk,
        growth=args.growth, val=args.val, test=args.test, epochs=args.epochs, warm_start=not args.from_scratch,
        seed=args.seed, batch_size=args.batch_size, lr=args.lr, data_root=args.data_root,
        max_chunks=args.max_chunks,
    )  # fmt: skip
    try:
        store = run_online(config, verbose=not args.quiet)
    except KeyboardInterrupt:
        print("\ninterrupted; the store is consistent: run the same command to continue")
        return 130
    print(f"{len(store.versions())} data versions, {len(store.models())} models in {args.store}")
    return 0
