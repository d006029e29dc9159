#!/usr/bin/env python
"""Tune the pooled GNN baseline for the QM9 HOMO-LUMO gap with Ray Tune and Optuna.

The search space covers the message-passing layer, the pooling, width, depth, dropout and
learning rate. With no arguments it runs the embedded ``laptop`` profile (about five minutes
on two CPU cores); ``--smoke`` is the CI check. See ``sweeps/et_homo_lumo.py`` for GPU and
cluster examples: the options are the same.
"""

from __future__ import annotations

import sys

from molgnn.cli.tune import sweep_main

if __name__ == "__main__":
    sys.exit(
        sweep_main(
            sys.argv[1:],
            "pooled",
            prog="pooled_gnn_homo_lumo.py",
            description="Tune the pooled GNN for the QM9 HOMO-LUMO gap "
            "(Ray Tune: ASHA; Optuna: TPE).",
        )
    )
