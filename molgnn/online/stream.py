"""A source of labelled molecules that arrive in chunks."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch_geometric.data import Data

__all__ = ["DataStream", "molecule_id"]


def molecule_id(data: Data, position: int) -> str:
    """A stable id for a molecule: ``data.mol_id``, else ``"qm9-<idx>"``, else its position."""
    explicit = getattr(data, "mol_id", None)
    if explicit is not None:
        return str(explicit)
    idx = getattr(data, "idx", None)
    if idx is not None:
        return f"qm9-{int(idx)}"
    return f"mol-{position}"


class DataStream:
    """Releases molecules in chunks, in a seeded order, simulating a growing external source.

    Works over any indexable dataset (QM9 by default in ``molgnn online``) or over a user's own
    iterator of labelled ``Data`` molecules (``z``, ``pos``, ``y``; optional ``mol_id``).
    Chunks come on demand ([`next_chunk`][molgnn.online.DataStream.next_chunk]) or, iterating, every
    ``interval`` seconds.

    ```python
    stream = DataStream(QM9(root, subset=2000), chunk_size=[500, 100], seed=0)
    first = stream.next_chunk()  # 500 (molecule id, Data) pairs, then 100 at a time
    ```

    Args:
        source: A dataset (indexable, with ``len``) or an iterable of ``Data``.
        chunk_size: Molecules per chunk, or a schedule of successive chunk sizes whose last
            entry repeats (default: ``100``).
        seed: Seed of the release order for datasets; ``None`` keeps the source order
            (default: ``0``). Iterables are always released in their own order.
        interval: Seconds to wait between chunks when iterating, to simulate arrival over time
            (default: ``0``: on demand).
        exclude: Positions of a dataset never to release (e.g. held-out molecules).
    """

    def __init__(
        self,
        source: Sequence[Data] | Iterable[Data],
        chunk_size: int | Sequence[int] = 100,
        seed: int | None = 0,
        interval: float = 0.0,
        exclude: Sequence[int] = (),
    ) -> None:
        schedule = [chunk_size] if isinstance(chunk_size, int) else [int(c) for c in chunk_size]
        if not schedule or min(schedule) < 1:
            raise ValueError(f"chunk sizes must be at least 1, got {chunk_size}")
        if interval < 0:
            raise ValueError(f"interval must be non-negative, got {interval}")
        self.chunk_size = chunk_size
        self.schedule = schedule
        self.chunks_released = 0
        self.seed = seed
        self.interval = interval
        self.position = 0
        self._iterator: Iterator[Data] | None = None
        self._dataset: Sequence[Data] | None = None
        if hasattr(source, "__len__") and hasattr(source, "__getitem__"):
            self._dataset = source  # type: ignore[assignment]
            n = len(source)  # type: ignore[arg-type]
            if seed is None:
                order = torch.arange(n)
            else:
                order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
            excluded = set(int(i) for i in exclude)
            self.order = [int(i) for i in order if int(i) not in excluded]
        else:
            if len(exclude):
                raise ValueError("exclude needs an indexable dataset, not an iterator source")
            self._iterator = iter(source)
            self.order = []

    @staticmethod
    def order_of(n: int, seed: int | None) -> list[int]:
        """The release order of a dataset of ``n`` molecules (before exclusions)."""
        if seed is None:
            return list(range(n))
        return [int(i) for i in torch.randperm(n, generator=torch.Generator().manual_seed(seed))]

    def skip(self, count: int) -> None:
        """Skip ``count`` molecules (used to resume a stream from a store's cursor)."""
        if count < 0:
            raise ValueError(f"cannot skip a negative number of molecules ({count})")
        if self._dataset is not None:
            self.position = min(len(self.order), self.position + count)
        else:
            for _ in range(count):
                if next(self._iterator, None) is None:  # type: ignore[arg-type]
                    break
                self.position += 1

    def next_positions(self, count: int) -> list[int]:
        """Release the next `count` molecules of a dataset as their positions in it.

        For a pool that keeps released molecules until they are chosen (the online loop's
        acquisition, [`acquire_round`][molgnn.online.acquire_round]); read them with
        [`molecule`][molgnn.online.DataStream.molecule]. Empty when the stream is exhausted.

        Raises:
            ValueError: for an iterator source, or a negative `count`.
        """
        if self._dataset is None:
            raise ValueError("positions need an indexable dataset, not an iterator source")
        if count < 0:
            raise ValueError(f"cannot release a negative number of molecules ({count})")
        released = self.order[self.position : self.position + count]
        self.position += len(released)
        return released

    def molecule(self, position: int) -> tuple[str, Data]:
        """The `(molecule id, Data)` pair at a position of the dataset.

        Raises:
            ValueError: for an iterator source.
        """
        if self._dataset is None:
            raise ValueError("positions need an indexable dataset, not an iterator source")
        data = self._dataset[position]
        return molecule_id(data, position), data

    @property
    def remaining(self) -> int | None:
        """Molecules not yet released (``None`` for an iterator source)."""
        return len(self.order) - self.position if self._dataset is not None else None

    def next_chunk(self, size: int | None = None) -> list[tuple[str, Data]]:
        """Release the next chunk as ``(molecule id, Data)`` pairs; empty when exhausted.

        Args:
            size: Molecules in this chunk (default: the next size of the schedule).
        """
        if size is None:
            size = self.schedule[min(self.chunks_released, len(self.schedule) - 1)]
        if size < 1:
            raise ValueError(f"a chunk needs at least 1 molecule, got {size}")
        chunk: list[tuple[str, Data]] = []
        if self._dataset is not None:
            for pos in self.order[self.position : self.position + size]:
                chunk.append((molecule_id(self._dataset[pos], pos), self._dataset[pos]))
        else:
            for k in range(size):
                item = next(self._iterator, None)  # type: ignore[arg-type]
                if item is None:
                    break
                chunk.append((molecule_id(item, self.position + k), item))
        self.position += len(chunk)
        if chunk:
            self.chunks_released += 1
        return chunk

    def __iter__(self) -> Iterator[list[tuple[str, Data]]]:
        first = True
        while True:
            if not first and self.interval:
                time.sleep(self.interval)
            first = False
            chunk = self.next_chunk()
            if not chunk:
                return
            yield chunk

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(chunk_size={self.chunk_size}, seed={self.seed}, "
            f"position={self.position}, remaining={self.remaining})"
        )
