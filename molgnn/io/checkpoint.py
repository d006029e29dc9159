"""molgnn's checkpoint format: one versioned file, written atomically, loaded safely.

A checkpoint is a ``torch.save`` of plain containers, numbers, strings and tensors, so it loads
with ``torch.load(..., weights_only=True)``; a file that needs arbitrary unpickling is refused.

Keys: ``format`` and ``format_version``; ``molgnn_version``; ``model_config`` (the model config's
``to_dict()``, read back by
[`molgnn.models.stored_model_config`][molgnn.models.stored_model_config], which knows the field
names of older molgnn versions); ``state_dict``; ``target`` (names and units); ``normalization``
(mean, std, whether the atom-reference prior is on); ``data`` (dataset, subset, subset seed,
``molecule_ids``: the QM9 ids of the dataset's molecules in order, split indices, data version);
``metrics``; ``train_config``; and, in resumable checkpoints, ``training_state``.
[`molgnn.training.data.dataset_from_checkpoint`][molgnn.training.dataset_from_checkpoint] rebuilds
the dataset from that record.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from molgnn._version import __version__
from molgnn.io.atomic import write_atomic_with

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "file_sha256",
    "load_checkpoint",
    "model_from_checkpoint",
    "save_checkpoint",
]

FORMAT = "molgnn-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically and durably
    ([`molgnn.io.write_atomic_with`][molgnn.io.write_atomic_with]).

    A crash or power cut leaves either the old file or the new one, never a half-written file.

    Args:
        payload: Checkpoint contents (format keys are added).
        path: Destination file; its folder is created if needed.

    Returns:
        The path written.
    """
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "molgnn_version": __version__,
        **payload,
    }
    return write_atomic_with(path, lambda f: torch.save(payload, f), durable=True)


# Boilerplate lines of torch.load's weights_only errors; the line that names the problem remains.
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def _first_line(err: BaseException) -> str:
    """The informative line of an exception's message (torch's run over many lines)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # torch colours some words
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):  # weights_only refusals name the object after this tag
        if "WeightsUnpickler error:" in line:
            reason = line.split("WeightsUnpickler error:", 1)[1].strip()
            if not reason and i + 1 < len(lines):
                reason = lines[i + 1]
            return reason.split(" Please use")[0]  # not the advice to allow-list it
    useful = [line for line in lines if not line.startswith(_TORCH_BOILERPLATE)]
    return (useful or lines or [type(err).__name__])[0]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a molgnn checkpoint with ``weights_only=True`` and check its format.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for a folder, an unreadable file, a file that is not a molgnn checkpoint,
            needs unsafe unpickling, is truncated, or was written by a newer molgnn. Every
            message is one line that names ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise ValueError(f"{path}: cannot read the checkpoint: {err.strerror or err}") from None
    # torch.save writes a zip archive (or, in its legacy format, a pickle: protocol byte 0x80).
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
        kind = "an empty file" if not magic else "neither a zip archive nor a pickle"
        raise ValueError(
            f"{path} is not a molgnn checkpoint ({kind}; checkpoints are written by "
            "molgnn train, molgnn tune and molgnn online)"
        )
    try:
        with warnings.catch_warnings():
            # A foreign pickle protocol only draws a warning; refusing or loading it is decided below.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path} holds pickled Python objects that molgnn will not load (weights_only=True "
            f"refuses them); only load checkpoints written by molgnn. Details: {_first_line(err)}"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        # The file opened above, so an OSError here comes from a damaged archive.
        raise ValueError(
            f"{path} is not a readable checkpoint (truncated or corrupt?): {_first_line(err)}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a molgnn checkpoint (a torch.save file without the "
            f"'format': {FORMAT!r} key)"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses checkpoint format version {version}, written by molgnn "
            f"{payload.get('molgnn_version')}; this molgnn ({__version__}) reads versions up to "
            f"{FORMAT_VERSION}. Upgrade molgnn to load it."
        )
    return payload


def _state_dict_mismatch(model: torch.nn.Module, state: dict[str, Any]) -> str | None:
    """One line describing how ``state`` fails to fit ``model``, or ``None`` if it fits."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: checkpoint {list(state[k].shape)}, model {list(v.shape)}"
        for k, v in expected.items()
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != v.shape
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" and {len(items) - 2} more" if len(items) > 2 else ""
            parts.append(f"{len(items)} {label} ({'; '.join(items[:2])}{more})")
    return ", ".join(parts) or None


def model_from_checkpoint(
    payload: dict[str, Any], source: str | Path = "checkpoint"
) -> torch.nn.Module:
    """Rebuild the model of a loaded checkpoint (in eval mode) with its weights.

    Args:
        payload: A checkpoint read by [`load_checkpoint`][molgnn.io.load_checkpoint].
        source: The checkpoint's name in error messages (default: ``"checkpoint"``).

    Raises:
        ValueError: naming ``source``, for a checkpoint without ``model_config`` or
            ``state_dict``, a ``model_config`` that does not build a model, or weights that do
            not fit the model it describes.
    """
    # Imported here: molgnn.models imports molgnn.data, which writes its files through molgnn.io.
    from molgnn.models import stored_model_config

    config = payload.get("model_config")
    if not isinstance(config, dict):
        what = "no 'model_config'" if config is None else "a 'model_config' that is not a dict"
        raise ValueError(
            f"{source} has {what}, so the model cannot be rebuilt (is it a model checkpoint "
            "written by molgnn?)"
        )
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise ValueError(f"{source} has no 'state_dict' (the model's weights)")
    try:
        model = stored_model_config(config).build()
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{source}: its model_config does not build a model: {err}") from None
    mismatch = _state_dict_mismatch(model, state)
    if mismatch is not None:
        raise ValueError(
            f"{source}: the weights do not fit the model its model_config describes: {mismatch}"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{source}: cannot load the weights: {_first_line(err)}") from None
    model.eval()
    model.checkpoint_info = {  # type: ignore[assignment]
        k: payload.get(k) for k in ("target", "normalization", "data", "metrics", "molgnn_version")
    }
    return model


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (for registries and integrity checks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
