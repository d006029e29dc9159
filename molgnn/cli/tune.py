"""``molgnn tune``: hyperparameter sweeps with Ray Tune and Optuna (extra ``tune``).

The same options drive ``sweeps/et_homo_lumo.py`` and ``sweeps/pooled_gnn_homo_lumo.py``
through ``sweep_main``. Ray is imported only when a sweep runs, never when the parser is
built.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from molgnn.tune import SweepConfig

__all__ = ["FLAGS", "add_arguments", "add_parser", "config_from_args", "run", "sweep_main"]

#: Fields with a flag of their own: the sweep's, then the base training config's most used
#: (any field can be set with ``--set``, training fields flat: ``--set lr=1e-3``).
FLAGS = (
    "num_samples", "gpus_per_trial", "cpus_per_trial", "address", "storage_path", "name",
    "time_budget_s", "grace_period", "reduction_factor", "max_failures",
    "max_concurrent_trials", "num_cpus", "num_gpus", "export", "verbose", "workers_per_trial",
    "model", "target", "subset", "epochs", "seed", "data_root",
)  # fmt: skip


def _profile_names() -> list[str]:
    from molgnn.tune.profiles import PROFILES

    return sorted({name for _, name in PROFILES})


def _defaults() -> Any:
    from molgnn.tune import SweepConfig

    return SweepConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sweep options to a parser: ``--config``, ``--set``, the field flags, and
    ``--profile``, ``--smoke``, ``--space``, ``--paper-first``, ``--resume``, ``--mlflow
    [URI]``, ``--mlflow-experiment`` and ``--registered-model``.

    Args:
        parser: The parser to extend.
    """
    from molgnn.cli._config import add_config_arguments, add_mlflow_arguments

    parser.add_argument(
        "--profile",
        choices=_profile_names(),
        default=None,
        help="embedded settings to start from: laptop (the default: a QM9 subset, a few small "
        "trials, ~5 min on 2 CPU cores), smoke (CI, ~2 min) or gpu (full search space)",
    )
    parser.add_argument("--smoke", action="store_true", help="same as --profile smoke")
    add_config_arguments(parser, _defaults(), FLAGS)
    parser.add_argument(
        "--space", metavar="FILE.yaml", help="YAML file with the search space (dotted names)"
    )
    parser.add_argument(
        "--paper-first",
        action="store_true",
        help="evaluate the ET paper's QM9 configuration first (it must lie in the space)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="resume a killed sweep without rerunning trials"
    )
    add_mlflow_arguments(parser)
    parser.add_argument(
        "--registered-model",
        metavar="NAME",
        help="register the best trial's model as a new version of this MLflow registered "
        "model (needs --mlflow or $MLFLOW_TRACKING_URI); the 'champion' alias moves to it "
        "when its test MAE beats the champion's on the same test molecules",
    )


def _model_kind(args: argparse.Namespace, kind: str | None) -> str:
    """The model kind whose profile to start from: the script's, else that of the model the
    flags, ``--set`` or the config file name, else the ET."""
    from molgnn.config import parse_assignment, read_yaml
    from molgnn.models import model_config

    if kind is not None:
        return kind
    model: Any = args.model
    for text in args.set:
        key, value = parse_assignment(text)
        if key in ("model", "train.model"):
            model = value
    if model is None and args.config:
        model = read_yaml(args.config).get("model")
    if model is None or (isinstance(model, dict) and not {"kind", "preset"} & set(model)):
        return "et"
    return str(model_config(model).kind)


