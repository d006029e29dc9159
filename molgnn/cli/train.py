"""``molgnn train``: train a model (the embedded default: small ET, random QM9 gap subset)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["FLAGS", "add_parser", "config_from_args", "run"]

#: TrainConfig fields with a flag of their own (any field can be set with ``--set``).
FLAGS = (
    "model", "target", "subset", "subset_seed", "epochs", "batch_size", "lr", "seed",
    "device", "devices", "data_root", "out_dir", "compile",
)  # fmt: skip


def add_parser(subparsers: Any) -> None:
    """Register ``molgnn train``."""
    from molgnn.cli._config import add_config_arguments, add_mlflow_arguments
    from molgnn.training import TrainConfig

    p = subparsers.add_parser(
        "train",
        help="train a model on QM9",
        description=(
            "Train a model. With no arguments: the small Equivariant Transformer on 2,000 QM9 "
            "molecules drawn at random from the whole set, for the HOMO-LUMO gap, about two "
            "minutes on a 2-core CPU; it prints the test MAE in meV. The configuration is "
            "the defaults, then --config FILE, then the flags, then --set KEY=VALUE. With "
            "--mlflow (or $MLFLOW_TRACKING_URI set) the run is tracked on MLflow."
        ),
    )
    add_config_arguments(p, TrainConfig(), FLAGS)
    add_mlflow_arguments(p)
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.ckpt")
    p.add_argument("--quiet", action="store_true", help="no per-epoch output")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    """The TrainConfig: defaults, then ``--config``, then the flags, then ``--set``."""
    from molgnn.cli._config import config_from_args as build
    from molgnn.training import TrainConfig

    return build(args, TrainConfig(), FLAGS)


def run(args: argparse.Namespace) -> int:
    """Run ``molgnn train``."""
    from molgnn.cli._config import mlflow_uri
    from molgnn.training import fit

    config = config_from_args(args)
    uri = mlflow_uri(args, config.out_dir)
    if uri is None:
        fit(config, resume=args.resume, verbose=not args.quiet)
        return 0
    from molgnn.tracking import FitTracker, qm9_data

    tracker = FitTracker(uri, experiment=args.mlflow_experiment, run_name=Path(config.out_dir).name)
    with tracker:
        tracker.start(config, qm9_data(config), heldout=qm9_data(config, "test"))
        # A data-parallel fit takes no callbacks: its history is logged at the end.
        callbacks = [tracker.on_epoch] if config.devices == 1 else []
        result = fit(config, resume=args.resume, callbacks=callbacks, verbose=not args.quiet)
        tracked = tracker.finish(result)
    if not args.quiet:
        print(f"MLflow run {tracked.run_id} at {uri}; model {tracked.model_uri}")
    return 0
