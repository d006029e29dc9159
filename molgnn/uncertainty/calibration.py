"""How well intervals are calibrated: empirical coverage, a table and a reliability plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

import torch
from torch import Tensor

from molgnn.uncertainty.conformal import SplitConformal, _columns

__all__ = ["calibration_report", "empirical_coverage", "gaussian_interval", "reliability_plot"]

#: The coverage levels of the report's table.
REPORT_LEVELS = (0.5, 0.8, 0.9, 0.95)


def empirical_coverage(y: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """The fraction of true values inside their intervals, per target and level.

    Args:
        y: True values `[M, T]` (or `[M]`).
        lower: Lower bounds `[M, T, L]`.
        upper: Upper bounds `[M, T, L]`.

    Returns:
        `[T, L]` fractions in $[0, 1]$.

    Raises:
        ValueError: for shapes that do not fit together, or no molecule.
    """
    if lower.shape != upper.shape or lower.dim() != 3:
        raise ValueError(
            f"lower and upper must both be [M, T, L], got {list(lower.shape)} and "
            f"{list(upper.shape)}"
        )
    y = torch.as_tensor(y, dtype=lower.dtype).reshape(lower.shape[0], -1)
    if y.shape != lower.shape[:2] or y.size(0) == 0:
        raise ValueError(f"y has shape {list(y.shape)}, the intervals {list(lower.shape)}")
    inside = (y[:, :, None] >= lower) & (y[:, :, None] <= upper)
    return inside.to(torch.float64).mean(dim=0)


def gaussian_interval(
    values: Tensor, std: Tensor, levels: Sequence[float]
) -> tuple[Tensor, Tensor]:
    r"""Uncalibrated intervals $\mu \pm z_{(1+p)/2}\,\sigma$, trusting the std as Gaussian.

    The baseline that conformal calibration corrects: an ensemble's spread is usually too
    small (over-confident) or too large.

    Args:
        values: Predictions `[M, T]`.
        std: Their standard deviations `[M, T]`.
        levels: Coverage levels $p$ in $(0, 1)$.

    Returns:
        `(lower, upper)`, each `[M, T, L]`.
    """
    z = torch.tensor([NormalDist().inv_cdf((1 + p) / 2) for p in levels], dtype=torch.float64)
    values = torch.as_tensor(values, dtype=torch.float64)
    half = torch.as_tensor(std, dtype=torch.float64)[:, :, None] * z  # [M, T, L]
    return values[:, :, None] - half, values[:, :, None] + half


def reliability_plot(
    calibration: Any,
    calibration_y: Tensor,
    test: Any,
    test_y: Tensor,
    path: str | Path,
    score: str = "std",
    levels: Sequence[float] | None = None,
) -> Path | None:
    """Plot observed against nominal coverage on a test set, as a PNG (extra `plot`).

    Draws the split-conformal intervals fitted on `calibration` and, when the predictions have
    a std, the uncalibrated Gaussian intervals
    ([`gaussian_interval`][molgnn.uncertainty.gaussian_interval]); a calibrated method lies on
    the diagonal. Targets are pooled.

    Args:
        calibration: [`Predictions`][molgnn.inference.Predictions] of the calibration set.
        calibration_y: Its true values `[M, T]`.
        test: [`Predictions`][molgnn.inference.Predictions] of the test set.
        test_y: Its true values.
        path: The PNG to write.
        score: The conformity score (default: `"std"`).
        levels: Nominal coverages (default: 0.05, 0.10, ..., 0.95).

    Returns:
        The path written, or `None` without matplotlib.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from molgnn.io.atomic import write_atomic_with

    levels = list(levels) if levels is not None else [k / 20 for k in range(1, 20)]
    conformal = SplitConformal(levels, score=score).fit(calibration, calibration_y)
    lower, upper = conformal.interval(test)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="ideal")
    observed = empirical_coverage(test_y, lower, upper).mean(dim=0)
    ax.plot(levels, observed.tolist(), marker="o", label=f"split conformal ({score})")
    values, std = _columns(test, None)
    if std is not None:
        g_lower, g_upper = gaussian_interval(values, std, levels)
        gaussian = empirical_coverage(test_y, g_lower, g_upper).mean(dim=0)
        ax.plot(levels, gaussian.tolist(), marker="s", label="Gaussian ±z·std (uncalibrated)")
    ax.set(
        xlabel="nominal coverage",
        ylabel="observed coverage",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"reliability ({len(values)} test molecules)",
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    path = Path(path)
    write_atomic_with(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    plt.close(fig)
    return path


def calibration_report(
    calibration: Any,
    calibration_y: Tensor,
    test: Any,
    test_y: Tensor,
    levels: Sequence[float] = REPORT_LEVELS,
    score: str = "std",
) -> list[dict[str, Any]]:
    """Coverage and width of split-conformal intervals on a test set, per level.

    Args:
        calibration: [`Predictions`][molgnn.inference.Predictions] of molecules the model never
            trained on.
        calibration_y: Their true values `[M, T]`.
        test: [`Predictions`][molgnn.inference.Predictions] of other held-out molecules.
        test_y: Their true values.
        levels: Nominal coverages (default: 0.5, 0.8, 0.9, 0.95).
        score: `"std"` or `"absolute"` (default: `"std"`).

    Returns:
        One row per level: `coverage` (nominal), `observed` (conformal, targets pooled),
        `mean_width` (in the targets' units) and, with a std, `gaussian_observed` (the
        uncalibrated $\\mu \\pm z\\sigma$ intervals).
    """
    conformal = SplitConformal(levels, score=score).fit(calibration, calibration_y)
    lower, upper = conformal.interval(test)
    observed = empirical_coverage(test_y, lower, upper).mean(dim=0)
    widths = (upper - lower).mean(dim=(0, 1))
    values, std = _columns(test, None)
    gaussian = None
    if std is not None:
        g_lower, g_upper = gaussian_interval(values, std, levels)
        gaussian = empirical_coverage(test_y, g_lower, g_upper).mean(dim=0)
    rows = []
    for k, level in enumerate(levels):
        row: dict[str, Any] = {
            "coverage": float(level),
            "observed": float(observed[k]),
            "mean_width": float(widths[k]),
        }
        if gaussian is not None:
            row["gaussian_observed"] = float(gaussian[k])
        rows.append(row)
    return rows
