"""The result file every benchmark writes, and its reader.

A result file is one JSON object::

    {"format": "molgnn-benchmark/1", "benchmark": "gnn_throughput",
     "meta": {... machine_meta(), the run's settings, "load_at_end" ...},
     ... the benchmark's own keys ("rows", ...) ...}

It is written atomically (:func:`molgnn.io.write_atomic`): a reader sees the old file or the new
one, never half of one.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .machine import load

__all__ = ["RESULTS_DIR", "RESULT_FORMAT", "read_result", "write_json", "write_result"]

RESULT_FORMAT = "molgnn-benchmark/1"
#: Where the benchmarks write their results by default.
RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
_RESERVED = ("format", "benchmark", "meta")


def _json_ready(value: Any, where: str, bad: list[str]) -> Any:
    """``value`` with paths as strings and NaN or infinity (not JSON) as ``None``, noted in
    ``bad``."""
    if isinstance(value, float) and not math.isfinite(value):
        bad.append(f"{where} = {value}")
        return None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _json_ready(v, f"{where}.{k}", bad) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v, f"{where}[{i}]", bad) for i, v in enumerate(value)]
    return value


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically.

    NaN and infinity are not JSON: they are written as ``null``, with a warning on stderr that
    names them.
    """
    from molgnn.io import write_atomic

    bad: list[str] = []
    ready = _json_ready(payload, "$", bad)
    if bad:
        print(f"WARNING: {path}: not finite, written as null: {', '.join(bad)}", file=sys.stderr)
    return write_atomic(path, json.dumps(ready, indent=2, allow_nan=False) + "\n")


def write_result(path: str | Path, benchmark: str, meta: Mapping[str, Any], /, **body: Any) -> Path:
    """Write a result file of ``benchmark`` (the script's name without ``.py``).

    ``meta`` should start from :func:`~_harness.machine.machine_meta`; ``load_at_end`` (the load
    when the file is written) is added to it. ``body`` holds the benchmark's own keys.

    Raises:
        ValueError: if ``body`` uses a key of the file format itself.
    """
    clash = [k for k in body if k in _RESERVED]
    if clash:
        raise ValueError(f"result keys {clash} are the file format's own: {list(_RESERVED)}")
    payload = {
        "format": RESULT_FORMAT,
        "benchmark": benchmark,
        "meta": {**meta, "load_at_end": load()},
        **body,
    }
    return write_json(path, payload)


def read_result(path: str | Path, benchmark: str | None = None) -> dict[str, Any]:
    """Read a result file (of ``benchmark``, if given).

    Raises:
        ValueError: if ``path`` is not a result file of this format (or of ``benchmark``).
    """
    try:
        payload = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not JSON: {err}") from None
    if not isinstance(payload, dict) or payload.get("format") != RESULT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path} is not a {RESULT_FORMAT} result file (format: {found!r})")
    if benchmark is not None and payload.get("benchmark") != benchmark:
        raise ValueError(f"{path} holds results of {payload.get('benchmark')!r}, not {benchmark!r}")
    if not isinstance(payload.get("meta"), dict):
        raise ValueError(f"{path} has no 'meta' object")
    return payload
