"""molgnn's checkpoint format: one versioned file, written atomically, loaded safely.

A checkpoint is a ``torch.save`` of plain containers, numbers, strings and tensors, so it loads
with ``torch.load(..., weights_only=True)``; a file that needs arbitrary unpickling is refused.

Keys: ``format`` and ``format_version``; ``molgnn_version``; ``model_config`` (the model's
``to_dict()``, which rebuilds it); ``state_dict``; ``target`` (names and units); ``normalization``
(mean, std, whether the atom-reference prior is on); ``data`` (dataset, subset, split indices,
data version); ``metrics``; ``train_config``; and, in resumable checkpoints, ``training_state``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from molgnn._version import __version__

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "file_sha256",
    "load",
    "load_checkpoint",
    "model_from_checkpoint",
    "save_checkpoint",
]

FORMAT = "molgnn-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same folder, then rename.

    A crash leaves either the old file or the new one, never a half-written file.

    Args:
        payload: Checkpoint contents (format keys are added).
        path: Destination file.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "molgnn_version": __version__,
        **payload,
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a molgnn checkpoint with ``weights_only=True`` and check its format.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for a file that is not a molgnn checkpoint, needs unsafe unpickling, is
            truncated, or was written by a newer molgnn.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path} holds pickled Python objects that molgnn will not load (weights_only=True "
            f"refuses them); only load checkpoints written by molgnn. Details: {err}"
        ) from None
    except (RuntimeError, EOFError) as err:
        raise ValueError(
            f"{path} is not a readable checkpoint (truncated or corrupt?): {err}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a molgnn checkpoint")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses checkpoint format version {version}, written by molgnn "
            f"{payload.get('molgnn_version')}; this molgnn ({__version__}) reads versions up to "
            f"{FORMAT_VERSION}. Upgrade molgnn to load it."
        )
    return payload


def model_from_checkpoint(payload: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the model of a loaded checkpoint (in eval mode) with its weights."""
    from molgnn.models import build_model

    model = build_model(dict(payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    model.checkpoint_info = {  # type: ignore[assignment]
        k: payload.get(k) for k in ("target", "normalization", "data", "metrics", "molgnn_version")
    }
    return model


def load(path: str | Path, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a molgnn checkpoint and return the ready model, in eval mode.

    The model predicts in the target's units (see ``model.checkpoint_info["target"]``).

    Args:
        path: A ``.ckpt`` file written by molgnn (training, sweeps, the online loop).
        map_location: Device to load the weights onto (default: ``"cpu"``).
    """
    return model_from_checkpoint(load_checkpoint(path, map_location))


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (for registries and integrity checks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
