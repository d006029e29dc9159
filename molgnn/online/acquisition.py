r"""Active learning in the online loop: which molecules to compute next.

With `acquire` set ([`OnlineConfig`][molgnn.online.OnlineConfig]), every round after the
first version offers a pool of `pool` unlabelled candidates, the next molecules of the
source's seeded order that are not yet in the store; a strategy scores them, and only the
`batch` best are "computed": their labels are revealed and they become the next data version.
Candidates not chosen stay in the pool for the next round, topped up from the source. The
growth trigger decides when to retrain, as without acquisition.

Strategies ([`ACQUISITION_STRATEGIES`][molgnn.online.ACQUISITION_STRATEGIES]), higher scores first:

- `random`: a seeded random draw (the baseline).
- `disagreement`: the standard deviation of a committee of `committee` models trained from
  scratch, with seeds `seed + 1`, ..., on the data version of the latest registered model
  (a deep ensemble, [`Ensemble`][molgnn.uncertainty.Ensemble]).
- `mc-dropout`: the standard deviation of `mc_dropout_samples` MC-dropout passes of the
  latest registered model (a model with dropout, e.g. the pooled GNN with `dropout > 0`).
- `largest-error-oracle`: the latest model's absolute error, which needs the labels of every
  candidate: an upper bound for benchmarks, not a strategy for real computations.

Targeted search, for the smallest (`objective: minimize`) or largest (`maximize`) value of
the trained target (its first column), over the mean $\mu$ and standard deviation $\sigma$ of
the `uncertainty` setting (`"committee"`: the committee above; `"mc-dropout"`: MC-dropout
passes of the latest model):

- `lcb` (minimise): the lower confidence bound $\mu - \kappa\sigma$, lowest first
  (`kappa`; with $\kappa = 0$ the greedy choice of the lowest predictions).
- `ucb` (maximise): the upper confidence bound $\mu + \kappa\sigma$, highest first.
- `ei`: the expected improvement over the best value computed so far (the lowest, or highest,
  label among the training molecules), $\mathrm{EI} = (f^* - \mu)\,\Phi(z) + \sigma\,\varphi(z)$ with
  $z = (f^* - \mu)/\sigma$ for minimisation.

Every acquisition round also records how the search is going, whatever the strategy (so
`random` is the baseline): with `top_fraction` set, the details of its
[`AcquisitionRecord`][molgnn.online.AcquisitionRecord] hold `search`, the number of the
source's true top `top_fraction` molecules (by label, in the objective's direction, among those
that can be acquired) that the training data holds after the round, and how many molecules
have been computed.

Crash safety: the pool (dataset positions), the stream cursor, the chosen molecules and the
round's [`AcquisitionRecord`][molgnn.online.AcquisitionRecord] are committed in one transaction
([`Store.ingest`][molgnn.online.Store.ingest]), and every score is a function of the committed
state and the seeds, so a round killed at any moment is repeated identically on restart; a
molecule already in the store is never offered again.
"""

from __future__ import annotations

import math
import shutil
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from molgnn.online.loop import OnlineConfig, version_dataset
from molgnn.online.store import ModelRecord, Store
from molgnn.online.stream import DataStream
from molgnn.online.versions import DataVersion

__all__ = [
    "ACQUISITION_STRATEGIES",
    "AcquisitionRound",
    "AcquisitionStrategy",
    "DisagreementAcquisition",
    "ExpectedImprovement",
    "LargestErrorOracle",
    "LowerConfidenceBound",
    "MCDropoutAcquisition",
    "RandomAcquisition",
    "UpperConfidenceBound",
    "acquire_round",
    "acquisition_strategy",
    "expected_improvement",
    "top_molecules",
]

#: State key of the candidates offered but not chosen (dataset positions).
POOL_STATE = "acquisition_pool"
#: The directions of a targeted search (the `objective` setting).
OBJECTIVES = ("minimize", "maximize")
#: Where the mean and std of `lcb`, `ucb` and `ei` come from (the `uncertainty` setting).
UNCERTAINTIES = ("committee", "mc-dropout")


