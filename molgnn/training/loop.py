"""The one epoch loop that ``fit``, the online loop and the sweep trials share.

Each caller adds only what it needs through callbacks: ``fit`` writes checkpoints and logs,
the online loop prints a line per epoch, a sweep trial reports to Ray Tune.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = ["EpochCallback", "EpochRunner", "final_metrics", "run_epochs"]


class EpochRunner(Protocol):
    """Anything that trains one epoch at a time (a [`Trainer`][molgnn.training.Trainer])."""

    @property
    def should_stop(self) -> bool:
        """Whether training is done (epoch limit, early stopping, time limit)."""
        ...

    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch and validate; returns the epoch's metrics."""
        ...


#: Called after every epoch as ``callback(runner, metrics)``.
EpochCallback = Callable[[Any, dict[str, Any]], None]


def run_epochs(runner: EpochRunner, callbacks: Sequence[EpochCallback] = ()) -> None:
    """Run epochs until ``runner.should_stop``, calling every callback after each epoch.

    Args:
        runner: The training run (resumed runs continue from their current epoch).
        callbacks: Called in order after every epoch with the runner and the epoch's metrics;
            an exception from one stops the loop.
    """
    while not runner.should_stop:
        metrics = runner.run_epoch()
        for callback in callbacks:
            callback(runner, metrics)


def final_metrics(trainer: Any) -> dict[str, Any]:
    """The best epoch's metrics, the test metrics of the best weights, ``best_epoch`` and
    ``epochs_run`` (a run that trained no epoch has only the test metrics).

    Args:
        trainer: A [`Trainer`][molgnn.training.Trainer] after ``run_epochs``.
    """
    best = trainer.history[trainer.best_epoch - 1] if trainer.best_epoch > 0 else {}
    final = {**best, **trainer.test()}
    final["best_epoch"] = trainer.best_epoch
    final["epochs_run"] = trainer.epoch
    return final
