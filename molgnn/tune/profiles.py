"""Named sweep settings: the defaults the sweep scripts embed.

A profile is a dict of :class:`~molgnn.tune.SweepConfig` overrides. ``laptop`` is what a sweep
script runs with no arguments (a QM9 subset, a few small trials, about five minutes on two CPU
cores), ``smoke`` is the CI check (about two minutes) and ``gpu`` is a starting point for a
machine or cluster with GPUs (the full search space, the paper's configuration first).
"""

from __future__ import annotations

from typing import Any

from molgnn.tune.spaces import ET_PAPER_CONFIG, parse_space, search_space

__all__ = ["PROFILES", "profile"]

# CPU-sized ranges: the ET's fields, narrowed so that a trial takes seconds per epoch.
_ET_CPU_SPACE = parse_space(
    {
        "hidden_channels": {"choice": [32, 64]},
        "num_layers": {"choice": [1, 2, 3]},
        "num_heads": {"choice": [4, 8]},
        "num_rbf": {"choice": [16, 32]},
        "cutoff_upper": {"uniform": [4.0, 5.5]},
        "lr": {"loguniform": [3e-4, 3e-3]},
        "warmup_steps": {"choice": [0, 50]},
        "batch_size": {"choice": [32, 64]},
        "weight_decay": {"choice": [0.0, 1e-5]},
    }
)
_ET_SMOKE_SPACE = parse_space(
    {
        "hidden_channels": {"choice": [16, 32]},
        "num_layers": 1,
        "num_heads": {"choice": [4, 8]},
        "num_rbf": 16,
        "cutoff_upper": 5.0,
        "lr": {"loguniform": [5e-4, 5e-3]},
        "warmup_steps": 0,
        "batch_size": 32,
        "weight_decay": 0.0,
    }
)
_POOLED_CPU_SPACE = {
    **search_space("pooled"),
    **parse_space(
        {"hidden_channels": {"choice": [32, 64, 128]}, "num_layers": {"choice": [2, 3, 4]}}
    ),
}
_POOLED_SMOKE_SPACE = {
    **search_space("pooled"),
    **parse_space({"hidden_channels": {"choice": [16, 32]}, "num_layers": 2}),
}

#: (model kind, profile name) -> sweep overrides.
PROFILES: dict[tuple[str, str], dict[str, Any]] = {
    ("et", "laptop"): {
        "model": "et-small",
        "space": _ET_CPU_SPACE,
        "subset": 1000,
        "num_samples": 6,
        "max_epochs": 6,
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
        "max_epochs": 2,
        "grace_period": 1,
        "reduction_factor": 2.0,
        "time_budget_s": 75.0,
        "name": "et_homo_lumo_smoke",
    },
    ("et", "gpu"): {
        "model": "et-qm9",
        "space": search_space("et"),
        "subset": None,
        "num_samples": 32,
        "max_epochs": 300,
        "grace_period": 10,
        "reduction_factor": 3.0,
        "points_to_evaluate": (ET_PAPER_CONFIG,),
        "name": "et_homo_lumo",
    },
    ("pooled", "laptop"): {
        "model": "pooled",
        "space": _POOLED_CPU_SPACE,
        "subset": 1000,
        "num_samples": 8,
        "max_epochs": 8,
        "grace_period": 1,
        "reduction_factor": 2.0,
        "time_budget_s": 270.0,
        "name": "pooled_gnn_homo_lumo",
    },
    ("pooled", "smoke"): {
        "model": "pooled",
        "space": _POOLED_SMOKE_SPACE,
        "subset": 200,
        "num_samples": 3,
        "max_epochs": 2,
        "grace_period": 1,
        "reduction_factor": 2.0,
        "time_budget_s": 75.0,
        "name": "pooled_gnn_homo_lumo_smoke",
    },
    ("pooled", "gpu"): {
        "model": "pooled",
        "space": search_space("pooled"),
        "subset": None,
        "num_samples": 32,
        "max_epochs": 200,
        "grace_period": 10,
        "reduction_factor": 3.0,
        "name": "pooled_gnn_homo_lumo",
    },
}


def profile(kind: str, name: str) -> dict[str, Any]:
    """A copy of a named profile.

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