@dataclass(frozen=True)
class AcquisitionRound:
    """What a strategy knows when it scores one round's candidates.

    Attributes:
        store: The store (its lock held).
        config: The loop's settings.
        model: The latest registered model, or `None`.
        seq: The `seq` of the data version this round will make (1, 2, ...).
        verbose: Print progress.
    """

    store: Store
    config: OnlineConfig
    model: ModelRecord | None
    seq: int
    verbose: bool

    @property
    def seed(self) -> int:
        """A seed for this round, from `config.train.seed` and `seq`."""
        return int(self.config.train.seed) * 100_003 + self.seq


class AcquisitionStrategy(Protocol):
    """Scores unlabelled candidates; the loop acquires the highest scores.

    Attributes:
        name: The strategy's name in [`ACQUISITION_STRATEGIES`][molgnn.online.ACQUISITION_STRATEGIES]
            and in the registry.
        needs_model: Whether scoring needs a registered model.
        needs_labels: Whether scoring reads the candidates' labels (an oracle).
        objective: The `objective` setting the strategy requires (`"minimize"` for `lcb`,
            `"maximize"` for `ucb`), or `None` for any.
    """

    name: ClassVar[str]
    needs_model: ClassVar[bool]
    needs_labels: ClassVar[bool]
    objective: ClassVar[str | None]

    def scores(
        self, candidates: list[Data], labels: Tensor | None, context: AcquisitionRound
    ) -> Tensor:
        """One score per candidate, `[P]` (higher is acquired first).

        Args:
            candidates: `P` molecules with `z`, `pos` and `mol_id`, without labels.
            labels: Their labels `[P, T]` for a strategy that `needs_labels`, else `None`.
            context: The round.
        """
        ...

    def details(self, context: AcquisitionRound) -> dict[str, Any]:
        """The settings to record with the round (JSON-able)."""
        ...


def _latest_model(context: AcquisitionRound) -> ModelRecord:
    if context.model is None:
        raise ValueError("this acquisition strategy needs a registered model")
    return context.model


class _LatestModel:
    """The latest registered model, loaded once per model."""

    def __init__(self) -> None:
        self._loaded: tuple[int, nn.Module] | None = None

    def __call__(self, context: AcquisitionRound) -> nn.Module:
        from molgnn.inference import load

        record = _latest_model(context)
        if self._loaded is None or self._loaded[0] != record.id:
            self._loaded = (record.id, load(context.store.root / record.checkpoint))
        return self._loaded[1]


def _std(result: Any) -> Tensor:
    """The per-candidate score of an uncertain prediction: its std, averaged over targets."""
    if result.std is None:
        raise ValueError("the prediction has no std")
    return result.std.to(torch.float64).mean(dim=1)  # [P, T] -> [P]


class RandomAcquisition:
    """A seeded random choice: each candidate's score is uniform in $[0, 1)$."""

    name: ClassVar[str] = "random"
    needs_model: ClassVar[bool] = False
    needs_labels: ClassVar[bool] = False
    objective: ClassVar[str | None] = None

    def __init__(self, config: OnlineConfig) -> None:
        self.config = config

    def scores(
        self, candidates: list[Data], labels: Tensor | None, context: AcquisitionRound
    ) -> Tensor:
        generator = torch.Generator().manual_seed(context.seed)
        return torch.rand(len(candidates), generator=generator, dtype=torch.float64)

    def details(self, context: AcquisitionRound) -> dict[str, Any]:
        return {"seed": context.seed}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"


class _Committee:
    """A committee trained from scratch on the latest model's data version, once per version
    (and again after a restart: its members are deterministic functions of the version and
    their seeds, so a repeated round scores alike)."""

    def __init__(self, config: OnlineConfig) -> None:
        self.config = config
        self._trained: tuple[str, Any] | None = None  # (data version id, Ensemble)

    def __call__(self, context: AcquisitionRound) -> Any:
        from molgnn.uncertainty import Ensemble

        version = context.store.get_version(_latest_model(context).data_version)
        if self._trained is None or self._trained[0] != version.id:
            seeds = [int(self.config.train.seed) + 1 + k for k in range(self.config.committee)]
            if context.verbose:
                print(
                    f"training a committee of {len(seeds)} on version {version.id[:12]} "
                    f"({version.size} molecules)",
                    flush=True,
                )
            members = [_train_member(context.store, version, self.config, s) for s in seeds]
            self._trained = (version.id, Ensemble(members))
        return self._trained[1]


