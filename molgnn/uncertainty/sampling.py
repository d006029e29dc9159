"""Several predictions per molecule: the members of an ensemble, or MC-dropout passes.

Both give a tensor of samples `[S, B, T]` whose mean over `S` is the prediction and whose
standard deviation is its uncertainty.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from molgnn.uncertainty.ensemble import Ensemble

__all__ = ["dropout_layers", "mc_dropout", "sample_outputs"]

#: The dropout modules MC dropout switches on (all of torch's).
_DROPOUT = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


def dropout_layers(model: nn.Module) -> list[nn.Module]:
    """The dropout layers of `model` that drop anything (probability `p > 0`).

    Args:
        model: Any torch module.

    Returns:
        The layers, in module order (empty for a model without dropout).
    """
    return [m for m in model.modules() if isinstance(m, _DROPOUT) and float(m.p) > 0.0]


@contextlib.contextmanager
def mc_dropout(model: nn.Module) -> Iterator[list[nn.Module]]:
    """Put `model` in eval mode with only its dropout layers active (Monte Carlo dropout).

    Normalisation layers and everything else behave as in inference; each forward pass then
    drops a different random set of features ([Gal and Ghahramani, 2016](https://arxiv.org/abs/1506.02142)).
    The model's train/eval mode is restored on exit.

    Args:
        model: A model with dropout layers, e.g. the pooled GNN built with `dropout > 0`.

    Yields:
        The dropout layers switched on.

    Raises:
        ValueError: if the model has no dropout layer with `p > 0`.
    """
    layers = dropout_layers(model)
    if not layers:
        kind = getattr(getattr(model, "config", None), "kind", None)
        what = f"this {kind!r} model" if kind else f"this {type(model).__name__}"
        raise ValueError(
            f"MC dropout needs dropout layers, and {what} has none with p > 0; train a model "
            "with dropout (e.g. the pooled GNN with model.dropout=0.1) or use an Ensemble"
        )
    was_training = model.training
    model.eval()
    for layer in layers:
        layer.train()
    try:
        yield layers
    finally:
        model.train(was_training)


def _energy(out: Tensor | tuple[Tensor, Tensor]) -> Tensor:
    return out[0] if isinstance(out, tuple) else out


@contextlib.contextmanager
def sample_outputs(
    model: nn.Module,
    mc_dropout_samples: int | None = None,
    seed: int = 0,
) -> Iterator[Callable[[Tensor, Tensor, Tensor], Tensor]]:
    """A function from a batch to its samples `[S, B, T]`, valid inside the `with` block.

    For an [`Ensemble`][molgnn.uncertainty.Ensemble] the samples are its `K` members'
    predictions; for another model, `mc_dropout_samples` forward passes with dropout on
    (see [`mc_dropout`][molgnn.uncertainty.mc_dropout]), drawn from a random generator seeded
    with `seed` and restored afterwards, so the same call gives the same samples.

    Args:
        model: An ensemble, or a model with dropout layers.
        mc_dropout_samples: Forward passes per batch for MC dropout, at least 2 (default:
            `None`: `model` must be an ensemble).
        seed: Seed of the dropout masks (default: `0`).

    Yields:
        `sample(z, pos, batch)`, returning `[S, B, T]`.

    Raises:
        ValueError: for an ensemble with `mc_dropout_samples`, a model that is neither an
            ensemble nor given `mc_dropout_samples`, fewer than 2 samples, or a model without
            dropout layers.

    Shapes:
        - **input:** `z` `[N]`, `pos` `[N, 3]`, `batch` `[N]`
        - **output:** `[S, B, T]` (`S` members or passes, `B` molecules, `T` targets)
    """
    if isinstance(model, Ensemble):
        if mc_dropout_samples is not None:
            raise ValueError(
                "mc_dropout_samples is for a single model; an Ensemble's uncertainty comes from "
                "its members"
            )
        yield model.member_outputs
        return
    if mc_dropout_samples is None:
        raise ValueError(
            "uncertainty needs an Ensemble or a model with dropout and mc_dropout_samples "
            f"(got a {type(model).__name__} without mc_dropout_samples)"
        )
    if (
        isinstance(mc_dropout_samples, bool)
        or not isinstance(mc_dropout_samples, int)
        or mc_dropout_samples < 2
    ):
        raise ValueError(f"mc_dropout_samples must be an integer >= 2, got {mc_dropout_samples!r}")
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.is_cuda})
    with mc_dropout(model), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)

        def sample(z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
            return torch.stack([_energy(model(z, pos, batch)) for _ in range(mc_dropout_samples)])

        yield sample
