"""Whole models: the Equivariant Transformer, the model wrapper, configs and presets."""

from molgnn.models.configs import ModelConfig
from molgnn.models.equivariant_transformer import EquivariantTransformer, edge_geometry, edge_pairs
from molgnn.models.factory import MODEL_CONFIGS, PRESETS, ETConfig, build_model, model_config
from molgnn.models.model import MolecularModel
from molgnn.models.pooled_gnn import CONVS, PooledGNN, PooledGNNConfig, PooledGNNEncoder, PooledHead

__all__ = [
    "CONVS",
    "MODEL_CONFIGS",
    "PRESETS",
    "ETConfig",
    "EquivariantTransformer",
    "ModelConfig",
    "MolecularModel",
    "PooledGNN",
    "PooledGNNConfig",
    "PooledGNNEncoder",
    "PooledHead",
    "build_model",
    "edge_geometry",
    "edge_pairs",
    "model_config",
]