class DisagreementAcquisition:
    """The spread of a committee trained from scratch on the latest model's data version.

    The committee is trained once per data version (and again after a restart: its members are
    deterministic functions of the version and their seeds, so a repeated round scores alike).
    """

    name: ClassVar[str] = "disagreement"
    needs_model: ClassVar[bool] = True
    needs_labels: ClassVar[bool] = False
    objective: ClassVar[str | None] = None

    def __init__(self, config: OnlineConfig) -> None:
        self.config = config
        self._committee = _Committee(config)

    def committee(self, context: AcquisitionRound) -> Any:
        """The [`Ensemble`][molgnn.uncertainty.Ensemble] of the latest model's data version."""
        return self._committee(context)

    def scores(
        self, candidates: list[Data], labels: Tensor | None, context: AcquisitionRound
    ) -> Tensor:
        import molgnn

        return _std(molgnn.predict(self.committee(context), candidates, uncertainty=True))

    def details(self, context: AcquisitionRound) -> dict[str, Any]:
        scored_on = context.model.data_version if context.model is not None else None
        return {"committee": self.config.committee, "scored_on": scored_on}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(committee={self.config.committee})"


class MCDropoutAcquisition:
    """The spread of MC-dropout passes of the latest registered model."""

    name: ClassVar[str] = "mc-dropout"
    needs_model: ClassVar[bool] = True
    needs_labels: ClassVar[bool] = False
    objective: ClassVar[str | None] = None

    def __init__(self, config: OnlineConfig) -> None:
        self.config = config
        self._model = _LatestModel()

    def scores(
        self, candidates: list[Data], labels: Tensor | None, context: AcquisitionRound
    ) -> Tensor:
        import molgnn

        samples = self.config.mc_dropout_samples
        model = self._model(context)
        return _std(
            molgnn.predict(model, candidates, mc_dropout_samples=samples, seed=context.seed)
        )

    def details(self, context: AcquisitionRound) -> dict[str, Any]:
        return {"samples": self.config.mc_dropout_samples, "seed": context.seed}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(samples={self.config.mc_dropout_samples})"


class LargestErrorOracle:
    """The latest model's absolute error on each candidate: it reads every candidate's label,
    so it is the upper bound a real strategy is compared with, not one to compute with."""

    name: ClassVar[str] = "largest-error-oracle"
    needs_model: ClassVar[bool] = True
    needs_labels: ClassVar[bool] = True
    objective: ClassVar[str | None] = None

    def __init__(self, config: OnlineConfig) -> None:
        self.config = config
        self._model = _LatestModel()

    def scores(
        self, candidates: list[Data], labels: Tensor | None, context: AcquisitionRound
    ) -> Tensor:
        import molgnn

        if labels is None:
            raise ValueError("the largest-error oracle needs the candidates' labels")
        result = molgnn.predict(self._model(context), candidates)
        return (result.values.double() - labels.double()).abs().mean(dim=1)

    def details(self, context: AcquisitionRound) -> dict[str, Any]:
        return {"oracle": True}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"


def _sign(objective: str) -> float:
    """`+1` to maximise, `-1` to minimise: the targeted strategies maximise `sign * value`."""
    return 1.0 if objective == "maximize" else -1.0


class _TargetedSearch:
    """The mean and std of the first target over the `uncertainty` setting's samples."""

    needs_model: ClassVar[bool] = True
    needs_labels: ClassVar[bool] = False

    def __init__(self, config: OnlineConfig) -> None:
        self.config = config
        self._model = _LatestModel()
        self._committee = _Committee(config)

    def mean_std(self, candidates: list[Data], context: AcquisitionRound) -> tuple[Tensor, Tensor]:
        """The predicted mean and std of the first target, `[P]` each, in its units."""
        import molgnn

        if self.config.uncertainty == "mc-dropout":
            result = molgnn.predict(
                self._model(context),
                candidates,
                mc_dropout_samples=self.config.mc_dropout_samples,
                seed=context.seed,
            )
        else:
            result = molgnn.predict(self._committee(context), candidates, uncertainty=True)
        if result.std is None:
            raise ValueError("the prediction has no std")
        return result.values[:, 0].double(), result.std[:, 0].double()  # [P, T] -> [P]

    def _settings(self, context: AcquisitionRound) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "objective": self.config.objective,
            "uncertainty": self.config.uncertainty,
        }
        if self.config.uncertainty == "mc-dropout":
            settings.update(samples=self.config.mc_dropout_samples, seed=context.seed)
        else:
            settings.update(committee=self.config.committee)
        return settings


