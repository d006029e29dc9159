"""Per-epoch training logs as CSV and JSON lines, rewritten atomically."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from molgnn.io.atomic import write_atomic

__all__ = ["read_log", "write_logs"]


def write_logs(out_dir: Path, history: list[dict[str, Any]]) -> None:
    """Write ``log.csv`` and ``log.jsonl`` from the whole history.

    Rewriting from the history kept in the checkpoint means a resumed run never duplicates or
    loses an epoch's line.
    """
    rows = [{k: v for k, v in h.items() if not isinstance(v, dict)} for h in history]
    write_atomic(out_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_atomic(out_dir / "log.csv", buffer.getvalue())
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # TensorBoard is optional
        return
    with SummaryWriter(str(out_dir / "tensorboard")) as tb:
        last = rows[-1] if rows else {}
        for key, value in last.items():
            if isinstance(value, int | float) and key != "epoch":
                tb.add_scalar(key, value, last["epoch"])


def read_log(out_dir: str | Path) -> list[dict[str, Any]]:
    """Read ``log.jsonl`` back (empty list if missing)."""
    path = Path(out_dir) / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
