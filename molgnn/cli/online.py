"""``molgnn online``: ingest a growing dataset, retrain on growth, register models."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["FLAGS", "add_parser", "config_from_args", "run"]

#: Fields with a flag of their own: the online loop's, then the training config's most used
#: (any field can be set with ``--set``, training fields flat: ``--set lr=1e-3``).
FLAGS = (
    "store", "initial", "chunk", "growth", "val", "test", "warm_start", "max_chunks",
    "registered_model",
    "acquire", "pool", "batch", "objective", "kappa",
    "model", "target", "subset", "subset_seed", "epochs", "batch_size", "lr", "seed",
    "data_root",
)  # fmt: skip


def _defaults() -> Any:
    from molgnn.online import OnlineConfig

    return OnlineConfig(store="")


def add_parser(subparsers: Any) -> None:
    """Register ``molgnn online``."""
    from molgnn.cli._config import add_config_arguments, add_mlflow_arguments

    p = subparsers.add_parser(
        "online",
        help="simulate arriving data and retrain as it grows",
        description="Stream a random QM9 subset in chunks into a versioned store, retrain when "
        "the data has grown by --growth, and register every model. Safe to kill and re-run. "
        "The configuration is the defaults, then --config FILE (a 'molgnn train' file works), "
        "then the flags, then --set KEY=VALUE. With --mlflow (or $MLFLOW_TRACKING_URI set) "
        "every retrain is an MLflow run and every model a version of --registered-model in "
        "MLflow's model registry, whose 'champion' alias follows the best test MAE.",
    )
    add_config_arguments(p, _defaults(), FLAGS, required=("store",))
    add_mlflow_arguments(p, experiment="molgnn-online")
    # Unset unless given, so that a --config file's mlflow_experiment is not overridden.
    p.set_defaults(mlflow_experiment=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    """The OnlineConfig: defaults, then ``--config``, then the flags, then ``--set``.

    ``--mlflow [URI]`` sets ``mlflow`` (alone: ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///<store>/mlflow.db``); without it, a config that names no ``mlflow`` is tracked
    when ``$MLFLOW_TRACKING_URI`` is set. ``--mlflow-experiment`` sets ``mlflow_experiment``.
    """
    from molgnn.cli._config import config_from_args as build
    from molgnn.cli._config import mlflow_uri

    config = build(args, _defaults(), FLAGS)
    changes: dict[str, Any] = {}
    if getattr(args, "mlflow", None) is not None or config.mlflow is None:
        uri = mlflow_uri(args, config.store)
        if uri is not None:
            changes["mlflow"] = uri
    if getattr(args, "mlflow_experiment", None) is not None:
        changes["mlflow_experiment"] = args.mlflow_experiment
    return config.replace(**changes) if changes else config


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
    if config.mlflow:
        from molgnn.tracking._online import model_name

        links = store.mlflow_versions(config.mlflow, model_name(config))
        print(f"{len(links)} of them are versions of {model_name(config)!r} at {config.mlflow}")
    return 0
