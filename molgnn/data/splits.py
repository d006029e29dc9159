"""Reproducible train/validation/test splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from molgnn.io.atomic import write_atomic_with

__all__ = ["NAMED_SPLITS", "SplitSpec", "load_split", "named_split", "save_split", "split_indices"]


@dataclass(frozen=True)
class SplitSpec:
    """Sizes (counts) and seed of a named split; ``test=None`` takes the rest."""

    train: int
    val: int
    test: int | None
    seed: int


#: Named splits. ``"torchmdnet-qm9"``: torchmd-net's QM9 convention, 110,000 / 10,000 / the rest,
#: shuffled with ``numpy.random.default_rng(seed=1)`` (its ``examples/ET-QM9.yaml``).
NAMED_SPLITS: dict[str, SplitSpec] = {"torchmdnet-qm9": SplitSpec(110_000, 10_000, None, 1)}


def _size(value: float | int | None, n: int, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, float):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} fraction must lie in [0, 1], got {value}")
        return round(value * n)
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return int(value)


def split_indices(
    n: int,
    train: float | int,
    val: float | int,
    test: float | int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle ``range(n)`` with ``numpy.random.default_rng(seed)`` and cut it in three.

    Sizes are counts (int) or fractions of ``n`` (float); ``test=None`` takes all the rest.
    The same arguments give the same indices on every machine.

    Returns:
        ``(train_idx, val_idx, test_idx)`` as int64 arrays.

    Raises:
        ValueError: if the sizes do not fit in ``n``.
    """
    n_train, n_val = _size(train, n, "train"), _size(val, n, "val")
    assert n_train is not None and n_val is not None
    n_test = _size(test, n, "test")
    if n_test is None:
        n_test = n - n_train - n_val
    if n_train + n_val + n_test > n or n_test < 0:
        raise ValueError(f"split {n_train} / {n_val} / {n_test} does not fit {n} molecules")
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return (
        order[:n_train],
        order[n_train : n_train + n_val],
        order[n_train + n_val : n_train + n_val + n_test],
    )


def named_split(name: str, n: int = 130_831) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A split from [`NAMED_SPLITS`][molgnn.data.NAMED_SPLITS] over ``n`` molecules."""
    try:
        spec = NAMED_SPLITS[name]
    except KeyError:
        raise ValueError(
            f"unknown split {name!r}; named splits: {', '.join(NAMED_SPLITS)}"
        ) from None
    return split_indices(n, spec.train, spec.val, spec.test, spec.seed)


def save_split(path: str | Path, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> Path:
    """Save split indices to an ``.npz`` file atomically."""

    def write(f: IO[bytes]) -> None:
        np.savez(f, train=np.asarray(train), val=np.asarray(val), test=np.asarray(test))

    return write_atomic_with(path, write)


def load_split(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load split indices saved by [`save_split`][molgnn.data.save_split]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no split file at {path}")
    with np.load(path, allow_pickle=False) as f:
        missing = {"train", "val", "test"} - set(f.files)
        if missing:
            raise ValueError(f"{path} lacks {', '.join(sorted(missing))}")
        return f["train"], f["val"], f["test"]