class _ConfidenceBound(_TargetedSearch):
    """Optimism in the face of uncertainty: `sign * mean + kappa * std`."""

    def scores(
        self, candidates: list[Data], labels: Tensor | None, context: AcquisitionRound
    ) -> Tensor:
        mean, std = self.mean_std(candidates, context)
        return _sign(self.config.objective) * mean + float(self.config.kappa) * std

    def details(self, context: AcquisitionRound) -> dict[str, Any]:
        return {**self._settings(context), "kappa": float(self.config.kappa)}

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(kappa={self.config.kappa}, "
            f"uncertainty={self.config.uncertainty!r})"
        )


class LowerConfidenceBound(_ConfidenceBound):
    r"""To minimise: the candidates whose lower confidence bound $\mu - \kappa\sigma$ is
    lowest come first (the score is $\kappa\sigma - \mu$). Needs `objective: minimize`."""

    name: ClassVar[str] = "lcb"
    objective: ClassVar[str | None] = "minimize"


class UpperConfidenceBound(_ConfidenceBound):
    r"""To maximise: the candidates whose upper confidence bound $\mu + \kappa\sigma$ is
    highest come first. Needs `objective: maximize`."""

    name: ClassVar[str] = "ucb"
    objective: ClassVar[str | None] = "maximize"


def expected_improvement(mean: Tensor, std: Tensor, best: float, objective: str) -> Tensor:
    r"""The expected improvement of each candidate over `best`, for a Gaussian prediction.

    For minimisation, $\mathrm{EI} = \mathbb{E}[\max(f^* - Y, 0)]$ with $Y \sim
    \mathcal{N}(\mu, \sigma^2)$, which is $(f^* - \mu)\,\Phi(z) + \sigma\,\varphi(z)$ with
    $z = (f^* - \mu)/\sigma$ ($\Phi$, $\varphi$: the standard normal CDF and density); for
    maximisation the same with $\mu - f^*$. A zero `std` gives the plain improvement
    $\max(f^* - \mu, 0)$.

    Args:
        mean: Predicted means `[P]`.
        std: Predicted standard deviations `[P]`, non-negative.
        best: The best value found so far, $f^*$.
        objective: `"minimize"` or `"maximize"`.

    Returns:
        The expected improvements `[P]` (float64, non-negative).

    Raises:
        ValueError: for an unknown objective, shapes that differ, or a negative or
            non-finite std.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; valid: {', '.join(OBJECTIVES)}")
    if mean.shape != std.shape or mean.dim() != 1:
        raise ValueError(
            f"mean and std must both be [P], got {list(mean.shape)} and {list(std.shape)}"
        )
    if not bool(torch.isfinite(std).all()) or bool((std < 0).any()):
        raise ValueError("std must be finite and non-negative")
    gain = _sign(objective) * (mean.double() - float(best))  # [P], > 0 where better than best
    sigma = std.double()
    normal = torch.distributions.Normal(torch.zeros((), dtype=torch.float64), 1.0)
    safe = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
    z = gain / safe
    ei = gain * normal.cdf(z) + sigma * normal.log_prob(z).exp()
    return torch.where(sigma > 0, ei, gain.clamp(min=0.0)).clamp(min=0.0)


class ExpectedImprovement(_TargetedSearch):
    """The expected improvement over the best label among the training molecules so far (see
    [`expected_improvement`][molgnn.online.expected_improvement]), for either objective."""

    name: ClassVar[str] = "ei"
    objective: ClassVar[str | None] = None

    def best(self, context: AcquisitionRound) -> float:
        """The best value of the first target among the latest version's training molecules."""
        latest = context.store.latest_version()
        if latest is None:
            raise ValueError("expected improvement needs a first data version")
        values = [float(m.y.reshape(-1)[0]) for m in context.store.molecules("train", latest)]
        return max(values) if self.config.objective == "maximize" else min(values)

    def scores(
        self, candidates: list[Data], labels: Tensor | None, context: AcquisitionRound
    ) -> Tensor:
        mean, std = self.mean_std(candidates, context)
        return expected_improvement(mean, std, self.best(context), self.config.objective)

    def details(self, context: AcquisitionRound) -> dict[str, Any]:
        return {**self._settings(context), "best": self.best(context)}

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(objective={self.config.objective!r}, "
            f"uncertainty={self.config.uncertainty!r})"
        )


