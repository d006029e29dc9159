#!/usr/bin/env python
"""QM9 data pipeline timings: processing vs. pandas reading the CSVs, reload, RadiusGraph.

    python benchmarks/data_qm9.py [--root DIR] [--out benchmarks/results/data_qm9.json]

Prints a table and writes JSON. Needs the qm9pack wheel (pip install 'molgnn[qm9]').
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", help="scratch dataset folder (default: a temporary folder)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "data_qm9.json"))
    args = p.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        p.error("--repeats and --threads must be positive")
    torch.set_num_threads(args.threads)

    import pandas as pd

    from molgnn.data import QM9, qm9pack_dir
    from molgnn.transforms import RadiusGraph

    folder = qm9pack_dir()
    if folder is None:
        raise SystemExit("needs the qm9pack wheel: pip install 'molgnn[qm9]'")
    csv_files = sorted(folder.glob("qm9_part*.csv"))  # three in the wheel
    if not csv_files:
        raise SystemExit(f"no qm9_part*.csv files in {folder}")
    start = time.perf_counter()
    for path in csv_files:
        pd.read_csv(path)
    pandas_s = time.perf_counter() - start

    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="molgnn-qm9-bench-"))
    shutil.rmtree(root / "processed", ignore_errors=True)
    start = time.perf_counter()
    ds = QM9(str(root), target=["gap", "U0"], progress=False)
    process_s = time.perf_counter() - start
    start = time.perf_counter()
    ds = QM9(str(root), target=["gap", "U0"], progress=False)
    reload_s = time.perf_counter() - start

    gen = torch.Generator().manual_seed(0)
    transform = RadiusGraph(cutoff=5.0, max_num_neighbors=32)
    from torch_geometric.data import Batch

    idx = torch.randint(len(ds), (128,), generator=gen).tolist()
    batch = Batch.from_data_list([ds[i] for i in idx])
    from molgnn.nn import radius_graph

    radius_graph(batch.pos, 5.0, batch.batch)
    start = time.perf_counter()
    for _ in range(args.repeats):
        radius_graph(batch.pos, 5.0, batch.batch)
    batched_ms = (time.perf_counter() - start) / args.repeats / 128 * 1000
    mols = [ds[i] for i in idx]
    start = time.perf_counter()
    for mol in mols:
        transform(mol)
    transform_ms = (time.perf_counter() - start) / len(mols) * 1000

    result = {
        "molecules": len(ds),
        "csv_files": [path.name for path in csv_files],
        "pandas_read_s": pandas_s,
        "process_s": process_s,
        "process_over_pandas": process_s / pandas_s,
        "reload_s": reload_s,
        "radius_graph_batched_ms_per_molecule": batched_ms,
        "radius_graph_transform_ms_per_molecule": transform_ms,
        "threads": args.threads,
    }
    rows = [
        ("molecules", f"{len(ds)}"),
        ("pandas reads the CSVs", f"{pandas_s:.2f} s"),
        (
            "molgnn processes all of QM9",
            f"{process_s:.2f} s ({process_s / pandas_s:.1f}x pandas; budget 5x)",
        ),
        ("second load", f"{reload_s:.3f} s (budget 3 s)"),
        ("radius_graph, batch of 128", f"{batched_ms:.4f} ms per molecule"),
        ("RadiusGraph transform, one by one", f"{transform_ms:.4f} ms per molecule"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    if not args.root:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
