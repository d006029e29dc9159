"""Split-conformal intervals (MAPIE) on synthetic data with a known noise model."""

import math

import pytest
import torch

pytest.importorskip("mapie")

from molgnn.inference import Predictions
from molgnn.uncertainty import (
    SplitConformal,
    calibration_report,
    empirical_coverage,
    gaussian_interval,
    reliability_plot,
)

LEVELS = [0.5, 0.8, 0.9, 0.95]


def synthetic(n: int, seed: int, targets: int = 1) -> tuple[Predictions, torch.Tensor]:
    """Predictions whose true error is Gaussian with std ``sigma``; the predicted std is
    ``sigma / 2`` (an over-confident ensemble), so uncalibrated intervals are too narrow."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(n, targets, generator=g, dtype=torch.float64)
    sigma = 0.1 + 2.0 * torch.rand(n, targets, generator=g, dtype=torch.float64)
    y = mean + sigma * torch.randn(n, targets, generator=g, dtype=torch.float64)
    predictions = Predictions(
        values=mean,
        names=[f"m{i}" for i in range(n)],
        generated_geometry=[False] * n,
        std=sigma / 2,
    )
    return predictions, y


@pytest.mark.parametrize("score", ["std", "absolute"])
def test_coverage_lands_on_the_nominal_level(score):
    calibration, y_cal = synthetic(2000, seed=0, targets=2)
    test, y_test = synthetic(20000, seed=1, targets=2)
    conformal = SplitConformal(LEVELS, score=score).fit(calibration, y_cal)
    lower, upper = conformal.interval(test)
    assert lower.shape == upper.shape == (20000, 2, len(LEVELS))
    coverage = empirical_coverage(y_test, lower, upper)  # [T, L]
    # Conformal coverage given one calibration set is Beta-distributed around the level with
    # std sqrt(a(1-a)/n) <= 0.012 for n = 2000; the test set adds <= 0.004.
    assert torch.allclose(coverage, torch.tensor([LEVELS, LEVELS], dtype=coverage.dtype), atol=0.03)
    # The over-confident std alone gives intervals that are far too narrow.
    g_lower, g_upper = gaussian_interval(test.values, test.std, LEVELS)
    gaussian = empirical_coverage(y_test, g_lower, g_upper)
    assert (gaussian < torch.tensor(LEVELS) - 0.15).all()


def test_the_std_score_gives_narrower_intervals_than_absolute_residuals():
    calibration, y_cal = synthetic(2000, seed=2)
    test, y_test = synthetic(5000, seed=3)
    widths = {}
    for score in ("std", "absolute"):
        lower, upper = SplitConformal(0.9, score=score).fit(calibration, y_cal).interval(test)
        widths[score] = float((upper - lower).mean())
        assert abs(float(empirical_coverage(y_test, lower, upper)) - 0.9) < 0.03  # both valid
    assert widths["std"] < 0.9 * widths["absolute"], widths


def test_quantile_is_the_finite_sample_corrected_order_statistic():
    n = 19
    calibration, y = synthetic(n, seed=4)
    for score, scale in (("absolute", torch.ones(n)), ("std", calibration.std[:, 0])):
        scores = ((y[:, 0] - calibration.values[:, 0]).abs() / scale).sort().values
        conformal = SplitConformal([0.5, 0.9], score=score).fit(calibration, y)
        q = conformal.quantiles()[0]  # [L]
        for k, level in enumerate([0.5, 0.9]):
            rank = math.ceil((n + 1) * level)  # the rank-th smallest of n scores
            assert float(q[k]) == pytest.approx(float(scores[rank - 1]), rel=1e-9), (score, level)


@pytest.mark.parametrize("score", ["std", "absolute"])
def test_intervals_equal_mapies_own(score):
    calibration, y = synthetic(200, seed=8, targets=2)
    test, _ = synthetic(300, seed=9, targets=2)
    conformal = SplitConformal(LEVELS, score=score).fit(calibration, y)
    lower, upper = conformal.interval(test)
    for t, regressor in enumerate(conformal._regressors):
        features = torch.stack([test.values[:, t], test.std[:, t]], dim=1).numpy()
        bounds = torch.from_numpy(regressor.predict_interval(features)[1])  # [M, 2, L]
        assert torch.allclose(upper[:, t], bounds[:, 1], atol=1e-12)
        if score == "absolute":
            assert torch.allclose(lower[:, t], bounds[:, 0], atol=1e-12)
        else:
            # MAPIE 1.6's std score takes the lower bound's quantile one order statistic lower
            # (the ceil(alpha (n+1))-th largest score); molgnn uses the upper, textbook one on
            # both sides, so its lower bound is at or below MAPIE's.
            assert (lower[:, t] <= bounds[:, 0] + 1e-12).all()
            assert torch.allclose(
                test.values[:, t, None] - lower[:, t], upper[:, t] - test.values[:, t, None]
            )


def test_calibration_report_and_reliability_plot(tmp_path):
    calibration, y_cal = synthetic(1000, seed=5)
    test, y_test = synthetic(4000, seed=6)
    rows = calibration_report(calibration, y_cal, test, y_test)
    assert [r["coverage"] for r in rows] == LEVELS
    for row in rows:
        assert abs(row["observed"] - row["coverage"]) < 0.04
        assert row["gaussian_observed"] < row["coverage"] - 0.15
        assert row["mean_width"] > 0
    assert [r["mean_width"] for r in rows] == sorted(r["mean_width"] for r in rows)
    pytest.importorskip("matplotlib")
    path = reliability_plot(calibration, y_cal, test, y_test, tmp_path / "reliability.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_calls_fail_with_a_message():
    calibration, y = synthetic(50, seed=7)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        SplitConformal(1.0)
    with pytest.raises(ValueError, match="unknown conformity score"):
        SplitConformal(0.9, score="gamma-ish")
    with pytest.raises(ValueError, match="needs the predictions' std"):
        SplitConformal(0.9).fit(calibration.values, y)
    with pytest.raises(ValueError, match="fit"):
        SplitConformal(0.9).interval(calibration)
    with pytest.raises(ValueError, match="shape"):
        SplitConformal(0.9).fit(calibration, y[:10])
    # A single model without std: absolute residuals work.
    lower, upper = (
        SplitConformal(0.9, score="absolute")
        .fit(calibration.values, y)
        .interval(calibration.values)
    )
    assert torch.allclose(upper - lower, (upper - lower)[0].expand_as(upper - lower))