#: Strategy name (the `acquire` setting) -> class.
ACQUISITION_STRATEGIES: dict[str, type[AcquisitionStrategy]] = {
    cls.name: cls
    for cls in (
        RandomAcquisition,
        DisagreementAcquisition,
        MCDropoutAcquisition,
        LargestErrorOracle,
        LowerConfidenceBound,
        UpperConfidenceBound,
        ExpectedImprovement,
    )
}
#: The targeted-search strategies (they read `objective`, `kappa` and `uncertainty`).
TARGETED = ("lcb", "ucb", "ei")


def acquisition_strategy(config: OnlineConfig) -> AcquisitionStrategy:
    """The strategy that `config.acquire` names.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if config.acquire not in ACQUISITION_STRATEGIES:
        raise ValueError(
            f"unknown acquisition strategy {config.acquire!r}; valid: {', '.join(ACQUISITION_STRATEGIES)}"
        )
    return ACQUISITION_STRATEGIES[config.acquire](config)  # type: ignore[call-arg]


def _train_member(store: Store, version: DataVersion, config: OnlineConfig, seed: int) -> nn.Module:
    """A model trained from scratch on `version` with `seed`, as a retrain would train it."""
    from molgnn.training import Trainer
    from molgnn.training.loop import run_epochs

    dataset, splits = version_dataset(store, version)
    work = store.work_dir()
    try:
        train = config.train.replace(subset=None, out_dir=str(work), seed=seed)
        trainer = Trainer(train, dataset=dataset, splits=splits, progress=False)
        run_epochs(trainer)
        trainer.model.load_state_dict(trainer.best_state)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return trainer.model.eval()


def _pool(store: Store, stream: DataStream, size: int) -> list[tuple[int, str, Data]]:
    """The round's candidates `(position, molecule id, Data)`: the committed pool first, then
    the next molecules of the stream, skipping every molecule already stored or offered."""
    seen = store.molecule_ids()
    candidates = []
    for position in store.get_state(POOL_STATE, []):
        mol_id, data = stream.molecule(int(position))
        if mol_id not in seen:
            seen.add(mol_id)
            candidates.append((int(position), mol_id, data))
    while len(candidates) < size:
        positions = stream.next_positions(size - len(candidates))
        if not positions:
            break
        for position in positions:
            mol_id, data = stream.molecule(position)
            if mol_id not in seen:  # a molecule is never offered (nor acquired) twice
                seen.add(mol_id)
                candidates.append((position, mol_id, data))
    return candidates


def top_molecules(values: dict[str, float], fraction: float, objective: str) -> list[str]:
    r"""The ids of the best `fraction` of molecules by value: the lowest to minimise, the
    highest to maximise.

    Takes $\lceil \text{fraction} \cdot n \rceil$ of the `n` molecules (at least one); ties are
    broken by id, so the set is a function of the values alone.

    Args:
        values: Each molecule's value (its label), by id.
        fraction: The share to take, in $(0, 1]$ (e.g. `0.01`: the top 1%).
        objective: `"minimize"` or `"maximize"`.

    Returns:
        The ids, best first.

    Raises:
        ValueError: for no values, a fraction outside $(0, 1]$, an unknown objective or a
            non-finite value.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; valid: {', '.join(OBJECTIVES)}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not values:
        raise ValueError("top_molecules needs at least one molecule")
    bad = [mol for mol, v in values.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"molecule {bad[0]!r} has a non-finite value {values[bad[0]]}")
    count = max(1, math.ceil(fraction * len(values) - 1e-9))
    sign = _sign(objective)
    ranked = sorted(values, key=lambda mol: (-sign * values[mol], mol))
    return ranked[:count]


#: Per stream: ((objective, fraction), the top molecules' ids, the worst value among them).
_TOP: weakref.WeakKeyDictionary[DataStream, tuple[tuple[str, float], frozenset[str], float]] = (
    weakref.WeakKeyDictionary()
)


