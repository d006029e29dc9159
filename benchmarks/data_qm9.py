#!/usr/bin/env python
"""QM9 data pipeline timings: processing vs. pandas reading the CSVs, reload, RadiusGraph.

    python benchmarks/data_qm9.py [--root DIR] [--out benchmarks/results/data_qm9.json]

Prints a table and writes JSON. Needs the qm9pack wheel (pip install 'molgnn[qm9]').
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from _harness import (
    RESULTS_DIR,
    Column,
    draw_indices,
    machine_meta,
    print_table,
    seconds_per_call,
    timed,
    write_result,
)

DEFAULT_OUT = RESULTS_DIR / "data_qm9.json"
#: Molecules in the batch that the radius graph is timed on.
BATCH = 128


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--root", help="scratch dataset folder (default: a temporary folder)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON (default: {DEFAULT_OUT})")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        p.error("--repeats and --threads must be positive")
    return args


def qm9pack_csvs() -> list[Path]:
    """The CSV files of the qm9pack wheel (three in the wheel)."""
    from molgnn.data import qm9pack_dir

    folder = qm9pack_dir()
    if folder is None:
        raise SystemExit("needs the qm9pack wheel: pip install 'molgnn[qm9]'")
    csv_files = sorted(folder.glob("qm9_part*.csv"))
    if not csv_files:
        raise SystemExit(f"no qm9_part*.csv files in {folder}")
    return csv_files


def time_loading(root: Path, csv_files: list[Path]) -> tuple[Any, dict[str, float]]:
    """The dataset, and the seconds pandas takes to read the CSVs, molgnn to process them into
    ``root`` and to load the processed dataset again."""
    import pandas as pd

    from molgnn.data import QM9

    _, pandas_s = timed(lambda: [pd.read_csv(path) for path in csv_files])
    shutil.rmtree(root / "processed", ignore_errors=True)
    _, process_s = timed(lambda: QM9(str(root), target=["gap", "U0"], progress=False))
    ds, reload_s = timed(lambda: QM9(str(root), target=["gap", "U0"], progress=False))
    return ds, {
        "pandas_read_s": pandas_s,
        "process_s": process_s,
        "process_over_pandas": process_s / pandas_s,
        "reload_s": reload_s,
    }


def time_radius_graph(ds: Any, repeats: int) -> dict[str, float]:
    """ms per molecule of the radius graph of a random batch of :data:`BATCH` molecules, built
    batched by ``radius_graph`` and one molecule at a time by the ``RadiusGraph`` transform."""
    from torch_geometric.data import Batch

    from molgnn.nn import radius_graph
    from molgnn.transforms import RadiusGraph

    [idx] = draw_indices(len(ds), 1, BATCH, seed=0)
    mols = [ds[i] for i in idx]
    batch = Batch.from_data_list(mols)
    batched_s = seconds_per_call(lambda: radius_graph(batch.pos, 5.0, batch.batch), repeats)
    transform = RadiusGraph(cutoff=5.0, max_num_neighbors=32)
    _, transform_s = timed(lambda: [transform(mol) for mol in mols])
    return {
        "radius_graph_batched_ms_per_molecule": batched_s / BATCH * 1000,
        "radius_graph_transform_ms_per_molecule": transform_s / len(mols) * 1000,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    meta = machine_meta("cpu")
    csv_files = qm9pack_csvs()
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="molgnn-qm9-bench-"))
    try:
        ds, loading = time_loading(root, csv_files)
        graphs = time_radius_graph(ds, args.repeats)
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)
    result = {
        "molecules": len(ds),
        "csv_files": [path.name for path in csv_files],
        **loading,
        **graphs,
        "threads": args.threads,
    }
    pandas_s, process_s = loading["pandas_read_s"], loading["process_s"]
    lines = [
        ("molecules", f"{len(ds)}"),
        ("pandas reads the CSVs", f"{pandas_s:.2f} s"),
        (
            "molgnn processes all of QM9",
            f"{process_s:.2f} s ({process_s / pandas_s:.1f}x pandas; budget 5x)",
        ),
        ("second load", f"{loading['reload_s']:.3f} s (budget 3 s)"),
        (
            f"radius_graph, batch of {BATCH}",
            f"{graphs['radius_graph_batched_ms_per_molecule']:.4f} ms per molecule",
        ),
        (
            "RadiusGraph transform, one by one",
            f"{graphs['radius_graph_transform_ms_per_molecule']:.4f} ms per molecule",
        ),
    ]
    print_table(
        [{"measure": k, "value": v} for k, v in lines],
        [Column("measure", "measure", align="<"), Column("value", "value", align="<")],
    )
    write_result(args.out, "data_qm9", {**meta, "repeats": args.repeats}, **result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
