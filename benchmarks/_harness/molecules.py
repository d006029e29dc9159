"""QM9 molecules for benchmarks: seeded random batches and a file of batches.

Every benchmark draws its batches the same way: ``count`` batches of ``batch_size`` molecules,
each molecule drawn uniformly at random (with replacement) by one ``torch.Generator`` seeded
with ``seed``. The batches are kept compactly on the CPU (:data:`StoredBatch`) and moved to the
device as a :class:`Batch` once, before any timing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = [
    "MOLECULES_FORMAT",
    "Batch",
    "StoredBatch",
    "draw_batches",
    "draw_indices",
    "load_molecules",
    "open_qm9",
    "save_molecules",
    "to_device",
]

#: The ``format`` of a file of batches (:func:`save_molecules`); kept from the first version of
#: ``et_throughput.py --save-molecules``, so that files it wrote still load.
MOLECULES_FORMAT = "molgnn-et-throughput-molecules/1"

#: A batch as stored: ``z`` int8 [N], ``pos`` float32 [N, 3], ``batch`` int32 [N], ``y`` float32
#: [B, 1] (the first target).
StoredBatch = dict[str, Tensor]


class Batch(NamedTuple):
    """A batch on its device, as models take it."""

    z: Tensor  # [N] int64
    pos: Tensor  # [N, 3] float32
    batch: Tensor  # [N] int64
    y: Tensor  # [B, 1] float32

    @property
    def num_molecules(self) -> int:
        return self.y.size(0)


def open_qm9(
    root: str | Path | None = None,
    target: str = "gap",
    subset: int | None = None,
    seed: int = 0,
) -> Any:
    """molgnn's QM9 in ``root`` (:func:`molgnn.data.qm9_root`: ``<data root>/qm9`` for ``None``);
    with ``subset``, that many molecules drawn at random from all of QM9 with ``seed`` (so that
    they are as large as QM9's on average)."""
    from molgnn.data import QM9, qm9_root

    return QM9(str(qm9_root(root)), target=target, subset=subset, subset_seed=seed, progress=False)


def draw_indices(size: int, count: int, batch_size: int, seed: int) -> list[list[int]]:
    """``count`` lists of ``batch_size`` positions in a dataset of ``size`` molecules, drawn
    uniformly at random (with replacement) by one generator seeded with ``seed``."""
    if count < 1 or batch_size < 1:
        raise ValueError(f"need a positive count and batch size, got {count} and {batch_size}")
    if size < 1:
        raise ValueError("cannot draw molecules from an empty dataset")
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(size, (batch_size,), generator=gen).tolist() for _ in range(count)]


def draw_batches(ds: Sequence[Any], count: int, batch_size: int, seed: int) -> list[StoredBatch]:
    """``count`` batches of ``batch_size`` molecules of ``ds`` (:func:`draw_indices`)."""
    from torch_geometric.data import Batch as PygBatch

    out = []
    for idx in draw_indices(len(ds), count, batch_size, seed):
        b = PygBatch.from_data_list([ds[i] for i in idx])
        out.append(
            {
                "z": b.z.to(torch.int8),
                "pos": b.pos.to(torch.float32),
                "batch": b.batch.to(torch.int32),
                "y": b.y.to(torch.float32).reshape(batch_size, -1)[:, :1],
            }
        )
    return out


def to_device(stored: StoredBatch, device: torch.device | str) -> Batch:
    """``stored`` on ``device``, with the dtypes models take."""
    return Batch(
        stored["z"].to(device, torch.long),
        stored["pos"].to(device, torch.float32),
        stored["batch"].to(device, torch.long),
        stored["y"].to(device, torch.float32),
    )


def save_molecules(
    path: str | Path, groups: Mapping[str, Sequence[StoredBatch]], seed: int
) -> Path:
    """Write named groups of batches (e.g. one per benchmark configuration) to ``path``."""
    from molgnn.io import write_atomic_with

    configs = {
        name: {"batch_size": batches[0]["y"].size(0), "batches": list(batches)}
        for name, batches in groups.items()
    }
    payload = {"format": MOLECULES_FORMAT, "seed": seed, "configs": configs}
    return write_atomic_with(path, lambda f: torch.save(payload, f))


def load_molecules(path: str | Path, name: str, batch_size: int, count: int) -> list[StoredBatch]:
    """The first ``count`` batches of group ``name`` from a :func:`save_molecules` file.

    Raises:
        ValueError: if ``path`` is not such a file, lacks ``name``, or its batches have another
            size or are too few.
    """
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != MOLECULES_FORMAT:
        raise ValueError(f"{path} is not a molecules file (format {MOLECULES_FORMAT!r})")
    entry = payload["configs"].get(name)
    if entry is None:
        raise ValueError(f"{path} has no batches for {name!r} (has {list(payload['configs'])})")
    if entry["batch_size"] != batch_size:
        raise ValueError(
            f"{path}: {name!r} was saved with batch size {entry['batch_size']}, "
            f"this run needs {batch_size}"
        )
    if len(entry["batches"]) < count:
        raise ValueError(
            f"{path}: {name!r} holds {len(entry['batches'])} batches, this run needs {count} "
            "(warm-up + timed steps); save it again with these options"
        )
    return list(entry["batches"][:count])
