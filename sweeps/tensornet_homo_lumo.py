#!/usr/bin/env python
"""Tune TensorNet for the QM9 HOMO-LUMO gap with Ray Tune and Optuna.

The search space covers TensorNet's width, depth, radial basis and cutoff, and the optimiser's
learning rate, warm-up, batch size and weight decay (``molgnn.tune.TENSORNET_SEARCH_SPACE``).
With no arguments it runs the embedded ``laptop`` profile (about five minutes on two CPU
cores); ``--smoke`` is the CI check; ``--profile gpu`` starts from the paper's QM9 model
(``tensornet-qm9``). See ``sweeps/et_homo_lumo.py`` for GPU, cluster and MLflow tracking
(``--mlflow``) examples: the options are the same.
"""

from __future__ import annotations

import sys

from molgnn.cli.tune import sweep_main

if __name__ == "__main__":
    sys.exit(
        sweep_main(
            sys.argv[1:],
            "tensornet",
            prog="tensornet_homo_lumo.py",
            description="Tune TensorNet for the QM9 HOMO-LUMO gap (Ray Tune: ASHA; Optuna: TPE).",
        )
    )
