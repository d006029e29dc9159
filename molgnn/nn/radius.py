"""Radius graphs in pure PyTorch (no pyg-lib or torch-cluster needed)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["radius_graph"]

# Upper bound on the candidate pairs held in memory at once (about 200 MB of float32 work).
_MAX_PAIRS_PER_CHUNK = 1 << 23


def _check_inputs(pos: Tensor, r: float, batch: Tensor | None) -> Tensor:
    if pos.dim() != 2 or pos.size(1) != 3:
        raise ValueError(f"pos must have shape [N, 3], got {list(pos.shape)}")
    if not r > 0:
        raise ValueError(f"the radius must be positive, got {r}")
    if pos.numel() and not torch.isfinite(pos).all():
        bad = (~torch.isfinite(pos)).any(dim=1).nonzero().flatten()[:5].tolist()
        raise ValueError(f"pos contains NaN or infinite coordinates (atoms {bad})")
    if batch is None:
        return torch.zeros(pos.size(0), dtype=torch.long, device=pos.device)
    if batch.shape != (pos.size(0),):
        raise ValueError(f"batch must have shape [{pos.size(0)}], got {list(batch.shape)}")
    return batch.long()


def _single_molecule(pos: Tensor, r: float, loop: bool, max_num_neighbors: int | None) -> Tensor:
    """Dense path for one small molecule: all pairwise distances at once."""
    n = pos.size(0)
    diff = pos.unsqueeze(0) - pos.unsqueeze(1)  # [N, N, 3]: row i (centre), column j (neighbour)
    d2 = (diff * diff).sum(-1)
    keep = d2 < r * r
    if not loop:
        keep.fill_diagonal_(False)
    if max_num_neighbors is not None and n > max_num_neighbors:
        counts = keep.sum(1)
        if int(counts.max()) > max_num_neighbors:
            masked = torch.where(keep, d2, torch.full_like(d2, float("inf")))
            # Stable sort by distance, ties by index, keep the first k of each centre.
            order = torch.sort(masked, dim=1, stable=True).indices[:, :max_num_neighbors]
            limited = torch.zeros_like(keep)
            limited.scatter_(1, order, True)
            keep &= limited
    centre, neighbour = keep.nonzero(as_tuple=True)  # sorted by centre, then neighbour
    return torch.stack([neighbour, centre])


def radius_graph(
    pos: Tensor,
    r: float,
    batch: Tensor | None = None,
    loop: bool = False,
    max_num_neighbors: int | None = 32,
) -> Tensor:
    r"""All pairs of atoms of the same molecule closer than ``r``.

    Edges point from neighbour to centre (PyG's ``source_to_target`` flow): ``edge_index[0]`` is
    the neighbour :math:`j`, ``edge_index[1]`` the centre :math:`i`, and the pair is kept when
    :math:`\lVert \mathbf{r}_j - \mathbf{r}_i \rVert < r`. When an atom has more than
    ``max_num_neighbors`` neighbours, the nearest are kept (ties go to the lower index), so the
    result never depends on the order in which pairs were found. Edges are sorted by centre, then
    by neighbour.

    The search compares all pairs within each molecule, in chunks of bounded memory. That is
    the fastest choice for molecules of up to a few hundred atoms.

    Args:
        pos: Atom positions, ``[N, 3]``.
        r: Cutoff radius (same unit as ``pos``).
        batch: Molecule index of each atom, ``[N]`` (default: one molecule).
        loop: Include self loops :math:`(i, i)` (default: ``False``).
        max_num_neighbors: Largest number of neighbours kept per centre, ``None`` for all
            (default: ``32``, as in ``torch_cluster.radius_graph``).

    Returns:
        ``edge_index``, ``[2, E]`` (int64).

    Shapes:
        - **input:** pos ``[N, 3]``, batch ``[N]``
        - **output:** edge_index ``[2, E]``
    """
    batch = _check_inputs(pos, r, batch)
    if max_num_neighbors is not None and max_num_neighbors < 1:
        raise ValueError(f"max_num_neighbors must be positive or None, got {max_num_neighbors}")
    n = pos.size(0)
    device = pos.device
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    if n <= 256 and bool((batch == batch[0]).all()):
        return _single_molecule(pos, float(r), loop, max_num_neighbors)

    # Sort atoms by molecule so that every molecule is one contiguous block.
    unsorted = bool((batch[1:] < batch[:-1]).any()) if n > 1 else False
    order = torch.argsort(batch, stable=True) if unsorted else None
    pos_s = pos[order] if order is not None else pos
    batch_s = batch[order] if order is not None else batch

    counts = torch.bincount(batch_s)
    start = torch.cumsum(counts, 0) - counts  # first atom of each molecule
    per_atom = counts[batch_s]  # candidates of each centre, [N]
    atom_start = start[batch_s]

    r2 = float(r) * float(r)
    pieces: list[Tensor] = []
    chunk_begin = 0
    cum = torch.cumsum(per_atom, 0)
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
        d2 = (pos_s[j] - pos_s[i]).pow(2).sum(-1)
        keep = d2 < r2
        if not loop:
            keep &= i != j
        i, j, d2 = i[keep], j[keep], d2[keep]
        group_size = torch.bincount(i - chunk_begin, minlength=chunk_end - chunk_begin)
        if max_num_neighbors is not None and int(group_size.max()) > max_num_neighbors:
            # Rank neighbours of each centre by distance (then index) and keep the first k.
            by_dist = torch.argsort(d2, stable=True)
            by_centre = by_dist[torch.argsort(i[by_dist], stable=True)]
            i, j = i[by_centre], j[by_centre]
            first = torch.cumsum(group_size, 0) - group_size
            rank = torch.arange(i.numel(), device=device) - first[i - chunk_begin]
            keep = rank < max_num_neighbors
            i, j = i[keep], j[keep]
            resort = torch.argsort(i * n + j)
            i, j = i[resort], j[resort]
        pieces.append(torch.stack([j, i]))
        chunk_begin = chunk_end

    edge_index = torch.cat(pieces, dim=1)
    if order is not None:
        edge_index = order[edge_index]
        resort = torch.argsort(edge_index[1] * n + edge_index[0])
        edge_index = edge_index[:, resort]
    return edge_index
