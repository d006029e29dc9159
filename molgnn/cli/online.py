"""``molgnn online``: ingest a growing dataset, retrain on growth, register models."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["FLAGS", "add_parser", "config_from_args", "run"]

#: Fields with a flag of their own: the online loop's, then the training config's most used
#: (any field can be set with ``--set``, training fields flat: ``--set lr=1e-3``).
FLAGS = (
    "store", "initial", "chunk", "growth", "val", "test", "warm_start", "max_chunks",
    "acquire", "pool", "batch",
    "model", "target", "subset", "subset_seed", "epochs", "batch_size", "lr", "seed",
    "data_root",
)  # fmt: skip


def _defaults() -> Any:
    from molgnn.online import OnlineConfig

    return OnlineConfig(store="")


def add_parser(subparsers: Any) -> None:
    """Register ``molgnn online``."""
    from molgnn.cli._config import add_config_arguments

    p = subparsers.add_parser(
        "online",
        help="simulate arriving data and retrain as it grows",
        description="Stream a random QM9 subset in chunks into a versioned store, retrain when "
        "the data has grown by --growth, and register every model. Safe to kill and re-run. "
        "The configuration is the defaults, then --config FILE (a 'molgnn train' file works), "
        "then the flags, then --set KEY=VALUE.",
    )
    add_config_arguments(p, _defaults(), FLAGS, required=("store",))
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    """The OnlineConfig: defaults, then ``--config``, then the flags, then ``--set``."""
    from molgnn.cli._config import config_from_args as build

    return build(args, _defaults(), FLAGS)


def run(args: argparse.Namespace) -> int:
    """Run ``molgnn online``."""
    from molgnn.online import run_online

    config = config_from_args(args)
    try:
        store = run_online(config, verbose=not args.quiet)
    except KeyboardInterrupt:
        print("\ninterrupted; the store is consistent: run the same command to continue")
        return 130
    print(f"{len(store.versions())} data versions, {len(store.models())} models in {config.store}")
    return 0
