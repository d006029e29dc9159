"""``molgnn predict CKPT FILES...``: predictions as a table or JSON.

Bad input (a missing or malformed file, an unreadable checkpoint, an element the model never
saw, ...) ends the command with one line on stderr that names it, and exit code 1. Warnings
(a molecule outside the training data) go to stderr and into each JSON record; molecules
without a finite prediction get ``null`` and an ``error`` in JSON, and exit code 1.

Uncertainty: ``--member CKPT`` (repeatable) adds checkpoints to ``CKPT`` to form an ensemble
([`Ensemble`][molgnn.uncertainty.Ensemble]) that predicts the members' mean;
``--uncertainty`` also prints the members' standard deviation (a ``± std`` column, and
``std`` in each JSON record). ``--mc-dropout N`` gives a single model with dropout its MC-dropout
mean and standard deviation over ``N`` passes instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_parser"]

_NAME_WIDTH = 40


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _distance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a distance in Å, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative distance in Å, got {text}")
    return value


def _samples(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected at least 2 passes, got {value}")
    return value


def add_parser(subparsers: Any) -> None:
    """Register ``molgnn predict``."""
    p = subparsers.add_parser(
        "predict",
        help="predict with a trained model",
        description="Predict for XYZ files (any number of molecules each) or SMILES strings "
        "(3D geometry generated with RDKit, extra 'chem'). Molecules outside the training "
        "data get a warning (on stderr and in each JSON record); --strict refuses them.",
    )
    p.add_argument("checkpoint")
    p.add_argument("molecules", nargs="+", help="XYZ files or SMILES strings")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument(
        "--min-distance",
        type=_distance,
        help="refuse atoms closer than this, in Å (default: molgnn.inference.MIN_DISTANCE, "
        "0.5; 0 turns the check off)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit with an error instead of predicting a molecule that gets a warning",
    )
    p.add_argument(
        "--member",
        action="append",
        default=[],
        metavar="CKPT",
        help="another checkpoint of the ensemble (repeatable): CHECKPOINT and every --member "
        "predict together, their mean is printed",
    )
    p.add_argument(
        "--uncertainty",
        action="store_true",
        help="also print each prediction's standard deviation: over the ensemble's members "
        "(--member) or over MC-dropout passes (--mc-dropout)",
    )
    p.add_argument(
        "--mc-dropout",
        type=_samples,
        metavar="N",
        help="MC dropout: the mean and standard deviation of N forward passes with dropout on "
        "(a model trained with dropout, e.g. the pooled GNN with model.dropout > 0)",
    )
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"molgnn predict: error: {message}", file=sys.stderr)
    return 1


def _cell(record: dict[str, Any], key: str, spread: bool) -> str:
    """A value of the table (with ``± std`` when ``spread``), or ``error``."""
    if record[key] is None:
        return "error".rjust(14) + (" " * 12 if spread else "")
    if not spread:
        return f"{record[key]:14.5f}"
    std = record["std"][key]
    return f"{record[key]:14.5f}  ± {std:<8.5f}" if std is not None else f"{record[key]:14.5f}"


def run(args: argparse.Namespace) -> int:
    """Run ``molgnn predict``."""
    from molgnn.inference import load, predict

    options: dict[str, Any] = {"batch_size": args.batch_size, "strict": args.strict}
    if args.min_distance is not None:
        options["min_distance"] = args.min_distance
    if args.mc_dropout is not None and args.member:
        return _fail("--mc-dropout is for a single model; an ensemble (--member) has its own std")
    if args.uncertainty and args.mc_dropout is None and not args.member:
        return _fail("--uncertainty needs an ensemble (--member CKPT, repeated) or --mc-dropout N")
    options["uncertainty"] = args.uncertainty or args.mc_dropout is not None
    options["mc_dropout_samples"] = args.mc_dropout
    model: Any
    try:
        if args.member:
            from molgnn.uncertainty import Ensemble

            model = Ensemble.from_checkpoints([args.checkpoint, *args.member])
        else:
            model = load(args.checkpoint)
        result = predict(model, args.molecules, **options)
    except (ValueError, OSError, ImportError) as err:  # bad input, never a traceback
        return _fail(str(err))
    records = result.to_records()
    for r in records:
        for warning in r["warnings"]:
            print(f"molgnn predict: warning: {r['name']}: {warning}", file=sys.stderr)
        if "error" in r:
            print(f"molgnn predict: error: {r['name']}: {r['error']}", file=sys.stderr)
    failed = any("error" in r for r in records)
    if args.json:
        print(json.dumps(records, indent=2, allow_nan=False))
        return 1 if failed else 0
    keys = result.targets or [f"y{t}" for t in range(result.values.size(1))]
    units = result.units or [""] * len(keys)
    names = [
        r["name"] if len(r["name"]) <= _NAME_WIDTH else f"{r['name'][:18]}...{r['name'][-19:]}"
        for r in records
    ]
    width = max(8, *(len(n) for n in names))
    spread = result.std is not None
    header = "  ".join(
        f"{k} ({u})".rjust(14) + ("  " + "± std".ljust(10) if spread else "")
        for k, u in zip(keys, units)
    )
    print(f"{'molecule'.ljust(width)}  {header}")
    for name, r in zip(names, records):
        values = "  ".join(_cell(r, k, spread) for k in keys)
        notes = []
        if r["generated_geometry"]:
            notes.append("geometry generated")
        if r["warnings"]:
            notes.append(f"{len(r['warnings'])} warning(s)")
        note = f"  ({', '.join(notes)})" if notes else ""
        print(f"{name.ljust(width)}  {values}{note}")
    return 1 if failed else 0
