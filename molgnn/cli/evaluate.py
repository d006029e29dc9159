"""``molgnn evaluate CKPT``: test errors overall and by size, parity and error plots."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "write_plots"]

_SPLITS = ("train", "val", "test")


def add_parser(subparsers: Any) -> None:
    """Register ``molgnn evaluate``."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint on its test split",
        description="Print MAE/RMSE overall and by molecule size; write parity, error and "
        "learning-curve plots (PNG, needs matplotlib: pip install 'molgnn[plot]').",
    )
    p.add_argument("checkpoint")
    p.add_argument("--split", default="test", choices=_SPLITS)
    p.add_argument("--data-root", help="dataset folder (default: the one used in training)")
    p.add_argument("--out", help="folder for plots and metrics (default: beside the checkpoint)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def write_plots(result: dict[str, Any], log: list[dict[str, Any]], out: Path) -> list[Path]:
    """Parity plot, error histogram and learning curve as PNG; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    unit = result["unit"]
    pred, y = result["pred"].flatten().numpy(), result["y"].flatten().numpy()
    written = []
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(y, pred, s=4, alpha=0.5)
    lo, hi = min(y.min(), pred.min()), max(y.max(), pred.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set(xlabel=f"reference ({unit})", ylabel=f"predicted ({unit})", title="parity")
    fig.tight_layout()
    fig.savefig(out / "parity.png", dpi=120)
    written.append(out / "parity.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(pred - y, bins=60)
    ax.set(xlabel=f"error ({unit})", ylabel="molecules", title="error histogram")
    fig.tight_layout()
    fig.savefig(out / "errors.png", dpi=120)
    written.append(out / "errors.png")
    plt.close(fig)
    if log:
        key = "val_mae_mev" if "val_mae_mev" in log[0] else "val_mae"
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([r["epoch"] for r in log], [r[key] for r in log], marker="o")
        ax.set(xlabel="epoch", ylabel=key.replace("_", " "), title="learning curve")
        ax.set_yscale("log")
        fig.tight_layout()
        fig.savefig(out / "learning_curve.png", dpi=120)
        written.append(out / "learning_curve.png")
        plt.close(fig)
    return written


def _check_evaluable(ckpt: Path) -> None:
    """Refuse, naming ``ckpt``, a checkpoint that does not load or lacks what evaluation reads."""
    from molgnn.io.checkpoint import load_checkpoint, model_from_checkpoint

    payload = load_checkpoint(ckpt)
    model_from_checkpoint(payload, source=ckpt)
    split = (payload.get("data") or {}).get("split")
    missing = [
        key
        for key, present in (
            ("train_config", isinstance(payload.get("train_config"), dict)),
            ("data.split", isinstance(split, dict) and all(k in split for k in _SPLITS)),
            ("target.units", bool((payload.get("target") or {}).get("units"))),
        )
        if not present
    ]
    if missing:
        raise ValueError(
            f"{ckpt} cannot be evaluated: it has no {', '.join(missing)} (evaluation rebuilds "
            "the training data and split from them)"
        )


def run(args: argparse.Namespace) -> int:
    """Run ``molgnn evaluate``."""
    from molgnn.data.keys import MEV_PER_EV
    from molgnn.training import evaluate_checkpoint
    from molgnn.training.logs import read_log

    ckpt = Path(args.checkpoint)
    try:
        _check_evaluable(ckpt)
        result = evaluate_checkpoint(ckpt, split=args.split, data_root=args.data_root)
    except (ValueError, OSError, ImportError) as err:  # bad input, never a traceback
        print(f"molgnn evaluate: error: {err}", file=sys.stderr)
        return 1
    scale, unit = (MEV_PER_EV, "meV") if result["unit"] == "eV" else (1.0, result["unit"])
    summary = {
        "split": result["split"],
        "count": result["count"],
        "unit": unit,
        "mae": result["mae"] * scale,
        "rmse": result["rmse"] * scale,
        "by_size": result["by_size"],
    }
    out = Path(args.out) if args.out else ckpt.parent
    out.mkdir(parents=True, exist_ok=True)
    (out / f"evaluation_{args.split}.json").write_text(json.dumps(summary, indent=2))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{args.split}: {result['count']} molecules  MAE {summary['mae']:.2f} {unit}  "
            f"RMSE {summary['rmse']:.2f} {unit}"
        )
        print(f"{'atoms':>6} {'molecules':>10} {'MAE (' + unit + ')':>14}")
        for n, row in sorted(result["by_size"].items()):
            print(f"{n:>6} {row['count']:>10} {row['mae']:>14.2f}")
    try:
        files = write_plots(result, read_log(ckpt.parent), out)
    except ImportError:
        print("plots need matplotlib: pip install 'molgnn[plot]'")
    else:
        if not args.json:
            print("plots: " + ", ".join(str(f) for f in files))
    return 0
