"""Radius graphs in pure PyTorch (no pyg-lib or torch-cluster needed)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["NeighborTruncation", "TruncationReport", "radius_graph", "record_truncation"]

# Upper bound on the candidate pairs held in memory at once (about 200 MB of float32 work).
_MAX_PAIRS_PER_CHUNK = 1 << 23
# The padded (dense) search is used while padding wastes at most this factor of pair slots.
_MAX_PADDING_WASTE = 4


@dataclass(frozen=True)
class NeighborTruncation:
    """Pairs that ``max_num_neighbors`` dropped from one molecule's radius graph.

    Attributes:
        molecule: The molecule's index in ``batch``.
        found: Pairs within the radius (self loops included when ``loop=True``).
        dropped: Pairs left out because a centre had more than ``max_num_neighbors``.
        most_neighbors: The largest number of pairs any one centre had.
        max_num_neighbors: The limit in force.
    """

    molecule: int
    found: int
    dropped: int
    most_neighbors: int
    max_num_neighbors: int


@dataclass
class TruncationReport:
    """Every truncated molecule of the radius graphs built inside
    [`record_truncation`][molgnn.nn.record_truncation].

    Attributes:
        entries: One ``NeighborTruncation`` per truncated molecule and graph built.
    """

    entries: list[NeighborTruncation] = field(default_factory=list)

    def by_molecule(self) -> dict[int, NeighborTruncation]:
        """The worst truncation of each molecule (most pairs dropped), keyed by its index."""
        worst: dict[int, NeighborTruncation] = {}
        for entry in self.entries:
            seen = worst.get(entry.molecule)
            if seen is None or entry.dropped > seen.dropped:
                worst[entry.molecule] = entry
        return worst


_RECORDING: ContextVar[TruncationReport | None] = ContextVar("molgnn_truncation", default=None)


@contextlib.contextmanager
def record_truncation() -> Iterator[TruncationReport]:
    """Record the molecules whose radius graphs lose pairs to ``max_num_neighbors``.

    [`radius_graph`][molgnn.nn.radius_graph] silently keeps the nearest ``max_num_neighbors`` of a
    crowded atom, as ``torch_cluster`` does; inside this context it also reports what it left out,
    so that callers such as [`molgnn.predict`][molgnn.inference.predict] can flag those molecules.
    Recording costs a few reductions, and only when a graph is actually truncated. The record is per
    thread (and per asyncio task).

    Example:
        ```python
        with record_truncation() as report:
            model(z, pos, batch)
        for mol, t in report.by_molecule().items():
            print(mol, f"{t.dropped} of {t.found} pairs dropped")
        ```
    """
    report = TruncationReport()
    token = _RECORDING.set(report)
    try:
        yield report
    finally:
        _RECORDING.reset(token)


def _record(stats: list[Tensor], k: int) -> None:
    """Add ``[molecule, found, dropped, most]`` rows (``[4, B']`` tensors) to the active report."""
    report = _RECORDING.get()
    if report is None or not stats:
        return
    rows = torch.cat(stats, dim=1)  # [4, B'] over all pieces
    merged: dict[int, list[int]] = {}
    for mol, found, dropped, most in rows.T.tolist():
        entry = merged.setdefault(int(mol), [0, 0, 0])
        entry[0] += int(found)
        entry[1] += int(dropped)
        entry[2] = max(entry[2], int(most))
    for mol, (found, dropped, most) in sorted(merged.items()):
        if dropped:
            report.entries.append(NeighborTruncation(mol, found, dropped, most, k))


def _check_inputs(pos: Tensor, r: float, batch: Tensor | None) -> None:
    if pos.dim() != 2 or pos.size(1) != 3:
        raise ValueError(f"pos must have shape [N, 3], got {list(pos.shape)}")
    if not r > 0:
        raise ValueError(f"the radius must be positive, got {r}")
    # One reduction is cheaper than isfinite(); NaN and inf always make the sum non-finite.
    if pos.numel() and not math.isfinite(float(pos.detach().sum())):
        bad = (~torch.isfinite(pos)).any(dim=1).nonzero().flatten()[:5].tolist()
        if bad:
            raise ValueError(f"pos contains NaN or infinite coordinates (atoms {bad})")
    if batch is not None:
        if batch.shape != (pos.size(0),):
            raise ValueError(f"batch must have shape [{pos.size(0)}], got {list(batch.shape)}")
        if batch.is_floating_point() or batch.is_complex() or batch.dtype == torch.bool:
            raise ValueError(f"batch must hold integer molecule indices, got {batch.dtype}")
        if batch.numel() and int(batch.min()) < 0:
            raise ValueError("batch must not contain negative molecule indices")


def _truncate(keep: Tensor, d2: Tensor, k: int) -> Tensor:
    """Keep the ``k`` nearest candidates of each row of ``keep`` (ties: lower column first)."""
    masked = torch.where(keep, d2, torch.full_like(d2, float("inf")))
    order = torch.sort(masked, dim=-1, stable=True).indices[..., :k]
    nearest = torch.zeros_like(keep).scatter_(-1, order, True)
    return keep & nearest


def _dense(
    pos: Tensor,
    r2: float,
    loop: bool,
    k: int | None,
    batch: Tensor | None,
    counts: Tensor | None,
    width: int,
) -> Tensor:
    """Search with all molecules padded to ``width`` atoms: one ``[B, M, M]`` distance block.

    ``batch`` must be sorted (or ``None`` for one molecule). Returns ``[2, E]`` sorted by centre.
    """
    if batch is None or counts is None:
        padded = pos.unsqueeze(0)  # [1, N, 3]
        valid = None
        start = None
    else:
        start = torch.cumsum(counts, 0) - counts  # first atom of each molecule, [B]
        local = torch.arange(pos.size(0), device=pos.device) - start[batch]  # [N]
        padded = pos.new_zeros(counts.numel(), width, 3)
        padded[batch, local] = pos
        valid = torch.zeros(counts.numel(), width, dtype=torch.bool, device=pos.device)
        valid[batch, local] = True
    diff = padded.unsqueeze(1) - padded.unsqueeze(2)  # [B, M, M, 3]: [b, i, j] = r_j - r_i
    d2 = (diff * diff).sum(-1)  # [B, M, M]
    keep = d2 < r2
    if valid is not None:
        keep &= valid.unsqueeze(1) & valid.unsqueeze(2)
    if not loop:
        keep.diagonal(dim1=1, dim2=2).fill_(False)
    if k is not None and width > k and int(keep.sum(-1).max()) > k:
        if _RECORDING.get() is not None:
            per_centre = keep.sum(-1)  # [B, M] pairs within the radius
            molecule = torch.arange(per_centre.size(0), device=pos.device)
            dropped = (per_centre - k).clamp(min=0).sum(-1)
            stats = torch.stack([molecule, per_centre.sum(-1), dropped, per_centre.amax(-1)])
            _record([stats.cpu()], k)
        keep = _truncate(keep, d2, k)
    b, i, j = keep.nonzero(as_tuple=True)  # sorted by molecule, centre, neighbour
    if start is not None:
        offset = start[b]
        i, j = i + offset, j + offset
    return torch.stack([j, i])


def _chunked(pos: Tensor, r2: float, loop: bool, k: int | None, batch: Tensor) -> Tensor:
    """Search over the exact candidate pairs of each molecule, in chunks of bounded memory.

    ``batch`` must be sorted. Returns ``[2, E]`` sorted by centre, then neighbour.
    """
    n = pos.size(0)
    device = pos.device
    counts = torch.bincount(batch)
    start = torch.cumsum(counts, 0) - counts
    per_atom = counts[batch]  # candidates of each centre, [N]
    atom_start = start[batch]
    cum = torch.cumsum(per_atom, 0)
    pieces: list[Tensor] = []
    stats: list[Tensor] = []
    recording = _RECORDING.get() is not None
    chunk_begin = 0
    while chunk_begin < n:
        limit = (cum[chunk_begin - 1] if chunk_begin else 0) + _MAX_PAIRS_PER_CHUNK
        chunk_end = int(torch.searchsorted(cum, torch.as_tensor(limit, device=device), right=True))
        chunk_end = max(chunk_end, chunk_begin + 1)
        centres = torch.arange(chunk_begin, chunk_end, device=device)
        reps = per_atom[chunk_begin:chunk_end]
        i = torch.repeat_interleave(centres, reps)  # [P]
        offset = torch.arange(i.numel(), device=device) - torch.repeat_interleave(
            torch.cumsum(reps, 0) - reps, reps
        )
        j = atom_start[i] + offset  # [P]
        diff = pos.index_select(0, j) - pos.index_select(0, i)  # [P, 3]
        d2 = (diff * diff).sum(-1)
        keep = d2 < r2
        if not loop:
            keep &= i != j
        sel = keep.nonzero().flatten()
        i, j, d2 = i.index_select(0, sel), j.index_select(0, sel), d2.index_select(0, sel)
        if k is not None and i.numel():
            group_size = torch.bincount(i - chunk_begin, minlength=chunk_end - chunk_begin)
            if int(group_size.max()) > k:
                if recording:
                    molecule = batch[chunk_begin:chunk_end]  # [C] molecule of each centre
                    num = int(molecule.max()) + 1
                    found = torch.bincount(molecule, group_size, minlength=num)
                    dropped = torch.bincount(molecule, (group_size - k).clamp(min=0), minlength=num)
                    most = torch.zeros(num, dtype=torch.long, device=device)
                    most.scatter_reduce_(0, molecule, group_size, "amax")
                    ids = torch.arange(num, device=device)
                    stats.append(torch.stack([ids, found.long(), dropped.long(), most]).cpu())
                # Rank neighbours of each centre by distance (then index) and keep the first k.
                by_dist = torch.argsort(d2, stable=True)
                by_centre = by_dist[torch.argsort(i[by_dist], stable=True)]
                i, j = i[by_centre], j[by_centre]
                first = torch.cumsum(group_size, 0) - group_size
                rank = torch.arange(i.numel(), device=device) - first[i - chunk_begin]
                sel = (rank < k).nonzero().flatten()
                i, j = i.index_select(0, sel), j.index_select(0, sel)
                resort = torch.argsort(i * n + j)
                i, j = i[resort], j[resort]
        pieces.append(torch.stack([j, i]))
        chunk_begin = chunk_end
    if recording and k is not None:
        _record(stats, k)
    return torch.cat(pieces, dim=1)


def radius_graph(
    pos: Tensor,
    r: float,
    batch: Tensor | None = None,
    loop: bool = False,
    max_num_neighbors: int | None = 32,
) -> Tensor:
    r"""All pairs of atoms of the same molecule closer than ``r``.

    Edges point from neighbour to centre (PyG's ``source_to_target`` flow): ``edge_index[0]`` is
    the neighbour $j$, ``edge_index[1]`` the centre $i$, and the pair is kept when
    $\lVert \mathbf{r}_j - \mathbf{r}_i \rVert^2 < r^2$ (computed in the dtype of ``pos``).
    When an atom has more than ``max_num_neighbors`` neighbours, the nearest are kept (ties go to
    the lower index), so the result never depends on the order in which pairs were found; inside
    [`record_truncation`][molgnn.nn.record_truncation], the molecules that lost pairs are reported.
    Edges are sorted by centre, then by neighbour, and index the atoms in their given order
    (``batch`` need not be sorted).

    The search compares all pairs within each molecule: molecules of similar size are padded into
    one ``[B, M, M]`` block, others are searched pair by pair in chunks of bounded memory. That is
    the fastest choice for molecules of up to a few hundred atoms.

    Args:
        pos: Atom positions, ``[N, 3]``.
        r: Cutoff radius (same unit as ``pos``).
        batch: Molecule index of each atom, ``[N]`` (default: one molecule).
        loop: Include self loops $(i, i)$ (default: ``False``).
        max_num_neighbors: Largest number of neighbours kept per centre, ``None`` for all
            (default: ``32``, as in ``torch_cluster.radius_graph``).

    Returns:
        ``edge_index``, ``[2, E]`` (int64).

    Raises:
        ValueError: for a ``pos`` that is not a finite ``[N, 3]`` tensor, a non-positive ``r`` or
            ``max_num_neighbors``, or a ``batch`` of the wrong shape or type.

    Shapes:
        - **input:** pos ``[N, 3]``, batch ``[N]``
        - **output:** edge_index ``[2, E]``
    """
    _check_inputs(pos, r, batch)
    if max_num_neighbors is not None and max_num_neighbors < 1:
        raise ValueError(f"max_num_neighbors must be positive or None, got {max_num_neighbors}")
    pos = pos.detach()  # the search needs no autograd graph
    n = pos.size(0)
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=pos.device)
    r2 = float(r) * float(r)
    if batch is None:
        if n * n <= _MAX_PAIRS_PER_CHUNK:
            return _dense(pos, r2, loop, max_num_neighbors, None, None, n)
        batch = torch.zeros(n, dtype=torch.long, device=pos.device)
    batch = batch.long()

    # Sort atoms by molecule so that every molecule is one contiguous block.
    order = None
    if n > 1 and bool((batch[1:] < batch[:-1]).any()):
        order = torch.argsort(batch, stable=True)
        pos, batch = pos[order], batch[order]

    counts = torch.bincount(batch)
    width = int(counts.max())
    slots = counts.numel() * width * width
    if slots <= _MAX_PAIRS_PER_CHUNK and slots <= _MAX_PADDING_WASTE * int((counts * counts).sum()):
        edge_index = _dense(pos, r2, loop, max_num_neighbors, batch, counts, width)
    else:
        edge_index = _chunked(pos, r2, loop, max_num_neighbors, batch)

    if order is not None:
        edge_index = order[edge_index]
        resort = torch.argsort(edge_index[1] * n + edge_index[0])
        edge_index = edge_index[:, resort]
    return edge_index
