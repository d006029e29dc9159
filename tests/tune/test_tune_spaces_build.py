"""Every categorical value of the search spaces names something the model factory can build."""

from __future__ import annotations

import pytest

from molgnn.models import build_model
from molgnn.tune import search_space


@pytest.mark.parametrize(("kind", "preset"), [("pooled", "pooled"), ("et", "et-small")])
def test_every_choice_builds_a_model(kind: str, preset: str) -> None:
    space = search_space(kind)
    small = (
        {"hidden_channels": 16, "num_layers": 1}
        if kind == "pooled"
        else {"hidden_channels": 16, "num_layers": 1, "num_heads": 2, "num_rbf": 8}
    )
    from molgnn.models import model_config

    fields = {f for f in model_config(preset).to_dict() if f != "kind"}
    for name, domain in space.items():
        if name not in fields or not hasattr(domain, "categories"):
            continue
        for value in domain.categories:
            overrides = {**small, name: value}
            if name == "hidden_channels":
                overrides["hidden_channels"] = value
            if kind == "et" and name == "num_heads":
                overrides["hidden_channels"] = 16 * value
            build_model(preset, **overrides)
