#!/usr/bin/env python
"""Tune the Equivariant Transformer for the QM9 HOMO-LUMO gap with Ray Tune and Optuna.

With no arguments it runs the embedded ``laptop`` profile: a 1000-molecule QM9 subset and a
few small trials, about five minutes on two CPU cores. ``--smoke`` is the CI check (about two
minutes). On a GPU machine or a Ray cluster, for example::

    python sweeps/et_homo_lumo.py --profile gpu --num-samples 64 --gpus-per-trial 0.25
    python sweeps/et_homo_lumo.py --profile gpu --address auto --storage-path /shared/sweeps
    python sweeps/et_homo_lumo.py --profile gpu --address auto --storage-path /shared/sweeps \\
        --resume

A cluster that uses Ray's token authentication (``ray start --head`` on a machine with a
token) is joined with the head's token, found in ``RAY_AUTH_TOKEN``, the file
``RAY_AUTH_TOKEN_PATH`` names, or ``~/.ray/auth_token``; see the Sweeps guide.

``--mlflow`` tracks the sweep on MLflow (a parent run, one nested run per trial, the best one
marked; ``--registered-model NAME`` registers the best model), see the Experiment tracking
guide::

    python sweeps/et_homo_lumo.py --mlflow --registered-model qm9-gap-et

At the end it prints the trial table, re-evaluates the best trial on the test split and writes
``<storage>/<name>/best.ckpt`` (open it with ``molgnn.load``), ``best_config.yaml`` and the
Optuna plots.
"""

from __future__ import annotations

import sys

from molgnn.cli.tune import sweep_main

if __name__ == "__main__":
    sys.exit(
        sweep_main(
            sys.argv[1:],
            "et",
            prog="et_homo_lumo.py",
            description="Tune the Equivariant Transformer for the QM9 HOMO-LUMO gap "
            "(Ray Tune: ASHA; Optuna: TPE).",
        )
    )