def _search(
    store: Store, stream: DataStream, config: OnlineConfig, chosen: list[str]
) -> dict[str, Any]:
    """How many of the source's true top molecules the training data holds after a round."""
    key = (config.objective, float(config.top_fraction or 0.0))
    cached = _TOP.get(stream)
    if cached is None or cached[0] != key:
        values = {}
        for position in stream.order:  # every molecule that can be acquired (not held out)
            mol_id, data = stream.molecule(position)
            values[mol_id] = float(data.y.reshape(-1)[0])
        top = top_molecules(values, key[1], config.objective)
        cached = (key, frozenset(top), values[top[-1]])
        _TOP[stream] = cached
    _, top_set, threshold = cached
    computed = store.molecule_ids() | set(chosen)  # the held-out are never in the top set
    latest = store.latest_version()
    return {
        "objective": config.objective,
        "top_fraction": key[1],
        "top": len(top_set),
        "threshold": threshold,
        "found": len(top_set & computed),
        "computed": (latest.size if latest is not None else 0) + len(chosen),
    }


def acquire_round(
    store: Store,
    stream: DataStream,
    config: OnlineConfig,
    strategy: AcquisitionStrategy,
    model: ModelRecord | None,
    verbose: bool = True,
) -> DataVersion | None:
    """One acquisition round: offer the pool, score it, add the `batch` best as a version.

    With `config.top_fraction` set, the round's record also holds `details["search"]`:
    `objective`, `top_fraction`, `top` (how many molecules the source's best `top_fraction`
    are, among those that can be acquired, by label), `threshold` (the worst label among them),
    `found` (how many of them the training data holds after this round) and `computed` (its
    size). The top molecules are found once per stream from every label of the source, which
    is what a benchmark knows and a real workflow does not: set `top_fraction=None` there.

    Args:
        store: The store (hold its [`lock`][molgnn.online.Store.lock]); it has a version.
        stream: The source's stream, positioned at the store's cursor.
        config: The loop's settings (`pool`, `batch`).
        strategy: The strategy that scores the candidates.
        model: The latest registered model, or `None`.
        verbose: Print one line for the round (default: `True`).

    Returns:
        The new data version, or `None` when no candidate is left.

    Raises:
        ValueError: for a strategy that needs a model when none is registered, or scores
            that are not one finite number per candidate.
    """
    latest = store.latest_version()
    if latest is None:
        raise ValueError("an acquisition round needs a first data version")
    candidates = _pool(store, stream, config.pool)
    if not candidates:
        return None
    if strategy.needs_model and model is None:
        raise ValueError(
            f"the {strategy.name} strategy needs a registered model, but the retrain trigger "
            "has trained none yet"
        )
    context = AcquisitionRound(store, config, model, latest.seq + 1, verbose)
    unlabelled = [Data(z=d.z, pos=d.pos, mol_id=mol_id) for _, mol_id, d in candidates]
    labels = None
    if strategy.needs_labels:
        labels = torch.cat([d.y.reshape(1, -1) for _, _, d in candidates])
    scores = strategy.scores(unlabelled, labels, context)
    if scores.shape != (len(candidates),) or not bool(torch.isfinite(scores).all()):
        raise ValueError(
            f"the {strategy.name} strategy returned scores of shape {list(scores.shape)} for "
            f"{len(candidates)} candidates, or non-finite ones"
        )
    order = torch.argsort(scores, descending=True, stable=True)[: config.batch].tolist()
    picked = set(order)
    details = strategy.details(context)
    if config.top_fraction is not None:
        details = {
            **details,
            "search": _search(store, stream, config, [candidates[k][1] for k in order]),
        }
    version = store.ingest(
        [(candidates[k][1], candidates[k][2]) for k in order],
        stream.position,
        acquisition={
            "strategy": strategy.name,
            "model": model.id if model is not None else None,
            "offered": len(candidates),
            "scores": {mol_id: float(scores[k]) for k, (_, mol_id, _) in enumerate(candidates)},
            "details": details,
        },
        state={POOL_STATE: [p for k, (p, _, _) in enumerate(candidates) if k not in picked]},
    )
    if verbose and version is not None:
        search = details.get("search")
        found = f"; {search['found']} of the top {search['top']} found" if search else ""
        print(
            f"acquired {len(order)} of {len(candidates)} candidates ({strategy.name}): "
            f"version {version.id[:12]} ({version.size} molecules){found}",
            flush=True,
        )
    return version
