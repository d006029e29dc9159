"""Active learning in the online loop: which molecules to compute next.

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

Crash safety: the pool (dataset positions), the stream cursor, the chosen molecules and the
round's [`AcquisitionRecord`][molgnn.online.AcquisitionRecord] are committed in one transaction
([`Store.ingest`][molgnn.online.Store.ingest]), and every score is a function of the committed
state and the seeds, so a round killed at any moment is repeated identically on restart; a
molecule already in the store is never offered again.
"""

from __future__ import annotations

import shutil
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
    "LargestErrorOracle",
    "MCDropoutAcquisition",
    "RandomAcquisition",
    "acquire_round",
    "acquisition_strategy",
]

#: State key of the candidates offered but not chosen (dataset positions).
POOL_STATE = "acquisition_pool"


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
    """

    name: ClassVar[str]
    needs_model: ClassVar[bool]
    needs_labels: ClassVar[bool]

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


class DisagreementAcquisition:
    """The spread of a committee trained from scratch on the latest model's data version.

    The committee is trained once per data version (and again after a restart: its members are
    deterministic functions of the version and their seeds, so a repeated round scores alike).
    """

    name: ClassVar[str] = "disagreement"
    needs_model: ClassVar[bool] = True
    needs_labels: ClassVar[bool] = False

    def __init__(self, config: OnlineConfig) -> None:
        self.config = config
        self._committee: tuple[str, Any] | None = None  # (data version id, Ensemble)

    def committee(self, context: AcquisitionRound) -> Any:
        """The [`Ensemble`][molgnn.uncertainty.Ensemble] of the latest model's data version."""
        from molgnn.uncertainty import Ensemble

        version = context.store.get_version(_latest_model(context).data_version)
        if self._committee is None or self._committee[0] != version.id:
            seeds = [int(self.config.train.seed) + 1 + k for k in range(self.config.committee)]
            if context.verbose:
                print(
                    f"training a committee of {len(seeds)} on version {version.id[:12]} "
                    f"({version.size} molecules) for disagreement",
                    flush=True,
                )
            members = [_train_member(context.store, version, self.config, s) for s in seeds]
            self._committee = (version.id, Ensemble(members))
        return self._committee[1]

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


#: Strategy name (the `acquire` setting) -> class.
ACQUISITION_STRATEGIES: dict[str, type[AcquisitionStrategy]] = {
    cls.name: cls
    for cls in (
        RandomAcquisition,
        DisagreementAcquisition,
        MCDropoutAcquisition,
        LargestErrorOracle,
    )
}


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


def acquire_round(
    store: Store,
    stream: DataStream,
    config: OnlineConfig,
    strategy: AcquisitionStrategy,
    model: ModelRecord | None,
    verbose: bool = True,
) -> DataVersion | None:
    """One acquisition round: offer the pool, score it, add the `batch` best as a version.

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
    version = store.ingest(
        [(candidates[k][1], candidates[k][2]) for k in order],
        stream.position,
        acquisition={
            "strategy": strategy.name,
            "model": model.id if model is not None else None,
            "offered": len(candidates),
            "scores": {mol_id: float(scores[k]) for k, (_, mol_id, _) in enumerate(candidates)},
            "details": strategy.details(context),
        },
        state={POOL_STATE: [p for k, (p, _, _) in enumerate(candidates) if k not in picked]},
    )
    if verbose and version is not None:
        print(
            f"acquired {len(order)} of {len(candidates)} candidates ({strategy.name}): "
            f"version {version.id[:12]} ({version.size} molecules)",
            flush=True,
        )
    return version
