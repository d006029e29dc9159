"""When to retrain: policies behind one small interface."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Protocol, runtime_checkable

__all__ = ["EveryChunkTrigger", "GrowthTrigger", "RetrainTrigger"]


@runtime_checkable
class RetrainTrigger(Protocol):
    """A retraining policy: ``should_retrain(size, trained_size)``.

    ``size`` is the number of molecules available now; ``trained_size`` is the size of the data
    version of the latest model, or ``None`` when no model exists yet.
    """

    def should_retrain(self, size: int, trained_size: int | None) -> bool:
        """Whether to train a new model now."""
        ...


class GrowthTrigger:
    r"""Retrain once the data has grown by ``fraction`` since the latest model's data version.

    Fires when $n \ge \lceil n_0 (1 + f) \rceil$, computed in exact rational arithmetic
    (0.1 is one tenth, not 0.1000000000000000055), and always for the first model.

    Args:
        fraction: Relative growth that triggers a retrain (default: ``0.25``).
    """

    def __init__(self, fraction: float = 0.25) -> None:
        if not (fraction > 0 and math.isfinite(fraction)):
            raise ValueError(f"fraction must be a positive finite number, got {fraction}")
        self.fraction = fraction
        self._ratio = 1 + Fraction(str(fraction))

    def threshold(self, trained_size: int) -> int:
        """Smallest size that triggers a retrain after a model trained on ``trained_size``."""
        return math.ceil(trained_size * self._ratio)

    def should_retrain(self, size: int, trained_size: int | None) -> bool:
        """Whether ``size`` molecules call for a new model after one on ``trained_size``."""
        if trained_size is None:
            return size > 0
        return size >= self.threshold(trained_size)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(fraction={self.fraction})"


class EveryChunkTrigger:
    """Retrain whenever any new data has arrived."""

    def should_retrain(self, size: int, trained_size: int | None) -> bool:
        """Whether any molecule arrived since the latest model's data version."""
        return size > (trained_size or 0)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"
