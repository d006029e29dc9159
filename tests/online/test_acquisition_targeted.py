"""Targeted search in the online loop: LCB/UCB, expected improvement and the top-1% count."""

import math
import sys
from pathlib import Path

import pytest
import torch
from scipy.stats import norm

import molgnn
from molgnn.online import (
    OnlineConfig,
    Store,
    expected_improvement,
    run_online,
    top_molecules,
)

sys.path.insert(0, str(Path(__file__).parent))
import online_worker as worker

POOLED = {"preset": "pooled", "hidden_channels": 8, "num_layers": 1, "num_rbf": 8, "dropout": 0.2}


def test_expected_improvement_matches_the_normal_formula_and_prefers_spread():
    mean = torch.tensor([1.0, 1.0, 1.0, 0.5, 2.0], dtype=torch.float64)
    std = torch.tensor([0.1, 0.5, 1.0, 0.3, 0.7], dtype=torch.float64)
    best = 0.8
    ei = expected_improvement(mean, std, best, "minimize")
    # Against scipy's normal distribution, written out independently.
    for m, s, value in zip(mean.tolist(), std.tolist(), ei.tolist(), strict=True):
        z = (best - m) / s
        assert value == pytest.approx((best - m) * norm.cdf(z) + s * norm.pdf(z), rel=1e-10)
    # At equal means (all worse than the best), more spread means more expected improvement.
    assert ei[0] < ei[1] < ei[2]
    # Maximising mirrors minimising.
    up = expected_improvement(-mean, std, -best, "maximize")
    torch.testing.assert_close(up, ei)
    # A Monte Carlo estimate of E[max(best - Y, 0)] agrees.
    torch.manual_seed(0)
    y = torch.distributions.Normal(mean[3], std[3]).sample((400_000,))
    assert float((best - y).clamp(min=0).mean()) == pytest.approx(float(ei[3]), rel=1e-2)
    # No spread: the plain improvement.
    flat = expected_improvement(mean, torch.zeros_like(std), best, "minimize")
    assert flat.tolist() == [0.0, 0.0, 0.0, pytest.approx(0.3), 0.0]


def test_expected_improvement_refuses_bad_input():
    one = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="unknown objective 'lowest'; valid: minimize, maximize"):
        expected_improvement(one, one, 0.0, "lowest")
    with pytest.raises(ValueError, match="std must be finite and non-negative"):
        expected_improvement(one, -one, 0.0, "minimize")
    with pytest.raises(ValueError, match=r"must both be \[P\], got \[3\] and \[2\]"):
        expected_improvement(one, one[:2], 0.0, "minimize")


def test_top_molecules_counts_the_best_share_with_ties_broken_by_id():
    values = {f"m{i:02d}": float(v) for i, v in enumerate([5, 3, 9, 1, 3, 7, 2, 8, 6, 4])}
    assert top_molecules(values, 0.1, "minimize") == ["m03"]  # ceil(0.1 * 10) = 1
    assert top_molecules(values, 0.3, "minimize") == ["m03", "m06", "m01"]  # 3 ties with m04
    assert top_molecules(values, 0.4, "minimize") == ["m03", "m06", "m01", "m04"]
    assert top_molecules(values, 0.25, "maximize") == ["m02", "m07", "m05"]  # ceil(2.5) = 3
    assert top_molecules(values, 0.01, "maximize") == ["m02"]  # at least one
    assert len(top_molecules(values, 1.0, "minimize")) == 10
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\], got 0"):
        top_molecules(values, 0, "minimize")
    with pytest.raises(ValueError, match="molecule 'm01' has a non-finite value nan"):
        top_molecules({**values, "m01": math.nan}, 0.1, "minimize")
    with pytest.raises(ValueError, match="needs at least one molecule"):
        top_molecules({}, 0.1, "minimize")


def test_targeted_settings_are_checked():
    with pytest.raises(ValueError, match="objective: unknown direction 'lowest'"):
        OnlineConfig(store="s", acquire="lcb", objective="lowest")
    with pytest.raises(
        ValueError, match=r"acquire ucb searches with objective 'maximize'.*use acquire lcb"
    ):
        OnlineConfig(store="s", acquire="ucb")
    with pytest.raises(ValueError, match="acquire lcb searches with objective 'minimize'"):
        OnlineConfig(store="s", acquire="lcb", objective="maximize")
    with pytest.raises(ValueError, match="kappa must be a finite number of at least 0, got -1"):
        OnlineConfig(store="s", acquire="lcb", kappa=-1.0)
    with pytest.raises(ValueError, match="uncertainty: unknown source 'bayes'"):
        OnlineConfig(store="s", acquire="ei", uncertainty="bayes")
    with pytest.raises(
        ValueError, match="ei with uncertainty mc-dropout needs a model with dropout"
    ):
        OnlineConfig(store="s", acquire="ei", uncertainty="mc-dropout")  # the ET has none
    with pytest.raises(ValueError, match=r"top_fraction must be in \(0, 1\] or None, got 2"):
        OnlineConfig(store="s", acquire="random", top_fraction=2.0)
    assert OnlineConfig(store="s", acquire="ucb", objective="maximize").kappa == 1.0


