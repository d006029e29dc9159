"""Whole models: the Equivariant Transformer, the model wrapper, configs and presets."""

from molgnn.models.equivariant_transformer import EquivariantTransformer, edge_geometry
from molgnn.models.factory import (
    MODEL_CONFIGS,
    PRESETS,
    ETConfig,
    ModelConfig,
    build_model,
    model_config,
)
from molgnn.models.model import MolecularModel

__all__ = [
    "MODEL_CONFIGS",
    "PRESETS",
    "ETConfig",
    "EquivariantTransformer",
    "ModelConfig",
    "MolecularModel",
    "build_model",
    "edge_geometry",
    "model_config",
]
