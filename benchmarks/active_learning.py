#!/usr/bin/env python
"""Active learning in the online loop: acquisition strategies against random choice.

Runs ``molgnn.online.run_online`` once per strategy (``--strategies``) and seed (``--seeds``)
on the same randomly drawn QM9 subset (``--subset`` molecules, drawn with ``--subset-seed``
from all of QM9), with the same held-out sets, first version and training for every strategy
of a seed: each round offers ``--pool`` unlabelled candidates and the strategy computes
``--batch`` of them, so every strategy computes the same number of molecules. A model is
retrained after every round. Prints, per round, the test MAE (mean ± std over the seeds) and
how many of the true top ``--top-fraction`` of the source (the lowest ``--target`` values, by
the revealed labels, among the molecules that can be acquired) the training data holds, the
targeted search that ``lcb`` and ``ei`` make and ``random`` is the baseline of. Writes JSON
and a PNG plot of both. The configuration of the documented run (about 20 minutes with
``--workers 2`` on an idle 2-core CPU)::

    python benchmarks/active_learning.py --out /tmp/al-run --workers 2

A smoke run: ``--subset 1200 --val 100 --test 200 --initial 100 --pool 100 --batch 25
--rounds 3 --epochs 2 --seeds 0``. The stores stay under ``--out``
(``OUT/<strategy>-seed<S>``); ``Store(...).acquisitions()`` holds every round's scores.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import shutil
import statistics
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from _harness import Column, machine_meta, open_qm9, print_table, write_result

from molgnn.config import parse_assignment
from molgnn.io.atomic import write_atomic_with
from molgnn.online import ACQUISITION_STRATEGIES, OnlineConfig, Store, run_online

#: The model of the documented run: a small pooled GNN with dropout (MC dropout needs it).
MODEL = ["hidden_channels=64", "num_layers=3", "num_rbf=16", "dropout=0.1"]
STRATEGIES = ["random", "disagreement", "mc-dropout", "largest-error-oracle", "lcb", "ei"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", default="runs/bench_active_learning", help="folder of the stores")
    p.add_argument(
        "--strategies", nargs="+", default=STRATEGIES, choices=sorted(ACQUISITION_STRATEGIES)
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds")
    p.add_argument("--model", default="pooled", help="model preset (default: pooled)")
    p.add_argument(
        "--set",
        action="append",
        default=None,
        metavar="FIELD=VALUE",
        help=f"change a model field (default: {' '.join(MODEL)})",
    )
    p.add_argument("--target", default="gap")
    p.add_argument("--objective", default="minimize", choices=["minimize", "maximize"])
    p.add_argument("--subset", type=int, default=20_000, help="QM9 molecules (default: 20000)")
    p.add_argument("--subset-seed", type=int, default=0, help="draw of the subset (default: 0)")
    p.add_argument("--val", type=int, default=200)
    p.add_argument("--test", type=int, default=800)
    p.add_argument("--initial", type=int, default=200)
    p.add_argument("--pool", type=int, default=1000, help="candidates offered per round")
    p.add_argument("--batch", type=int, default=100, help="candidates computed per round")
    p.add_argument("--rounds", type=int, default=10, help="acquisition rounds per run")
    p.add_argument("--committee", type=int, default=3, help="models of 'disagreement'")
    p.add_argument("--mc-dropout-samples", type=int, default=10)
    p.add_argument(
        "--uncertainty",
        default="mc-dropout",
        choices=["committee", "mc-dropout"],
        help="the mean and std of lcb/ucb/ei (default: mc-dropout)",
    )
    p.add_argument("--kappa", type=float, default=1.0, help="lcb/ucb: mean -/+ kappa * std")
    p.add_argument("--top-fraction", type=float, default=0.01, help="the search's top share")
    p.add_argument("--epochs", type=int, default=5, help="epochs per retrain")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--data-root", help="QM9 folder (default: <data root>/qm9)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default: 1)")
    p.add_argument("--workers", type=int, default=1, help="runs in parallel processes")
    p.add_argument("--json", default=None, help="results file (default: OUT/results.json)")
    p.add_argument("--plot", default=None, help="PNG (default: OUT/active_learning.png)")
    args = p.parse_args(argv)  # fmt: skip
    if args.set is None:
        args.set = list(MODEL) if args.model == "pooled" else []
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds must differ, got {args.seeds}")
    if args.workers < 1 or args.threads < 1:
        p.error("--workers and --threads must be at least 1")
    return args


def model_overrides(assignments: list[str]) -> dict[str, Any]:
    """``--set FIELD=VALUE`` as model fields, each value read as YAML."""
    overrides = {}
    for text in assignments:
        key, value = parse_assignment(text)
        overrides[key] = yaml.safe_load(value)
    return overrides


def config(args: argparse.Namespace, strategy: str, seed: int, root: Path) -> OnlineConfig:
    """One run's settings; a seed's runs differ only in the strategy."""
    train = {
        "model": {"preset": args.model, **model_overrides(args.set)},
        "target": args.target,
        "subset": args.subset,
        "subset_seed": args.subset_seed,
        "epochs": args.epochs,
        "seed": seed,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "data_root": str(root),
    }
    return OnlineConfig(
        store=str(Path(args.out) / f"{strategy}-seed{seed}"), train=train, initial=args.initial,
        growth=1e-9, val=args.val, test=args.test, acquire=strategy, pool=args.pool,
        batch=args.batch, committee=args.committee, mc_dropout_samples=args.mc_dropout_samples,
        objective=args.objective, kappa=args.kappa, uncertainty=args.uncertainty,
        top_fraction=args.top_fraction,
        max_chunks=args.rounds + 1,  # the first version, then the rounds
    )  # fmt: skip


def top_set(args: argparse.Namespace, source: Any, seed: int) -> set[str]:
    """The true top molecules of the search: of those a run of `seed` can acquire."""
    from molgnn.online import DataStream, molecule_id, top_molecules

    held = set(DataStream.order_of(len(source), seed)[: args.val + args.test])
    values = {
        molecule_id(source[i], i): float(source[i].y.reshape(-1)[0])
        for i in range(len(source))
        if i not in held
    }
    return set(top_molecules(values, args.top_fraction, args.objective))


def run_one(args: argparse.Namespace, strategy: str, seed: int) -> dict[str, Any]:
    """One online run (in a worker process); returns its rounds."""
    torch.set_num_threads(args.threads)
    from molgnn.data import qm9_root

    root = qm9_root(args.data_root)
    source = open_qm9(root, target=args.target, subset=args.subset, seed=args.subset_seed)
    top = top_set(args, source, seed)
    start = time.perf_counter()
    store: Store = run_online(config(args, strategy, seed, root), source=source, verbose=False)
    wall = time.perf_counter() - start
    try:
        sizes = {v.id: v.size for v in store.versions()}
        mae = {sizes[m.data_version]: m.test_mae for m in store.models()}
        records = store.acquisitions()
        computed: set[str] = set()
        rounds = []
        for r, record in enumerate(records):
            computed |= set(record.chosen)
            search = record.details.get("search")
            found = len(top & computed)
            if search is not None and (search["found"], search["top"]) != (found, len(top)):
                raise RuntimeError(
                    f"{strategy} seed {seed} round {r}: the loop recorded {search['found']} of "
                    f"{search['top']} top molecules found, the benchmark counts {found} of {len(top)}"
                )
            rounds.append(
                {
                    "round": r,
                    "computed": len(computed),
                    "test_mae": mae.get(len(computed)),
                    "top_found": found,
                    "chosen_scores": [record.scores[m] for m in record.chosen] if r else [],
                }
            )
    finally:
        store.close()
    return {
        "strategy": strategy,
        "seed": seed,
        "wall_seconds": wall,
        "top": len(top),
        "rounds": rounds,
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: list[dict[str, Any]], strategies: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per strategy and round: the test MAE and the top-molecule count, mean ± std over seeds."""
    summary: dict[str, list[dict[str, Any]]] = {}
    for strategy in strategies:
        mine = [r for r in runs if r["strategy"] == strategy]
        rows = []
        for k in range(min(len(r["rounds"]) for r in mine)):
            at = [r["rounds"][k] for r in mine]
            maes = [a["test_mae"] for a in at if a["test_mae"] is not None]
            found = [float(a["top_found"]) for a in at]
            recall = [a["top_found"] / r["top"] for a, r in zip(at, mine, strict=True)]
            mae_mean, mae_std = mean_std(maes) if maes else (None, None)
            rows.append(
                {
                    "round": k,
                    "computed": at[0]["computed"],
                    "test_mae_mean": mae_mean,
                    "test_mae_std": mae_std,
                    "top_found_mean": mean_std(found)[0],
                    "top_found_std": mean_std(found)[1],
                    "recall_mean": mean_std(recall)[0],
                    "recall_std": mean_std(recall)[1],
                    "seeds": len(at),
                }
            )
        summary[strategy] = rows
    return summary


