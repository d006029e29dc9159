"""Assertions that a function of a molecule is invariant or equivariant.

The function under test takes ``(z, pos, batch)`` and returns a tensor or a dict of tensors. Each
output is declared with a *kind*:

- ``"scalar"``: per-molecule (or global), unchanged by everything;
- ``"atom_scalar"``: per-atom (first axis = atoms), permuted with the atoms;
- ``"vector"`` / ``"atom_vector"``: Cartesian vectors, ``v -> R v`` under an orthogonal
  ``R``; the Cartesian axis is the last one of size 3 for ``[*, 3]`` and axis 1 for ``[N, 3, C]``;
- ``"pseudovector"`` / ``"atom_pseudovector"``: ``v -> det(R) R v`` (e.g. angular momenta).

Each trial draws a random rotation (a reflection with probability 1/2 when reflections are on),
a translation and a permutation of the atoms, applies them to the input in float64, and compares
the outputs with the transformed reference outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["KINDS", "TOLERANCES", "assert_equivariant", "assert_invariant"]

KINDS = ("scalar", "atom_scalar", "vector", "atom_vector", "pseudovector", "atom_pseudovector")
#: (rtol, atol) per dtype of the compared outputs.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-9),
    torch.float32: (1e-4, 1e-5),
    torch.bfloat16: (2e-2, 2e-2),
    torch.float16: (5e-3, 5e-3),
}

Outputs = Tensor | Mapping[str, Tensor] | tuple[Tensor, ...]


def _as_dict(out: Outputs) -> dict[str, Tensor]:
    if isinstance(out, Tensor):
        return {"output": out}
    if isinstance(out, tuple):
        return {f"output[{i}]": t for i, t in enumerate(out)}
    return dict(out)


def _rotation(generator: torch.Generator, reflect: bool) -> Tensor:
    from molgnn.transforms.random_rotation import random_orthogonal_matrix

    return random_orthogonal_matrix(reflect, generator)


def _apply(value: Tensor, kind: str, rot: Tensor, perm: Tensor) -> Tensor:
    if kind.startswith("atom_"):
        value = value[perm]
    if kind.endswith("vector"):
        r = rot.to(value.dtype)
        if kind.endswith("pseudovector"):
            r = r * torch.det(rot).to(value.dtype)
        if value.dim() == 3:  # [N, 3, C]
            value = torch.einsum("ij,njc->nic", r, value)
        elif value.size(-1) == 3:
            value = value @ r.T
        else:
            raise ValueError(
                f"a vector output needs a Cartesian axis of size 3, got {list(value.shape)}"
            )
    return value


def assert_equivariant(
    fn: Callable[[Tensor, Tensor, Tensor], Outputs],
    z: Any,
    pos: Tensor | None = None,
    batch: Tensor | None = None,
    kinds: Mapping[str, str] | str = "scalar",
    rotations: bool = True,
    reflections: bool = True,
    translations: bool = True,
    permutations: bool = True,
    trials: int = 3,
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Check that ``fn`` transforms its outputs as declared under symmetry operations.

    Args:
        fn: Function of ``(z [N], pos [N, 3], batch [N])`` returning a tensor, a tuple or a dict.
        z: Atomic numbers ``[N]``, or a PyG ``Data``/``Batch`` carrying ``z``, ``pos`` and
            optionally ``batch`` (then leave ``pos`` and ``batch`` out).
        pos: Positions ``[N, 3]`` (cast to float64 for the check).
        batch: Molecule index per atom (default: one molecule).
        kinds: One kind for all outputs, or a kind per output name (dict keys, or
            ``"output[i]"`` for tuples). See ``KINDS``.
        rotations: Apply random rotations (default: ``True``).
        reflections: Include improper rotations (default: ``True``).
        translations: Apply random translations (default: ``True``).
        permutations: Permute the atoms (default: ``True``).
        trials: Random transformations to try (default: ``3``).
        seed: Seed of the transformations (default: ``0``).
        rtol: Relative tolerance (default: from [`TOLERANCES`][molgnn.testing.TOLERANCES] for the
            output dtype).
        atol: Absolute tolerance (default: likewise).

    Raises:
        AssertionError: naming the output, the operation and the largest deviation.
        ValueError: for an unknown kind or an output without the declared shape.
    """
    if not isinstance(z, Tensor):
        if pos is not None or not hasattr(z, "z") or not hasattr(z, "pos"):
            raise ValueError("pass either tensors (z, pos[, batch]) or one Data with z and pos")
        z, pos, batch = z.z, z.pos, getattr(z, "batch", None)
    if pos is None or pos.shape != (z.numel(), 3):
        found = None if pos is None else list(pos.shape)
        raise ValueError(f"pos must have shape [{z.numel()}, 3], got {found}")
    gen = torch.Generator().manual_seed(seed)
    n = z.numel()
    batch = torch.zeros(n, dtype=torch.long) if batch is None else batch
    pos = pos.detach().to(torch.float64)
    reference = _as_dict(fn(z, pos, batch))
    kind_of = {k: kinds for k in reference} if isinstance(kinds, str) else dict(kinds)
    for name in reference:
        kind = kind_of.get(name)
        if kind not in KINDS:
            raise ValueError(f"output {name!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
    for trial in range(trials):
        rot = _rotation(gen, reflections) if rotations else torch.eye(3, dtype=torch.float64)
        if not rotations and reflections and trial % 2 == 1:
            rot = -torch.eye(3, dtype=torch.float64)
        shift = (
            torch.randn(3, generator=gen, dtype=torch.float64) * 3.0
            if translations
            else torch.zeros(3, dtype=torch.float64)
        )
        perm = torch.randperm(n, generator=gen) if permutations else torch.arange(n)
        moved = _as_dict(fn(z[perm], pos[perm] @ rot.T + shift, batch[perm]))
        ops = (
            f"trial {trial}: det(R) = {torch.det(rot).item():+.0f}, translation "
            f"{[round(v, 3) for v in shift.tolist()]}, permutation {'on' if permutations else 'off'}"
        )
        for name, value in reference.items():
            kind = kind_of[name]
            expected = _apply(value.detach(), kind, rot, perm)
            got = moved[name].detach()
            if got.shape != expected.shape:
                raise AssertionError(
                    f"output {name!r} ({kind}): shape {list(got.shape)} != {list(expected.shape)} ({ops})"
                )
            default = TOLERANCES.get(got.dtype, (1e-5, 1e-6))
            r, a = (
                rtol if rtol is not None else default[0],
                atol if atol is not None else default[1],
            )
            if not torch.allclose(got, expected.to(got.dtype), rtol=r, atol=a):
                diff = (got - expected).abs().max().item()
                scale = expected.abs().max().item()
                raise AssertionError(
                    f"output {name!r} is not {kind}-equivariant: max deviation {diff:.3g} "
                    f"(values up to {scale:.3g}, rtol {r}, atol {a}) under {ops}"
                )


def assert_invariant(
    fn: Callable[[Tensor, Tensor, Tensor], Outputs],
    z: Any,
    pos: Tensor | None = None,
    batch: Tensor | None = None,
    per_atom: bool = False,
    **kwargs: Any,
) -> None:
    """Check that all of ``fn``'s outputs are invariant (permuted with the atoms if ``per_atom``).

    Keyword arguments are those of [`assert_equivariant`][molgnn.testing.assert_equivariant].
    """
    assert_equivariant(fn, z, pos, batch, kinds="atom_scalar" if per_atom else "scalar", **kwargs)
