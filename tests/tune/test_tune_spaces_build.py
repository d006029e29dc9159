"""Every categorical value of the search spaces names something the model factory can build."""

from __future__ import annotations

import pytest

from molgnn.training import TrainConfig
from molgnn.tune import search_space, trial_config


@pytest.mark.parametrize(
    ("kind", "preset"), [("pooled", "pooled"), ("et", "et-small"), ("tensornet", "tensornet-small")]
)
def test_every_choice_builds_a_model(kind: str, preset: str) -> None:
    space = search_space(kind)
    small = (
        {"model.hidden_channels": 16, "model.num_layers": 1, "model.num_rbf": 8}
        if kind in ("pooled", "tensornet")
        else {
            "model.hidden_channels": 16,
            "model.num_layers": 1,
            "model.num_heads": 2,
            "model.num_rbf": 8,
        }
    )
    base = TrainConfig(model=preset)
    built = 0
    for name, domain in space.items():
        if not name.startswith("model.") or not hasattr(domain, "categories"):
            continue
        for value in domain.categories:
            values = {**small, name: value}
            if kind == "et" and name == "model.num_heads":
                values["model.hidden_channels"] = 16 * value
            trial_config(base, values).resolved().model.build()
            built += 1
    assert built >= 4  # the test walked the categorical choices
