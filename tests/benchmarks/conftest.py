"""The benchmark scripts import their shared harness as ``_harness`` (``benchmarks/`` is on
``sys.path`` when a script runs); the harness's own tests import it the same way."""

import sys
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
