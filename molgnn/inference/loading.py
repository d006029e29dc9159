"""Load a trained model from a molgnn checkpoint ([`molgnn.load`][molgnn.inference.load])."""

from __future__ import annotations

from pathlib import Path

import torch

from molgnn.io.checkpoint import load_checkpoint, model_from_checkpoint

__all__ = ["load"]


def load(path: str | Path, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a molgnn checkpoint and return the ready model, in eval mode.

    The model predicts in the target's units (see ``model.checkpoint_info["target"]``).

    Example:
        ```python
        model = molgnn.load("runs/gap/best.ckpt")
        pred = model(z, pos, batch)  # z [N], pos [N, 3], batch [N] -> [B, 1] in eV
        ```

    Args:
        path: A ``.ckpt`` file written by molgnn (training, sweeps, the online loop).
        map_location: Device to load the weights onto (default: ``"cpu"``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: one line naming ``path``, for anything that is not a loadable molgnn model
            checkpoint (see [`load_checkpoint`][molgnn.io.load_checkpoint] and
            [`model_from_checkpoint`][molgnn.io.model_from_checkpoint]).
    """
    return model_from_checkpoint(load_checkpoint(path, map_location), source=path)