def search_run(tmp_path, strategy, **changes):
    settings = dict(
        model=POOLED, acquire=strategy, pool=12, batch=4, uncertainty="mc-dropout",
        mc_dropout_samples=8, top_fraction=0.1, max_chunks=4,
    )  # fmt: skip
    config = worker.config(str(tmp_path / strategy), **{**settings, **changes})
    source = worker.source()
    return config, source, run_online(config, source=source, verbose=False)


def predicted(store: Store, record, source) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The MC-dropout mean and std of a round's candidates, recomputed from the stored model."""
    by_id = {m.mol_id: m for m in source}
    ids = list(record.scores)
    model = molgnn.load(store.root / store.get_model(record.model).checkpoint)
    result = molgnn.predict(
        model,
        [by_id[m] for m in ids],
        mc_dropout_samples=record.details["samples"],
        seed=record.details["seed"],
    )
    return result.values[:, 0].double(), result.std[:, 0].double(), ids


@pytest.mark.parametrize("kappa", [0.0, 2.0])
def test_lcb_scores_are_the_lower_bound_and_kappa_zero_is_greedy(tmp_path, kappa):
    config, source, store = search_run(tmp_path, "lcb", kappa=kappa)
    rounds = store.acquisitions()[1:]
    assert len(rounds) == 3 and all(r.strategy == "lcb" for r in rounds)
    for record in rounds:
        mean, std, ids = predicted(store, record, source)
        scores = torch.tensor([record.scores[m] for m in ids], dtype=torch.float64)
        torch.testing.assert_close(scores, -(mean - kappa * std), rtol=1e-5, atol=1e-6)
        assert record.details["kappa"] == kappa and record.details["objective"] == "minimize"
        if kappa == 0.0:  # greedy: the lowest predicted means
            lowest = {ids[k] for k in torch.argsort(mean)[: config.batch].tolist()}
            assert set(record.chosen) == lowest
    assert store.verify() == []


def test_ei_scores_improve_on_the_best_computed_so_far(tmp_path):
    _, source, store = search_run(tmp_path, "ei")
    labels = {m.mol_id: float(m.y.reshape(-1)[0]) for m in source}
    versions = store.versions()
    for k, record in enumerate(store.acquisitions()[1:], start=1):
        before = {m.mol_id for m in store.molecules("train", versions[k - 1])}
        best = min(labels[m] for m in before)
        assert record.details["best"] == pytest.approx(best)
        mean, std, ids = predicted(store, record, source)
        expected = expected_improvement(mean, std, best, "minimize")
        scores = torch.tensor([record.scores[m] for m in ids], dtype=torch.float64)
        torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-7)
        assert bool((scores >= 0).all())


@pytest.mark.parametrize("objective", ["minimize", "maximize"])
def test_every_round_records_how_many_of_the_true_top_it_holds(tmp_path, objective):
    _, source, store = search_run(tmp_path, "random", objective=objective)
    # The molecules a round can acquire: all but the held-out ones, by their revealed labels.
    held = {m.mol_id for role in ("val", "test") for m in store.molecules(role)}
    values = {m.mol_id: float(m.y.reshape(-1)[0]) for m in source if m.mol_id not in held}
    ranked = sorted(values, key=lambda m: (values[m] if objective == "minimize" else -values[m], m))
    top = set(ranked[: math.ceil(0.1 * len(values))])  # 54 acquirable: the best 6
    assert len(top) == 6
    versions = store.versions()
    for k, record in enumerate(store.acquisitions()[1:], start=1):
        training = {m.mol_id for m in store.molecules("train", versions[k])}
        search = record.details["search"]
        assert search["top"] == 6 and search["objective"] == objective
        assert search["found"] == len(top & training)
        assert search["computed"] == versions[k].size == 20 + 4 * k
        worst = (
            max(values[m] for m in top) if objective == "minimize" else min(values[m] for m in top)
        )
        assert search["threshold"] == pytest.approx(worst)
    # Switched off, nothing is recorded.
    store.close()
    _, _, quiet = search_run(tmp_path / "off", "random", top_fraction=None)
    assert all("search" not in r.details for r in quiet.acquisitions()[1:])
