"""``molgnn data qm9``: prepare QM9 and print a summary."""

from __future__ import annotations

import argparse
import time
from typing import Any

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Register ``molgnn data``."""
    p = subparsers.add_parser("data", help="prepare datasets")
    sub = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    q = sub.add_parser(
        "qm9",
        help="prepare QM9 offline and print a summary",
        description="Process QM9 (from qm9pack, the official release in ROOT/raw, or a download) "
        "and print the molecule count and each target's unit, mean and std.",
    )
    q.add_argument(
        "--root", help="dataset folder (default: $MOLGNN_DATA/qm9 or ~/.cache/molgnn/qm9)"
    )
    q.add_argument("--target", nargs="+", help="targets to summarise (default: all 12)")
    chosen = q.add_mutually_exclusive_group()
    chosen.add_argument(
        "--subset", type=int, metavar="N", help="N molecules drawn at random from all of QM9"
    )
    chosen.add_argument(
        "--first", type=int, metavar="N", help="the first N molecules in file order (the smallest)"
    )
    q.add_argument("--subset-seed", type=int, default=0, help="seed of the --subset draw")
    q.add_argument("--limit", type=int, help=argparse.SUPPRESS)  # removed: says what to use
    q.add_argument("--source-dir", help="folder of qm9pack-format CSV files")
    q.add_argument("--force-reload", action="store_true", help="process again")
    q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``molgnn data qm9``."""
    from molgnn.data import QM9, STANDARD_TARGETS, get_target
    from molgnn.data.paths import qm9_root

    if args.limit is not None:
        raise ValueError(
            "--limit was removed: use --subset N (N molecules drawn at random) or --first N "
            "(the first N in file order)"
        )
    root = str(qm9_root(args.root))
    targets = args.target or list(STANDARD_TARGETS)
    start = time.perf_counter()
    dataset = QM9(
        root, target=targets, subset=args.subset, subset_seed=args.subset_seed, first=args.first,
        source_dir=args.source_dir, force_reload=args.force_reload,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    y = dataset._data.y.double()
    atoms = dataset.slices["z"].diff().double()
    heavy = (dataset._data.z > 1).sum() / len(dataset)
    print(
        f"QM9: {len(dataset)} molecules, {int(atoms.sum())} atoms "
        f"(mean {atoms.mean():.1f} per molecule, {heavy:.1f} heavy), ready in {elapsed:.1f} s, "
        f"cached in {root}"
    )
    print(f"{'target':>8}  {'unit':>12}  {'mean':>14}  {'std':>12}  description")
    for k, name in enumerate(dataset.targets):
        spec = get_target(name)
        print(
            f"{name:>8}  {spec.unit:>12}  {y[:, k].mean():>14.5f}  {y[:, k].std():>12.5f}  "
            f"{spec.description}"
        )
    return 0
