"""Files molgnn writes and reads: crash-safe writes and the checkpoint format."""

from molgnn.io.atomic import fsync_dir, write_atomic, write_atomic_with
from molgnn.io.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    file_sha256,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "file_sha256",
    "fsync_dir",
    "load_checkpoint",
    "model_from_checkpoint",
    "save_checkpoint",
    "write_atomic",
    "write_atomic_with",
]
