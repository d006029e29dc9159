"""``molgnn tune``: hyperparameter sweeps with Ray Tune and Optuna (extra ``tune``).

The same options drive ``sweeps/et_homo_lumo.py`` and ``sweeps/pooled_gnn_homo_lumo.py``
through :func:`sweep_main`. Ray is imported only when a sweep runs, never when the parser is
built.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # pragma: no cover
    from molgnn.tune import SweepConfig

__all__ = ["add_arguments", "add_parser", "config_from_args", "run", "sweep_main"]

_KINDS = ("et", "pooled")
_PROFILES = ("laptop", "smoke", "gpu")


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    if not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(f"cannot parse the value of {key}: {err}") from err


def add_arguments(parser: argparse.ArgumentParser, kind: str | None = None) -> None:
    """Add the sweep options to a parser.

    Args:
        parser: The parser to extend.
        kind: Fixes the model kind (``"et"`` or ``"pooled"``); ``None`` adds a ``--kind``
            option.
    """
    if kind is None:
        parser.add_argument(
            "--kind", choices=_KINDS, default="et", help="model kind to tune (default: et)"
        )
    parser.add_argument(
        "--profile",
        choices=_PROFILES,
        default=None,
        help="embedded settings to start from: laptop (the default: a QM9 subset, a few small "
        "trials, ~5 min on 2 CPU cores), smoke (CI, ~2 min) or gpu (full search space)",
    )
    parser.add_argument("--smoke", action="store_true", help="same as --profile smoke")
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of sweep settings")
    parser.add_argument("--num-samples", type=int, help="number of trials")
    parser.add_argument("--max-epochs", type=int, help="epochs of the longest trial")
    parser.add_argument("--subset", type=int, help="number of QM9 molecules (0: all)")
    parser.add_argument(
        "--gpus-per-trial",
        type=float,
        help="GPUs per trial; fractional packs trials on a GPU (0.25: four per GPU). "
        "Default: 1 if the cluster has GPUs, else 0",
    )
    parser.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default: 1)")
    parser.add_argument(
        "--address",
        help="join a running Ray cluster: 'auto' or HOST:PORT (default: local Ray); a cluster "
        "with token authentication needs the head node's token in RAY_AUTH_TOKEN, the file "
        "RAY_AUTH_TOKEN_PATH names, or ~/.ray/auth_token",
    )
    parser.add_argument(
        "--storage-path",
        help="results directory or URI every node can reach (default: ~/molgnn-sweeps)",
    )
    parser.add_argument("--name", help="experiment name (a folder under the storage path)")
    parser.add_argument(
        "--resume", action="store_true", help="resume a killed sweep without rerunning trials"
    )
    parser.add_argument("--time-budget", type=float, metavar="SECONDS", help="sweep time limit")
    parser.add_argument("--seed", type=int, help="seed of Optuna's TPE sampler and of training")
    parser.add_argument("--target", help="QM9 target (default: gap)")
    parser.add_argument("--model", help="base model preset, e.g. et-small, et-qm9, pooled")
    parser.add_argument("--data-root", help="absolute directory of the processed QM9 cache")
    parser.add_argument("--space", metavar="FILE.yaml", help="YAML file with the search space")
    parser.add_argument(
        "--paper-first",
        action="store_true",
        help="evaluate the ET paper's QM9 configuration first (it must lie in the space)",
    )
    parser.add_argument("--grace-period", type=int, help="ASHA grace period in epochs")
    parser.add_argument("--reduction-factor", type=float, help="ASHA reduction factor")
    parser.add_argument(
        "--max-failures",
        type=int,
        help="retries of a failed trial (a lost node) from its last checkpoint (default: 2)",
    )
    parser.add_argument(
        "--max-concurrent-trials", type=int, help="running trials at most (default: resources)"
    )
    parser.add_argument("--num-cpus", type=int, help="CPUs of a local Ray instance")
    parser.add_argument("--num-gpus", type=int, help="GPUs of a local Ray instance")
    parser.add_argument(
        "--model-override",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fixed model-config field for every trial (repeatable)",
    )
    parser.add_argument(
        "--train-override",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fixed TrainConfig field for every trial (repeatable)",
    )
    parser.add_argument(
        "--no-export", action="store_true", help="skip the test evaluation, export and plots"
    )
    parser.add_argument("--quiet", action="store_true", help="less Ray Tune output")


_FLAG_TO_FIELD = {
    "num_samples": "num_samples",
    "max_epochs": "max_epochs",
    "gpus_per_trial": "gpus_per_trial",
    "cpus_per_trial": "cpus_per_trial",
    "address": "address",
    "storage_path": "storage_path",
    "name": "name",
    "time_budget": "time_budget_s",
    "seed": "seed",
    "target": "target",
    "model": "model",
    "data_root": "data_root",
    "grace_period": "grace_period",
    "reduction_factor": "reduction_factor",
    "max_failures": "max_failures",
    "max_concurrent_trials": "max_concurrent_trials",
    "num_cpus": "num_cpus",
    "num_gpus": "num_gpus",
}


def config_from_args(args: argparse.Namespace, kind: str | None = None) -> SweepConfig:
    """Build the sweep configuration: the profile, then the YAML file, then the flags.

    Every layer is applied with :meth:`SweepConfig.replace`, so an unknown setting fails here,
    before Ray starts.

    Args:
        args: Parsed options (see :func:`add_arguments`).
        kind: The model kind; ``None`` reads ``args.kind``.

    Returns:
        The sweep configuration.
    """
    from molgnn.tune import ET_PAPER_CONFIG, SweepConfig, load_sweep_yaml, parse_space, profile

    kind = kind or args.kind
    if args.smoke and args.profile not in (None, "smoke"):
        raise ValueError(f"--smoke contradicts --profile {args.profile}")
    config = SweepConfig().replace(
        **profile(kind, "smoke" if args.smoke else args.profile or "laptop")
    )
    if args.config:
        overrides = load_sweep_yaml(args.config)
        if isinstance(overrides.get("space"), dict):
            overrides["space"] = parse_space(overrides["space"])
        config = config.replace(**overrides)
    flags: dict[str, Any] = {
        field: getattr(args, flag)
        for flag, field in _FLAG_TO_FIELD.items()
        if getattr(args, flag) is not None
    }
    if args.subset is not None:
        flags["subset"] = None if args.subset == 0 else args.subset
    if args.space:
        flags["space"] = parse_space(load_sweep_yaml(args.space))
    if args.paper_first:
        if kind != "et":
            raise ValueError("--paper-first is only defined for the ET")
        flags["points_to_evaluate"] = (ET_PAPER_CONFIG, *config.points_to_evaluate)
    if args.resume:
        flags["resume"] = True
    if args.no_export:
        flags["export"] = False
    if args.quiet:
        flags["verbose"] = 0
    if args.model_override:
        flags["model_overrides"] = {**config.model_overrides, **dict(args.model_override)}
    if args.train_override:
        flags["train_overrides"] = {**config.train_overrides, **dict(args.train_override)}
    return config.replace(**flags)


def run(args: argparse.Namespace, kind: str | None = None, *, prog: str = "molgnn tune") -> int:
    """Run a sweep from parsed options and print its summary; returns the exit code.

    A cluster that cannot be joined (``--address``) is reported in one line on stderr,
    without a traceback, with exit code 1.

    Args:
        args: Parsed options (see :func:`add_arguments`).
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
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser, kind=kind)
    args = parser.parse_args(argv)
    try:
        return run(args, kind, prog=parser.prog)
    except (ValueError, FileNotFoundError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
