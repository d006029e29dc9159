r"""Split-conformal prediction intervals with MAPIE (extra `uncertainty`).

The model is trained once; a *calibration* set it never trained on fixes how wide the intervals
must be. With the calibration scores $s_i$ of $n$ molecules and the coverage $1 - \alpha$, the
interval of a new molecule is

$$\hat y \pm \hat q\,\sigma, \qquad \hat q = s_{(\lceil (n + 1)(1 - \alpha) \rceil)},$$

the $\lceil (n+1)(1-\alpha) \rceil$-th smallest score (the finite-sample correction), which
covers the true value with probability at least $1 - \alpha$ when calibration and new molecules
are exchangeable ([Lei et al., 2018](https://arxiv.org/abs/1604.04173)). With
`score="std"` the score is $|y - \hat y| / \sigma$, so the intervals are wider where the
ensemble or MC dropout is less sure ([`StdConformityScore`](https://mapie.readthedocs.io/));
with `score="absolute"` it is $|y - \hat y|$ and every interval has the same width.

MAPIE's [`SplitConformalRegressor`](https://mapie.readthedocs.io/) takes a prefit
scikit-learn regressor: molgnn's predictions are computed once and handed to it as a
regressor over the precomputed columns `[mean, std]`, one per target.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["SplitConformal"]

_SCORES = {"std": "std_normalized", "absolute": "absolute"}
#: The smallest std MAPIE's std score divides by.
_EPSILON = 1e-8


def _mapie() -> Any:
    try:
        return importlib.import_module("mapie.regression")
    except ImportError:
        raise ImportError(
            "conformal intervals need MAPIE: pip install 'molgnn[uncertainty]'"
        ) from None


def _precomputed_regressor() -> Any:
    """A fitted scikit-learn regressor whose features are the predictions `[mean, std]`."""
    from sklearn.base import BaseEstimator, RegressorMixin

    class PrecomputedPredictions(RegressorMixin, BaseEstimator):
        def fit(self, X: Any, y: Any = None) -> Any:
            self.fitted_ = True
            return self

        def predict(self, X: Any, return_std: bool = False) -> Any:
            X = np.asarray(X, dtype=np.float64)
            return (X[:, 0], X[:, 1]) if return_std else X[:, 0]

    return PrecomputedPredictions().fit(None)


def _levels(coverage: float | Sequence[float]) -> list[float]:
    levels = [coverage] if isinstance(coverage, int | float) else list(coverage)
    if not levels:
        raise ValueError("give at least one coverage level")
    for level in levels:
        if isinstance(level, bool) or not 0.0 < float(level) < 1.0:
            raise ValueError(f"a coverage must lie strictly between 0 and 1, got {level!r}")
    return [float(level) for level in levels]


def _columns(predictions: Any, std: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """`(values [M, T], std [M, T] or None)` of a `Predictions` or of tensors."""
    values = predictions
    if not isinstance(predictions, Tensor | np.ndarray):  # a Predictions
        values = predictions.values
        std = predictions.std if std is None else std
    values = torch.as_tensor(values, dtype=torch.float64)
    if values.dim() == 1:
        values = values[:, None]
    if std is not None:
        std = torch.as_tensor(std, dtype=torch.float64).reshape(values.shape)
    return values, std


class SplitConformal:
    """Calibrated prediction intervals at one or several coverages.

    ```python
    from molgnn.uncertainty import SplitConformal

    conformal = SplitConformal([0.8, 0.9]).fit(molgnn.predict(ensemble, calibration), y_cal)
    lower, upper = conformal.interval(molgnn.predict(ensemble, new))  # [M, T, 2 levels]
    ```

    Args:
        coverage: The coverage level(s) $1 - \\alpha$, each in $(0, 1)$ (default: `0.9`).
        score: `"std"` (residuals divided by the predicted standard deviation: adaptive
            intervals; needs an ensemble or MC dropout) or `"absolute"` (plain residuals:
            intervals of one width) (default: `"std"`).

    Raises:
        ValueError: for a coverage outside $(0, 1)$ or an unknown score.
        ImportError: without MAPIE (`pip install 'molgnn[uncertainty]'`).
    """

    def __init__(self, coverage: float | Sequence[float] = 0.9, score: str = "std") -> None:
        if score not in _SCORES:
            raise ValueError(f"unknown conformity score {score!r}; valid: {', '.join(_SCORES)}")
        self.levels = _levels(coverage)
        self.score = score
        self._regressors: list[Any] = []
        self._quantiles: Tensor | None = None
        _mapie()  # fail now, not after predicting the calibration set

    def _features(self, values: Tensor, std: Tensor | None, t: int) -> np.ndarray:
        if std is None:
            if self.score == "std":
                raise ValueError(
                    "score='std' needs the predictions' std (predict with an Ensemble or "
                    "mc_dropout_samples); use score='absolute' for a single model"
                )
            scale = torch.zeros_like(values[:, t])
        else:
            scale = std[:, t]
            if not bool(torch.isfinite(scale).all()) or bool((scale < 0).any()):
                raise ValueError("the std must be finite and non-negative")
        column = values[:, t]
        if not bool(torch.isfinite(column).all()):
            raise ValueError("the predictions hold NaN or infinite values")
        return torch.stack([column, scale], dim=1).numpy()

    def fit(self, predictions: Any, y: Tensor, std: Tensor | None = None) -> SplitConformal:
        """Calibrate on molecules the model never trained on.

        Args:
            predictions: [`Predictions`][molgnn.inference.Predictions] of the calibration
                molecules, or their values `[M, T]`.
            y: Their true values `[M, T]` (or `[M]`).
            std: The predictions' std `[M, T]` (default: `predictions.std`).

        Returns:
            This object, calibrated.

        Raises:
            ValueError: for shapes that do not match, no calibration molecule, or
                `score="std"` without a std.
        """
        values, scale = _columns(predictions, std)
        target = torch.as_tensor(y, dtype=torch.float64)
        target = target[:, None] if target.dim() == 1 else target
        if target.shape != values.shape:
            raise ValueError(f"y has shape {list(target.shape)}, predictions {list(values.shape)}")
        if values.size(0) < 1:
            raise ValueError("the calibration set is empty")
        mapie = _mapie()
        self._regressors = []
        for t in range(values.size(1)):
            regressor = mapie.SplitConformalRegressor(
                _precomputed_regressor(),
                confidence_level=self.levels,
                conformity_score=_SCORES[self.score],
                prefit=True,
            )
            regressor.conformalize(self._features(values, scale, t), target[:, t].numpy())
            self._regressors.append(regressor)
        # The upper bound of a prediction 0 with std 1 is the quantile itself.
        unit = np.array([[0.0, 1.0]])
        self._quantiles = torch.stack(
            [
                torch.as_tensor(
                    np.asarray(r.predict_interval(unit)[1])[0, 1, :], dtype=torch.float64
                )
                for r in self._regressors
            ]
        )
        self.n_calibration = int(values.size(0))
        return self

    def interval(self, predictions: Any, std: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Lower and upper bounds of the intervals at each coverage level.

        The bounds are $\\hat y \\mp \\hat q \\max(\\sigma, \\epsilon)$ (`score="std"`,
        $\\epsilon = 10^{-8}$ as in MAPIE) or $\\hat y \\mp \\hat q$ (`score="absolute"`),
        with MAPIE's calibrated $\\hat q$ ([`quantiles`][molgnn.uncertainty.SplitConformal.quantiles]).
        They are not computed with MAPIE's `predict_interval`, for two reasons (MAPIE 1.6,
        std score): it builds an `[M, n]` matrix of every test std times every calibration
        score and takes one quantile per row (about 10 s per target for 20,000 molecules and
        2,000 calibration scores, where the quantile does not depend on the molecule), and
        its lower bound uses the $\\lceil \\alpha (n+1) \\rceil$-th largest score, one
        order statistic below the upper bound's, so its intervals are not symmetric. Here
        both sides use the upper bound's (textbook) quantile; with `score="absolute"` the
        bounds equal MAPIE's.

        Args:
            predictions: [`Predictions`][molgnn.inference.Predictions], or values `[M, T]`.
            std: The predictions' std `[M, T]` (default: `predictions.std`).

        Returns:
            `(lower, upper)`, each `[M, T, L]` for the `L` levels, in the targets' units.

        Raises:
            ValueError: before [`fit`][molgnn.uncertainty.SplitConformal.fit], or for a
                number of targets other than the calibration's.
        """
        q = self.quantiles()  # [T, L]
        values, scale = _columns(predictions, std)
        if values.size(1) != q.size(0):
            raise ValueError(f"calibrated on {q.size(0)} target(s), got {values.size(1)}")
        for t in range(values.size(1)):
            self._features(values, scale, t)  # the same checks as for the calibration set
        if self.score == "std" and scale is not None:  # (_features refused a missing std)
            half = q[None] * scale.clamp_min(_EPSILON)[:, :, None]  # [M, T, L]
        else:
            half = q[None].expand(values.size(0), -1, -1)
        return values[:, :, None] - half, values[:, :, None] + half

    def quantiles(self) -> Tensor:
        """The calibrated score quantile $\\hat q$ per target and level, `[T, L]`.

        MAPIE's finite-sample corrected quantile of the calibration scores: the half-width of
        an interval is $\\hat q\\,\\sigma$ (`score="std"`) or $\\hat q$ (`score="absolute"`).

        Raises:
            ValueError: before [`fit`][molgnn.uncertainty.SplitConformal.fit].
        """
        if self._quantiles is None:
            raise ValueError("call fit() on a calibration set first")
        return self._quantiles.clone()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(coverage={self.levels}, score={self.score!r})"
