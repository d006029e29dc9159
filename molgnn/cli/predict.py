"""``molgnn predict CKPT FILES...``: predictions as a table or JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Register ``molgnn predict``."""
    p = subparsers.add_parser(
        "predict",
        help="predict with a trained model",
        description="Predict for XYZ files (any number of molecules each) or SMILES strings "
        "(3D geometry generated with RDKit, extra 'chem').",
    )
    p.add_argument("checkpoint")
    p.add_argument("molecules", nargs="+", help="XYZ files or SMILES strings")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``molgnn predict``."""
    from molgnn.prediction import predict
    from molgnn.training import load

    model = load(args.checkpoint)
    result = predict(model, args.molecules, batch_size=args.batch_size)
    records = result.to_records()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    keys = result.targets or [f"y{t}" for t in range(result.values.size(1))]
    units = result.units or [""] * len(keys)
    width = max(8, *(len(r["name"]) for r in records))
    header = "  ".join(f"{k} ({u})".rjust(14) for k, u in zip(keys, units))
    print(f"{'molecule'.ljust(width)}  {header}")
    for r in records:
        values = "  ".join(f"{r[k]:14.5f}" for k in keys)
        note = "  (geometry generated)" if r["generated_geometry"] else ""
        print(f"{r['name'].ljust(width)}  {values}{note}")
    return 0
