"""Whole models: the Equivariant Transformer, TensorNet, the pooled GNN, the model wrapper,
configs and presets."""

from molgnn.models.configs import (
    AUTO_PRIOR,
    MODEL_CONFIGS,
    PRIORS,
    ETConfig,
    ModelConfig,
    PooledGNNConfig,
    TensorNetConfig,
)
from molgnn.models.equivariant_transformer import EquivariantTransformer, edge_geometry, edge_pairs
from molgnn.models.factory import PRESETS, build_model, model_config, stored_model_config
from molgnn.models.model import MolecularModel
from molgnn.models.pooled_gnn import PooledGNN, degree_histogram
from molgnn.models.tensornet import TensorNet

__all__ = [
    "AUTO_PRIOR",
    "MODEL_CONFIGS",
    "PRESETS",
    "PRIORS",
    "ETConfig",
    "EquivariantTransformer",
    "ModelConfig",
    "MolecularModel",
    "PooledGNN",
    "PooledGNNConfig",
    "TensorNet",
    "TensorNetConfig",
    "build_model",
    "degree_histogram",
    "edge_geometry",
    "edge_pairs",
    "model_config",
    "stored_model_config",
]
