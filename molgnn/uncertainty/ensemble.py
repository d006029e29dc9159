"""Deep ensembles: `K` models of one recipe trained with different seeds.

The spread of their predictions estimates the model uncertainty, and grows on molecules unlike
the training data ([Lakshminarayanan et al., 2017](https://arxiv.org/abs/1612.01474)).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Ensemble", "train_ensemble"]


def _energy(out: Tensor | tuple[Tensor, Tensor]) -> Tensor:
    return out[0] if isinstance(out, tuple) else out


def _merged_info(members: Sequence[nn.Module]) -> dict[str, Any]:
    """One `checkpoint_info` for the ensemble: what every member can be trusted on."""
    infos = [dict(getattr(m, "checkpoint_info", None) or {}) for m in members]
    targets = [info.get("target") for info in infos]
    known = [t for t in targets if t]
    for k, target in enumerate(targets):
        if (
            known
            and target
            and (target.get("names"), target.get("units"))
            != (
                known[0].get("names"),
                known[0].get("units"),
            )
        ):
            raise ValueError(
                f"ensemble member {k} predicts {target.get('names')} in {target.get('units')}, "
                f"member 0 {known[0].get('names')} in {known[0].get('units')}: the members "
                "must predict the same targets in the same units"
            )
    datas = [info.get("data") or {} for info in infos]
    data: dict[str, Any] = dict(datas[0]) if datas else {}
    element_sets = [set(d["elements"]) for d in datas if d.get("elements")]
    if element_sets and len(element_sets) == len(datas):
        # An element that one member never saw is refused: that member cannot be trusted on it.
        data["elements"] = sorted(set.intersection(*element_sets))
    sizes = [int(d["max_atoms"]) for d in datas if d.get("max_atoms") is not None]
    if sizes:
        data["max_atoms"] = min(sizes)
    return {
        "target": known[0] if known else None,
        "normalization": infos[0].get("normalization") if infos else None,
        "data": data or None,
        # The members' metrics; the ensemble's own are not the mean of theirs.
        "metrics": {},
        "member_metrics": [info.get("metrics") for info in infos],
        "molgnn_version": infos[0].get("molgnn_version") if infos else None,
        "ensemble_size": len(members),
    }


class Ensemble(nn.Module):
    r"""A deep ensemble: predicts the mean of its `K` members, and their spread.

    $$\mu = \frac{1}{K}\sum_k f_k(x), \qquad \sigma^2 = \frac{1}{K-1}\sum_k (f_k(x) - \mu)^2$$

    Called like one model it returns the members' mean (so it works wherever a model does);
    [`molgnn.predict`][molgnn.inference.predict] also returns the standard deviation
    $\sigma$ in [`Predictions.std`][molgnn.inference.Predictions]. Build one from trained
    models, from checkpoints ([`from_checkpoints`][molgnn.uncertainty.Ensemble.from_checkpoints])
    or by training ([`train_ensemble`][molgnn.uncertainty.train_ensemble]).

    ```python
    from molgnn.uncertainty import Ensemble

    ensemble = Ensemble.from_checkpoints(["m0/best.ckpt", "m1/best.ckpt", "m2/best.ckpt"])
    result = molgnn.predict(ensemble, ["CCO"])  # result.values, result.std: [1, 1]
    ```

    Args:
        members: At least two models with the same targets and units (their
            `checkpoint_info`, where known, must agree).

    Raises:
        ValueError: for fewer than two members, members that are not modules, members that
            predict different targets, or members of which only some return forces.

    Shapes:
        - **input:** `z` `[N]`, `pos` `[N, 3]`, `batch` `[N]`
        - **output:** the mean `[B, T]`; with forces, `([B, T], [N, 3])`
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"an Ensemble needs at least 2 members, got {len(members)}")
        for k, member in enumerate(members):
            if not isinstance(member, nn.Module):
                raise ValueError(
                    f"ensemble member {k} is a {type(member).__name__}, not a torch module"
                )
        forces = {bool(getattr(m, "derivative", False)) for m in members}
        if len(forces) > 1:
            raise ValueError("either every ensemble member returns forces or none does")
        self.members = nn.ModuleList(members)
        self.derivative = forces.pop()
        self.checkpoint_info = _merged_info(members)
        self.sources: list[str] = []

    @classmethod
    def from_checkpoints(
        cls, paths: Sequence[str | Path], map_location: str | torch.device = "cpu"
    ) -> Ensemble:
        """Load each checkpoint with [`molgnn.load`][molgnn.inference.load] and ensemble them.

        Args:
            paths: Two or more molgnn checkpoints of models with the same targets.
            map_location: Device to load the weights onto (default: `"cpu"`).

        Raises:
            FileNotFoundError: for a missing checkpoint.
            ValueError: naming the checkpoint, for one that does not load, or see
                [`Ensemble`][molgnn.uncertainty.Ensemble].
        """
        from molgnn.inference.loading import load

        paths = list(paths)
        if len(paths) < 2:
            raise ValueError(f"an Ensemble needs at least 2 checkpoints, got {len(paths)}")
        ensemble = cls([load(p, map_location) for p in paths])
        ensemble.sources = [str(p) for p in paths]
        return ensemble

    def __len__(self) -> int:
        return len(self.members)

    def member_outputs(self, z: Tensor, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        """Every member's prediction (energies only for models that return forces).

        Shapes:
            - **input:** `z` `[N]`, `pos` `[N, 3]`, `batch` `[N]`
            - **output:** `[K, B, T]`
        """
        return torch.stack([_energy(m(z, pos, batch)) for m in self.members])

    def forward(
        self, z: Tensor, pos: Tensor, batch: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        outs = [m(z, pos, batch) for m in self.members]
        if self.derivative:
            return (
                torch.stack([o[0] for o in outs]).mean(0),
                torch.stack([o[1] for o in outs]).mean(0),
            )
        return torch.stack(outs).mean(0)  # [K, B, T] -> [B, T]

    def reset_parameters(self) -> None:
        """Re-initialise every member."""
        for member in self.members:
            reset = getattr(member, "reset_parameters", None)
            if callable(reset):
                reset()

    def __repr__(self) -> str:
        kinds = sorted(
            {
                str(getattr(getattr(m, "config", None), "kind", type(m).__name__))
                for m in self.members
            }
        )
        return f"{self.__class__.__name__}(members={len(self.members)}, kind={', '.join(kinds)})"


def train_ensemble(
    config: Any,
    members: int = 5,
    seeds: Sequence[int] | None = None,
    dataset: Any = None,
    verbose: bool = True,
) -> Ensemble:
    """Train `members` models with [`fit`][molgnn.training.fit], one after another.

    Member `k` trains with `config` and seed `seeds[k]` into `<config.out_dir>/member-<k>/`;
    the split (`split_seed`) is the same for all, so none has seen the others' validation or
    test molecules. Each member's `best.ckpt` is loaded back, so the ensemble carries the
    checkpoints' records (targets, elements) and `sources`.

    Args:
        config: A [`TrainConfig`][molgnn.training.TrainConfig].
        members: Number of members, at least 2 (default: `5`).
        seeds: The members' seeds (default: `config.seed`, `config.seed + 1`, ...).
        dataset: A dataset to train on instead of `config`'s (default: `None`).
        verbose: Print each member's training (default: `True`).

    Returns:
        The trained [`Ensemble`][molgnn.uncertainty.Ensemble].

    Raises:
        ValueError: for fewer than 2 members, or `seeds` of another length or with repeats.
    """
    from molgnn.training import fit

    if members < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {members}")
    seeds = [config.seed + k for k in range(members)] if seeds is None else [int(s) for s in seeds]
    if len(seeds) != members or len(set(seeds)) != members:
        raise ValueError(f"need {members} different seeds, got {seeds}")
    paths = []
    for k, seed in enumerate(seeds):
        out = Path(config.out_dir) / f"member-{k}"
        if verbose:
            print(f"ensemble member {k + 1}/{members} (seed {seed}) -> {out}", flush=True)
        result = fit(config.replace(seed=seed, out_dir=str(out)), dataset=dataset, verbose=verbose)
        paths.append(result.best_checkpoint)
    return Ensemble.from_checkpoints(paths)
