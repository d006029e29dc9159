"""Run a toy sweep in its own process (so a test can kill it): ``python tune_sweep_driver.py JSON``.

JSON holds SweepConfig fields; ``space`` uses the YAML distribution syntax.
"""

from __future__ import annotations

import json
import sys

from tune_toy_backend import ToyBackend

from molgnn.tune import SweepConfig, parse_space, run_sweep

if __name__ == "__main__":
    fields = json.loads(sys.argv[1])
    fields["space"] = parse_space(fields["space"])
    fields["points_to_evaluate"] = tuple(fields.get("points_to_evaluate", ()))
    result = run_sweep(SweepConfig(**fields), backend=ToyBackend())
    print(result.summary())
    print("STATUS", json.dumps(result.table["status"].tolist()))
    print("TRIALS", json.dumps(result.table["trial"].tolist()))
