"""``molgnn registry list|show|best|lineage``: read an online store's model registry."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Register ``molgnn registry``."""
    p = subparsers.add_parser("registry", help="inspect the model registry of an online store")
    p.add_argument("action", choices=("list", "show", "best", "lineage", "versions"))
    p.add_argument("model_id", nargs="?", type=int, help="model id (show, lineage)")
    p.add_argument("--store", required=True)
    p.add_argument("--json", action="store_true", help="one JSON object per model")
    p.set_defaults(func=run)


def _row(m: Any, sizes: dict[str, int]) -> str:
    test = f"{m.test_mae:.4g}" if m.test_mae is not None else "-"
    val = f"{m.val_mae:.4g}" if m.val_mae is not None else "-"
    parent = str(m.parent_model) if m.parent_model is not None else "-"
    return (
        f"{m.id:>4}  {m.data_version[:12]}  {sizes.get(m.data_version, 0):>7}  {val:>10}  "
        f"{test:>10}  {parent:>6}  {'warm' if m.warm_start else 'scratch'}"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``molgnn registry``."""
    from pathlib import Path

    from molgnn.online import Store

    if not (Path(args.store) / "store.sqlite").is_file():
        raise FileNotFoundError(f"no online store at {args.store}")
    store = Store(args.store)
    sizes = {v.id: v.size for v in store.versions()}
    if args.action == "versions":
        versions = store.versions()
        if args.json:
            for v in versions:
                print(json.dumps(v.__dict__))
        else:
            for v in versions:
                print(f"{v.seq:>4}  {v.id[:12]}  parent {str(v.parent)[:12]:>12}  {v.size:>7}")
        return 0
    if args.action in ("show", "lineage") and args.model_id is None:
        raise ValueError(f"registry {args.action} needs a model id")
    if args.action == "list":
        models = store.models()
    elif args.action == "best":
        best = store.best_model()
        models = [best] if best else []
    elif args.action == "show":
        models = [store.get_model(args.model_id)]
    else:
        models = store.lineage(args.model_id)
    if args.json:
        for m in models:
            print(json.dumps({**m.to_dict(), "data_size": sizes.get(m.data_version)}))
        return 0
    if args.action == "show" and models:
        for key, value in models[0].to_dict().items():
            print(f"{key:>18}: {value}")
        return 0
    print(
        f"{'id':>4}  {'data version':12}  {'size':>7}  {'val MAE':>10}  {'test MAE':>10}  "
        f"{'parent':>6}  start"
    )
    for m in models:
        print(_row(m, sizes))
    return 0