def config_from_args(args: argparse.Namespace, kind: str | None = None) -> SweepConfig:
    """Build the sweep configuration: the profile, then ``--config``, then the flags, then
    ``--set``, checked before Ray starts.

    Args:
        args: Parsed options (see ``add_arguments``).
        kind: The model kind of the profile (the sweep scripts fix it); ``None`` takes the kind
            of the model the options name.

    Returns:
        The sweep configuration.
    """
    from molgnn.cli._config import config_from_args as build
    from molgnn.config import read_yaml
    from molgnn.tune import ET_PAPER_CONFIG, profile

    if args.smoke and args.profile not in (None, "smoke"):
        raise ValueError(f"--smoke contradicts --profile {args.profile}")
    kind = _model_kind(args, kind)
    defaults = _defaults().merged(
        profile(kind, "smoke" if args.smoke else args.profile or "laptop")
    )
    config = build(args, defaults, FLAGS)
    changes: dict[str, Any] = {}
    if args.space:
        changes["space"] = read_yaml(args.space)
    if args.paper_first:
        if config.train.model.kind != "et":
            raise ValueError("--paper-first is only defined for the ET")
        changes["points_to_evaluate"] = (ET_PAPER_CONFIG, *config.points_to_evaluate)
    if args.resume:
        changes["resume"] = True
    changes.update(_tracking_changes(args, config))
    return config.replace(**changes) if changes else config


def _tracking_changes(args: argparse.Namespace, config: SweepConfig) -> dict[str, Any]:
    """``mlflow_uri``, ``mlflow_experiment`` and ``registered_model`` from the options."""
    import os

    from molgnn.cli._config import mlflow_uri
    from molgnn.tune.config import _is_uri

    flag = getattr(args, "mlflow", None)
    changes: dict[str, Any] = {}
    if getattr(args, "registered_model", None):
        changes["registered_model"] = args.registered_model
    if flag == "" and not os.environ.get("MLFLOW_TRACKING_URI") and _is_uri(config.storage_path):
        raise ValueError(
            f"--mlflow without a URI keeps an SQLite store beside the sweep, which needs a local "
            f"--storage-path, not {config.storage_path}; give --mlflow URI (a tracking server)"
        )
    uri = mlflow_uri(args, config.experiment_path)
    if uri is not None:
        changes["mlflow_uri"] = uri
        changes["mlflow_experiment"] = getattr(args, "mlflow_experiment", "molgnn")
    return changes


def run(args: argparse.Namespace, kind: str | None = None, *, prog: str = "molgnn tune") -> int:
    """Run a sweep from parsed options and print its summary; returns the exit code.

    A cluster that cannot be joined (``--address``) is reported in one line on stderr,
    without a traceback, with exit code 1.

    Args:
        args: Parsed options (see ``add_arguments``).
        kind: The model kind; ``None`` reads ``args.kind``.
        prog: Program name for error messages.
    """
    config = config_from_args(args, kind)
    from molgnn.tune import run_sweep
    from molgnn.tune.cluster import ClusterConnectionError

    try:
        result = run_sweep(config)
    except ClusterConnectionError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0 if result.best_checkpoint is not None or not config.export else 1


def add_parser(subparsers: Any) -> None:
    """Register ``molgnn tune``.

    Args:
        subparsers: The object ``ArgumentParser.add_subparsers`` returned.
    """
    parser = subparsers.add_parser(
        "tune",
        help="tune a model with Ray Tune and Optuna",
        description="Tune a model for a QM9 target with Ray Tune (ASHA) and Optuna (TPE), on "
        "the local machine or a Ray cluster, and export the best model.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def sweep_main(
    argv: Sequence[str] | None, kind: str, *, prog: str | None = None, description: str = ""
) -> int:
    """Entry point of the sweep scripts.

    Args:
        argv: Command-line arguments (``None``: ``sys.argv[1:]``).
        kind: Model kind, ``"et"`` or ``"pooled"``.
        prog: Program name for ``--help``.
        description: Description for ``--help``.

    Returns:
        The exit code.
    """
    from molgnn.models import MODEL_CONFIGS

    if kind not in MODEL_CONFIGS:
        raise ValueError(f"kind must be one of {sorted(MODEL_CONFIGS)}, got {kind!r}")
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args, kind, prog=parser.prog)
    except (ValueError, OSError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
