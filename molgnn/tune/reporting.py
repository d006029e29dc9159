"""What a sweep leaves behind: the trial table, trial records, ``best_config.yaml`` and plots."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from ray.tune import ResultGrid
from ray.tune.search.sample import Domain

from molgnn.io.atomic import write_atomic
from molgnn.tune.config import METRIC

__all__ = [
    "TRIAL_RECORD_KEYS",
    "format_trials_table",
    "trial_records",
    "trials_table",
    "write_best_config",
    "write_optuna_plots",
]

#: Metrics every trial reports besides [`METRIC`][molgnn.tune.METRIC], so that where and
#: when it ran can be checked afterwards: the Ray node and its IP address, the GPU ids Ray
#: assigned, the torch device, the process id, the wall-clock start of the trial's current
#: run (seconds since the epoch), the epoch of the checkpoint that run continued from (0 for
#: a fresh start; a retry after a lost node or a resumed sweep continues from one) and the
#: wall-clock end of the epoch.
TRIAL_RECORD_KEYS: tuple[str, ...] = (
    "node_id",
    "node_ip",
    "gpu_ids",
    "device",
    "pid",
    "run_started_at",
    "resumed_from_epoch",
    "epoch_ended_at",
)


def _tuned_names(space: Mapping[str, Any]) -> list[str]:
    return [name for name, value in space.items() if isinstance(value, Domain)]


def _status(result: Any, epochs: int, max_epochs: int) -> str:
    if result.error is not None:
        return "ERROR"
    if epochs == 0:
        return "NOT STARTED"
    if epochs >= max_epochs:
        return "COMPLETED"
    return "STOPPED EARLY"


def trials_table(results: ResultGrid, space: Mapping[str, Any], max_epochs: int) -> pd.DataFrame:
    """One row per trial: its tuned values, best validation MAE, epochs run and status.

    Args:
        results: What ``ray.tune.Tuner.fit`` returned.
        space: The search space (its distributions name the tuned columns).
        max_epochs: The sweep's epoch budget; a trial that ran fewer epochs without an error
            was stopped early (by ASHA or the time budget).

    Returns:
        A ``pandas.DataFrame`` sorted by best validation MAE, with columns ``trial``, the
        tuned fields, ``best_val_mae_mev``, ``epochs``, ``status``, ``node_id``, ``gpu_ids``
        and ``path``.
    """
    tuned = _tuned_names(space)
    rows = []
    for result in results:
        history = result.metrics_dataframe
        best = math.nan
        epochs = 0
        node = gpus = ""
        if history is not None and len(history) and METRIC in history:
            best = float(history[METRIC].min())
            epochs = int(history["epoch"].max()) if "epoch" in history else len(history)
            node = str(history["node_id"].iloc[-1]) if "node_id" in history else ""
            gpus = str(history["gpu_ids"].iloc[-1]) if "gpu_ids" in history else ""
        config = result.config or {}
        row: dict[str, Any] = {"trial": Path(result.path).name if result.path else ""}
        row.update({name: config.get(name) for name in tuned})
        row.update(
            best_val_mae_mev=best,
            epochs=epochs,
            status=_status(result, epochs, max_epochs),
            node_id=node,
            gpu_ids=gpus,
            path=result.path,
        )
        rows.append(row)
    columns = ["trial", *tuned, "best_val_mae_mev", "epochs", "status", "node_id", "gpu_ids"]
    frame = pd.DataFrame(rows, columns=[*columns, "path"])
    return frame.sort_values("best_val_mae_mev", na_position="last").reset_index(drop=True)


def format_trials_table(table: pd.DataFrame) -> str:
    """Render [`trials_table`][molgnn.tune.trials_table] as fixed-width text for the terminal.

    Args:
        table: The trial table.

    Returns:
        The text, one line per trial (short node ids, no paths).
    """
    shown = table.drop(columns=["path"], errors="ignore").copy()
    if "node_id" in shown:
        shown["node_id"] = shown["node_id"].astype(str).str.slice(0, 8)
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(lambda v: f"{v:.4g}")
    return str(shown.to_string(index=False))


def trial_records(results: ResultGrid) -> list[dict[str, Any]]:
    """Where and when each trial ran, from the metrics it reported.

    Args:
        results: What ``ray.tune.Tuner.fit`` returned.

    Returns:
        One dict per trial with ``trial``, ``node_id`` and ``node_ip`` (of its last run),
        ``gpu_ids`` (list of str), ``device``, ``start`` (wall-clock start of its first run),
        ``end`` (end of its last epoch), ``epochs`` and ``runs`` (1, plus one per retry or
        resume that continued it). Trials that reported nothing are left out.
    """
    records = []
    for result in results:
        history = result.metrics_dataframe
        if history is None or not len(history) or "run_started_at" not in history:
            continue
        gpu_ids = str(history["gpu_ids"].iloc[-1])
        records.append(
            {
                "trial": Path(result.path).name if result.path else "",
                "node_id": str(history["node_id"].iloc[-1]),
                "node_ip": str(history["node_ip"].iloc[-1]) if "node_ip" in history else "",
                "gpu_ids": [g for g in gpu_ids.split(",") if g],
                "device": str(history["device"].iloc[-1]),
                "start": float(history["run_started_at"].min()),
                "end": float(history["epoch_ended_at"].max()),
                "epochs": int(history["epoch"].max()),
                "runs": int(history["run_started_at"].nunique()),
            }
        )
    return records


def write_best_config(path: str | Path, config: Mapping[str, Any]) -> Path:
    """Write the best trial's configuration as YAML.

    Args:
        path: The file to write.
        config: The configuration (plain values).

    Returns:
        The path written.
    """
    plain = {k: (v.item() if hasattr(v, "item") else v) for k, v in config.items()}
    return write_atomic(path, yaml.safe_dump(plain, sort_keys=False))


def write_optuna_plots(
    table: pd.DataFrame,
    space: Mapping[str, Any],
    out_dir: str | Path,
    *,
    seed: int = 0,
) -> list[Path]:
    """Plot the optimisation history and parameter importances of a sweep as PNG files.

    The Optuna study is rebuilt from the trial table (each trial's best validation MAE, with
    failed trials marked as failed), so the plots can be made for a restored sweep too. Needs
    matplotlib (``pip install 'molgnn[plot]'``); without it a warning says so and nothing is
    written. Parameter importances need at least two finished trials with differing values; they
    use fANOVA when scikit-learn is installed and PED-ANOVA otherwise.

    Args:
        table: The output of [`trials_table`][molgnn.tune.trials_table].
        space: The search space.
        out_dir: Directory for ``optimization_history.png`` and ``param_importances.png``.
        seed: Seed of the importance evaluator. (default: ``0``)

    Returns:
        The files written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn(
            "matplotlib is not installed, so no Optuna plots were written; "
            "install it with: pip install 'molgnn[plot]'",
            stacklevel=2,
        )
        return []
    import optuna
    from optuna.visualization import matplotlib as ovm
    from ray.tune.search.optuna import OptunaSearch

    tuned = {name: value for name, value in space.items() if isinstance(value, Domain)}
    distributions = OptunaSearch.convert_search_space(tuned)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    for _, row in table.iterrows():
        params = {name: row[name] for name in tuned}
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in params.values()):
            continue
        params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
        value = row["best_val_mae_mev"]
        finished = not (isinstance(value, float) and math.isnan(value))
        state = (
            optuna.trial.TrialState.COMPLETE
            if finished and row["status"] != "ERROR"
            else optuna.trial.TrialState.FAIL
        )
        try:
            trial = optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=float(value) if state == optuna.trial.TrialState.COMPLETE else None,
                state=state,
            )
        except ValueError:  # a value outside the space (e.g. a restored, edited sweep)
            continue
        study.add_trial(trial)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:  # fANOVA needs scikit-learn; PED-ANOVA is Optuna's own
        import sklearn  # noqa: F401

        evaluator: Any = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    except ImportError:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    plots: Sequence[tuple[str, Any]] = (
        ("optimization_history.png", lambda: ovm.plot_optimization_history(study)),
        (
            "param_importances.png",
            lambda: ovm.plot_param_importances(study, evaluator=evaluator),
        ),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for filename, plot in plots:
            try:
                axes = plot()
            except (ValueError, RuntimeError, ImportError) as err:
                warnings.warn(f"could not plot {filename}: {err}", stacklevel=2)
                continue
            figure = axes.get_figure()
            figure.tight_layout()
            figure.savefig(out_dir / filename, dpi=100)
            plt.close(figure)
            written.append(out_dir / filename)
    return written
