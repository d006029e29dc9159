"""Named sweep settings: the defaults the sweep scripts embed.

A profile is a mapping of [`SweepConfig`][molgnn.tune.SweepConfig] fields, with the training
config's fields written flat (``model``, ``subset``, ``epochs``), applied with
``SweepConfig().merged``. ``laptop`` is what a sweep script runs with no arguments (a QM9 subset, a
few small trials, about five minutes on two CPU cores), ``smoke`` is the CI check (about two
minutes) and ``gpu`` is a starting point for a machine or cluster with GPUs (the full search space,
the paper's configuration first).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ET_PAPER_CONFIG", "PROFILES", "profile"]

#: The ET's QM9 configuration (torchmd-net ``examples/ET-QM9.yaml``; Thölke & De Fabritiis,
#: ICLR 2022, https://arxiv.org/abs/2202.02541), restricted to the names of the ET's default
#: search space. Pass it as a point to evaluate first.
ET_PAPER_CONFIG: dict[str, Any] = {
    "model.hidden_channels": 256,
    "model.num_layers": 8,
    "model.num_heads": 8,
    "model.num_rbf": 64,
    "model.cutoff_upper": 5.0,
    "lr": 4e-4,
    "warmup_steps": 10000,
    "batch_size": 128,
    "weight_decay": 0.0,
}

# Spaces are written as data (the YAML syntax of molgnn.tune.parse_space), so that the
# profiles, and the command line built from them, need no Ray. ``None`` is the kind's default.
# CPU-sized ranges: the ET's fields, narrowed so that a trial takes seconds per epoch.
_ET_CPU_SPACE = {
    "model.hidden_channels": {"choice": [32, 64]},
    "model.num_layers": {"choice": [1, 2, 3]},
    "model.num_heads": {"choice": [4, 8]},
    "model.num_rbf": {"choice": [16, 32]},
    "model.cutoff_upper": {"uniform": [4.0, 5.5]},
    "lr": {"loguniform": [3e-4, 3e-3]},
    "warmup_steps": {"choice": [0, 50]},
    "batch_size": {"choice": [32, 64]},
    "weight_decay": {"choice": [0.0, 1e-5]},
}
_TENSORNET_CPU_SPACE = {
    "model.hidden_channels": {"choice": [32, 64]},
    "model.num_layers": {"choice": [1, 2]},
    "model.num_rbf": {"choice": [16, 32]},
    "model.cutoff_upper": {"uniform": [4.0, 5.5]},
    "lr": {"loguniform": [3e-4, 3e-3]},
    "warmup_steps": {"choice": [0, 50]},
    "batch_size": {"choice": [32, 64]},
}
_TENSORNET_SMOKE_SPACE = {
    "model.hidden_channels": {"choice": [16, 32]},
    "model.num_layers": 1,
    "model.num_rbf": 16,
    "lr": {"loguniform": [5e-4, 5e-3]},
    "warmup_steps": 0,
    "batch_size": 32,
}
_ET_SMOKE_SPACE = {
    "model.hidden_channels": {"choice": [16, 32]},
    "model.num_layers": 1,
    "model.num_heads": {"choice": [4, 8]},
    "model.num_rbf": 16,
    "model.cutoff_upper": 5.0,
    "lr": {"loguniform": [5e-4, 5e-3]},
    "warmup_steps": 0,
    "batch_size": 32,
    "weight_decay": 0.0,
}


def _pooled_space(hidden: Any, layers: Any) -> dict[str, Any]:
    from molgnn.nn import CONVS, POOLS

    return {
        "model.conv": {"choice": list(CONVS)},
        "model.pool": {"choice": list(POOLS)},
        "model.hidden_channels": hidden,
        "model.num_layers": layers,
        "model.dropout": {"uniform": [0.0, 0.3]},
        "lr": {"loguniform": [1e-4, 3e-3]},
    }


#: (model kind, profile name) -> sweep overrides.
PROFILES: dict[tuple[str, str], dict[str, Any]] = {
    ("tensornet", "laptop"): {
        "model": "tensornet-small",
        "space": _TENSORNET_CPU_SPACE,
        "subset": 1000,
        "num_samples": 6,
        "epochs": 6,
        "grace_period": 1,
        "reduction_factor": 2.0,
        "time_budget_s": 270.0,
        "name": "tensornet_homo_lumo",
    },
    ("tensornet", "smoke"): {
        "model": "tensornet-small",
        "space": _TENSORNET_SMOKE_SPACE,
        "subset": 200,
        "num_samples": 3,
        "epochs": 2,
        "grace_period": 1,
        "reduction_factor": 2.0,
        "time_budget_s": 75.0,
        "name": "tensornet_homo_lumo_smoke",
    },
    ("tensornet", "gpu"): {
        "model": "tensornet-qm9",
        "space": None,
        "subset": None,
        "num_samples": 32,
        "epochs": 300,
        "grace_period": 10,
        "reduction_factor": 3.0,
        "name": "tensornet_homo_lumo",
    },
    ("et", "laptop"): {
        "model": "et-small",
        "space": _ET_CPU_SPACE,
        "subset": 1000,
        "num_samples": 6,
        "epochs": 6,
        "grace_period": 1,
        "reduction_factor": 2.0,
        "time_budget_s": 270.0,
        "name": "et_homo_lumo",
    },
    ("et", "smoke"): {
        "model": "et-small",
        "space": _ET_SMOKE_SPACE,
        "subset": 200,
        "num_samples": 3,
        "epochs": 2,
        "grace_period": 1,
        "reduction_factor": 2.0,
        "time_budget_s": 75.0,
        "name": "et_homo_lumo_smoke",
    },
    ("et", "gpu"): {
        "model": "et-qm9",
        "space": None,
        "subset": None,
        "num_samples": 32,
        "epochs": 300,
        "grace_period": 10,
        "reduction_factor": 3.0,
        "points_to_evaluate": (ET_PAPER_CONFIG,),
        "name": "et_homo_lumo",
    },
    ("pooled", "laptop"): {
        "model": "pooled",
        "space": _pooled_space({"choice": [32, 64, 128]}, {"choice": [2, 3, 4]}),
        "subset": 1000,
        "num_samples": 8,
        "epochs": 8,
        "grace_period": 1,
        "reduction_factor": 2.0,
        "time_budget_s": 270.0,
        "name": "pooled_gnn_homo_lumo",
    },
    ("pooled", "smoke"): {
        "model": "pooled",
        "space": _pooled_space({"choice": [16, 32]}, 2),
        "subset": 200,
        "num_samples": 3,
        "epochs": 2,
        "grace_period": 1,
        "reduction_factor": 2.0,
        "time_budget_s": 75.0,
        "name": "pooled_gnn_homo_lumo_smoke",
    },
    ("pooled", "gpu"): {
        "model": "pooled",
        "space": None,
        "subset": None,
        "num_samples": 32,
        "epochs": 200,
        "grace_period": 10,
        "reduction_factor": 3.0,
        "name": "pooled_gnn_homo_lumo",
    },
}


def profile(kind: str, name: str) -> dict[str, Any]:
    """A copy of a named profile (its space in [`parse_space`][molgnn.tune.parse_space]'s YAML
    form).

    Args:
        kind: Model kind, ``"et"`` or ``"pooled"``.
        name: ``"laptop"``, ``"smoke"`` or ``"gpu"``.

    Returns:
        The sweep overrides.
    """
    if (kind, name) not in PROFILES:
        valid = sorted(f"{k}/{n}" for k, n in PROFILES)
        raise ValueError(f"no sweep profile {kind}/{name}; valid: {valid}")
    return dict(PROFILES[(kind, name)])
