"""Model configs, presets and build_model."""

import dataclasses
import json

import pytest
import torch

from molgnn.models import (
    MODEL_CONFIGS,
    PRESETS,
    ETConfig,
    PooledGNNConfig,
    TensorNetConfig,
    build_model,
    configs,
    factory,
    model_config,
)
from molgnn.nn import HEADS, Atomref, EquivariantScalar
from molgnn.testing import random_molecule


def test_et_qm9_preset_is_the_papers_configuration():
    cfg = PRESETS["et-qm9"]
    # torchmd-net examples/ET-QM9.yaml
    expected = dict(
        hidden_channels=256, num_layers=8, num_heads=8, num_rbf=64, rbf_type="expnorm",
        trainable_rbf=False, activation="silu", attn_activation="silu", neighbor_embedding=True,
        distance_influence="both", cutoff_lower=0.0, cutoff_upper=5.0, max_z=100,
        max_num_neighbors=64, head="equivariant_scalar", reduce_op="sum",
    )  # fmt: skip
    assert {k: getattr(cfg, k) for k in expected} == expected
    small = PRESETS["et-small"]
    assert (small.hidden_channels, small.num_layers, small.num_heads, small.num_rbf) == (
        128, 4, 8, 32,
    )  # fmt: skip
    assert dataclasses.replace(small, hidden_channels=256, num_layers=8, num_rbf=64) == cfg
    assert {
        "et": ETConfig,
        "pooled": PooledGNNConfig,
        "tensornet": TensorNetConfig,
    } == MODEL_CONFIGS
    assert factory.MODEL_CONFIGS is configs.MODEL_CONFIGS  # one registry, beside the configs


def test_configs_are_frozen_and_json_roundtrip():
    cfg = model_config("et-small", num_layers=2, prior="atomref")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.num_layers = 3  # type: ignore[misc]
    as_dict = json.loads(json.dumps(cfg.to_dict()))
    assert as_dict["kind"] == "et" and as_dict["num_layers"] == 2
    assert model_config(as_dict) == cfg
    assert model_config(cfg) is cfg
    assert model_config(cfg, num_heads=4).num_heads == 4


@pytest.mark.parametrize("head", sorted(HEADS))
def test_every_head_builds_and_runs(head):
    model = build_model(
        "et-small", hidden_channels=16, num_layers=1, num_heads=2, num_rbf=8, head=head
    ).double()
    assert isinstance(model.head, HEADS[head])
    mol = random_molecule(6, seed=1, dtype=torch.float64)
    y = model(mol.z, mol.pos)
    width = 3 if head == "equivariant_vector" else 1  # one vector per molecule
    assert y.shape == (1, width) and torch.isfinite(y).all()
    assert model.config.head == head


def test_built_model_matches_its_config():
    model = build_model("et-small", num_layers=2, prior="atomref", derivative=True)
    assert len(model.representation.attention_layers) == 2
    assert isinstance(model.head, EquivariantScalar)
    assert isinstance(model.prior, Atomref)
    assert model.derivative
    rebuilt = build_model(model.config.to_dict())
    rebuilt.load_state_dict(model.state_dict())  # same architecture, same parameter names
    assert rebuilt.config == model.config


def test_errors_name_the_problem_and_list_valid_choices():
    with pytest.raises(ValueError, match="et-qm9") as err:
        build_model("et-nope")
    assert "et-nope" in str(err.value)
    with pytest.raises(ValueError, match=r"hidden_channel\b.*valid fields: hidden_channels"):
        model_config({"kind": "et", "hidden_channel": 8})
    with pytest.raises(ValueError, match="equivariant_scalar"):
        model_config("et-small", head="linear")
    with pytest.raises(ValueError, match="atomref"):
        model_config("et-small", prior="gaussian")
    with pytest.raises(ValueError, match="kinds: et"):
        model_config({"kind": "painn"})
    with pytest.raises(ValueError, match="preset name, a dict or a model config"):
        model_config(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distance_influence"):
        build_model("et-small", distance_influence="queries")
    with pytest.raises(ValueError, match="divisible by num_heads"):
        build_model("et-small", hidden_channels=20, num_heads=8)