def plot(
    summary: dict[str, list[dict[str, Any]]], path: Path, unit: str, title: str
) -> Path | None:
    """Test MAE and top-molecule recall against computed molecules, mean ± std bands."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("skipping the plot: it needs matplotlib (pip install matplotlib)")
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for strategy, rows in summary.items():
        x = [r["computed"] for r in rows]
        style = {"color": "black", "linewidth": 2.2} if strategy == "random" else {}
        width = {"linewidth": 2.2} if strategy == "random" else {}
        with_mae = [r for r in rows if r["test_mae_mean"] is not None]
        mean = [r["test_mae_mean"] for r in with_mae]
        std = [r["test_mae_std"] for r in with_mae]
        xs = [r["computed"] for r in with_mae]
        (line,) = left.plot(xs, mean, marker="o", markersize=3, label=strategy, **style)
        left.fill_between(
            xs, [m - s for m, s in zip(mean, std, strict=True)],
            [m + s for m, s in zip(mean, std, strict=True)], color=line.get_color(), alpha=0.1,
        )  # fmt: skip
        recall = [100 * r["recall_mean"] for r in rows]
        band = [100 * r["recall_std"] for r in rows]
        right.plot(
            x, recall, marker="o", markersize=3, color=line.get_color(), label=strategy, **width
        )
        right.fill_between(
            x, [m - s for m, s in zip(recall, band, strict=True)],
            [m + s for m, s in zip(recall, band, strict=True)], color=line.get_color(), alpha=0.1,
        )  # fmt: skip
    left.set(xlabel="computed molecules", ylabel=f"test MAE ({unit})", title="test MAE")
    right.set(
        xlabel="computed molecules", ylabel="% of the true top found", title="targeted search"
    )
    left.legend(fontsize=8)
    fig.suptitle(textwrap.fill(title, 120), fontsize=8)
    fig.tight_layout()
    write_atomic_with(path, lambda f: fig.savefig(f, dpi=100, format="png"))
    plt.close(fig)
    return path


def cell(mean: float | None, std: float | None, spec: str) -> str:
    return "-" if mean is None or std is None else f"{mean:{spec}} ± {std:{spec}}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    meta = machine_meta("cpu")
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)  # a benchmark starts from empty stores
    out.mkdir(parents=True)
    from molgnn.data import qm9_root

    root = qm9_root(args.data_root)
    source = open_qm9(root, target=args.target, subset=args.subset, seed=args.subset_seed)
    unit = source.units[0]
    for strategy in args.strategies:  # check every setting before the first run starts
        config(args, strategy, args.seeds[0], root)
    del source
    jobs = [(s, seed) for seed in args.seeds for s in args.strategies]
    start = time.perf_counter()
    runs: list[dict[str, Any]] = []
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        futures = {pool.submit(run_one, args, s, seed): (s, seed) for s, seed in jobs}
        for future in concurrent.futures.as_completed(futures):
            run = future.result()
            runs.append(run)
            last = run["rounds"][-1]
            print(
                f"{run['strategy']} seed {run['seed']}: {run['wall_seconds']:.0f} s, test MAE "
                f"{last['test_mae']:.4f} {unit}, {last['top_found']} of the top {run['top']} found "
                f"({len(runs)}/{len(jobs)} runs, {time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    wall = time.perf_counter() - start
    runs.sort(key=lambda r: (args.strategies.index(r["strategy"]), r["seed"]))
    summary = summarise(runs, args.strategies)
    model = f"{args.model} {' '.join(args.set)}".strip()
    rounds = summary[args.strategies[0]]
    columns = [Column("computed", "computed", width=8)] + [
        Column(s, s, align=">", width=15) for s in args.strategies
    ]
    print_table(
        [
            {"computed": r["computed"], **{
                s: cell(summary[s][k]["test_mae_mean"], summary[s][k]["test_mae_std"], ".4f")
                for s in args.strategies
            }}
            for k, r in enumerate(rounds)
        ],
        columns,
        title=f"test MAE ({unit}) after every round, mean ± std over seeds {args.seeds}; {model}",
    )  # fmt: skip
    top = runs[0]["top"]
    print_table(
        [
            {"computed": r["computed"], **{
                s: cell(100 * summary[s][k]["recall_mean"], 100 * summary[s][k]["recall_std"], ".1f")
                for s in args.strategies
            }}
            for k, r in enumerate(rounds)
        ],
        columns,
        title=(
            f"{args.objective} {args.target}: % of the true top {100 * args.top_fraction:g}% "
            f"({top} molecules) in the training data, mean ± std"
        ),
    )  # fmt: skip
    print(f"\n{len(runs)} runs in {wall:.0f} s with {args.workers} worker(s)")
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "json", "plot")}
    path = Path(args.json) if args.json else out / "results.json"
    write_result(
        path, "active_learning", meta, settings=settings, unit=unit, top=top,
        wall_seconds=wall, summary=summary, runs=runs,
    )  # fmt: skip
    print(f"wrote {path}")
    title = (
        f"QM9 {args.target}, {args.subset} molecules; {args.initial} + {args.rounds} rounds of "
        f"{args.batch} from {args.pool} offered; {model}; seeds {args.seeds}"
    )
    picture = plot(
        summary, Path(args.plot) if args.plot else out / "active_learning.png", unit, title
    )
    if picture is not None:
        print(f"wrote {picture}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
