"""Search spaces as data: per model kind, a dict of Ray Tune distributions over config fields.

A search space maps a dotted name of [`molgnn.training.TrainConfig`][molgnn.training.TrainConfig] to
a Ray Tune distribution (``tune.choice``, ``tune.loguniform``, ...) or to a fixed value: ``"lr"``
and ``"batch_size"`` are training fields, ``"model.hidden_channels"`` a field of the model's config.
A trial trains ``base.replace(**sample)``, so a typo fails before Ray starts with an error that
names it (see [`molgnn.tune.trial_config`][molgnn.tune.trial_config]).

Spaces can also be written in YAML; [`parse_space`][molgnn.tune.parse_space] turns a mapping such
as:

```yaml
model.hidden_channels: {choice: [64, 128, 256]}
lr: {loguniform: [1.0e-4, 1.0e-3]}
model.num_layers: 4         # a fixed value
```

into Ray Tune distributions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ray import tune
from ray.tune.search.sample import Categorical, Domain, Float, Integer

from molgnn.nn import CONVS, POOLS

__all__ = [
    "ET_SEARCH_SPACE",
    "POOLED_SEARCH_SPACE",
    "SEARCH_SPACES",
    "SPACE_DISTRIBUTIONS",
    "TENSORNET_SEARCH_SPACE",
    "check_point_in_space",
    "parse_space",
    "search_space",
    "space_to_yaml",
]

#: The ET's search space: width, depth, heads, RBFs and cutoff of the model, and the learning
#: rate, warm-up, batch size and weight decay of the optimiser. ``hidden_channels`` is always a
#: multiple of every ``num_heads`` choice.
ET_SEARCH_SPACE: dict[str, Any] = {
    "model.hidden_channels": tune.choice([64, 128, 256]),
    "model.num_layers": tune.choice([2, 4, 6, 8]),
    "model.num_heads": tune.choice([4, 8]),
    "model.num_rbf": tune.choice([16, 32, 64]),
    "model.cutoff_upper": tune.uniform(4.0, 6.0),
    "lr": tune.loguniform(1e-4, 1e-3),
    "warmup_steps": tune.choice([0, 100, 1000, 10000]),
    "batch_size": tune.choice([32, 64, 128]),
    "weight_decay": tune.choice([0.0, 1e-6, 1e-5, 1e-4]),
}

#: The pooled GNN's search space: every message-passing layer of
#: [`molgnn.nn.CONVS`][molgnn.nn.CONVS], every pooling of [`molgnn.nn.POOLS`][molgnn.nn.POOLS],
#: width, depth, dropout and learning rate.
POOLED_SEARCH_SPACE: dict[str, Any] = {
    "model.conv": tune.choice(list(CONVS)),
    "model.pool": tune.choice(list(POOLS)),
    "model.hidden_channels": tune.choice([32, 64, 128, 256]),
    "model.num_layers": tune.choice([2, 3, 4, 5, 6]),
    "model.dropout": tune.uniform(0.0, 0.3),
    "lr": tune.loguniform(1e-4, 3e-3),
}

#: TensorNet's search space: width, depth, RBFs and cutoff of the model, and the optimiser's
#: learning rate, warm-up, batch size and weight decay (the group stays O(3), which suits QM9's
#: achiral targets; set ``model.equivariance_invariance_group`` to tune it).
TENSORNET_SEARCH_SPACE: dict[str, Any] = {
    "model.hidden_channels": tune.choice([64, 128, 256]),
    "model.num_layers": tune.choice([1, 2, 3, 4]),
    "model.num_rbf": tune.choice([16, 32, 64]),
    "model.cutoff_upper": tune.uniform(4.0, 6.0),
    "lr": tune.loguniform(5e-5, 1e-3),
    "warmup_steps": tune.choice([0, 100, 1000]),
    "batch_size": tune.choice([16, 32, 64]),
    "weight_decay": tune.choice([0.0, 1e-6, 1e-5]),
}

#: Model kind (as in [`molgnn.models.MODEL_CONFIGS`][molgnn.models.MODEL_CONFIGS]) -> its default
#: search space.
SEARCH_SPACES: dict[str, dict[str, Any]] = {
    "et": ET_SEARCH_SPACE,
    "pooled": POOLED_SEARCH_SPACE,
    "tensornet": TENSORNET_SEARCH_SPACE,
}

_Spec = Callable[..., Domain]

#: YAML distribution name -> the Ray Tune function that builds it.
SPACE_DISTRIBUTIONS: dict[str, _Spec] = {
    "choice": tune.choice,
    "uniform": tune.uniform,
    "quniform": tune.quniform,
    "loguniform": tune.loguniform,
    "randint": tune.randint,
    "lograndint": tune.lograndint,
}


def search_space(kind: str) -> dict[str, Any]:
    """A copy of the default search space of a model kind.

    Args:
        kind: A model kind: ``"et"`` or ``"pooled"``.

    Returns:
        The dict of field name -> Ray Tune distribution.
    """
    if kind not in SEARCH_SPACES:
        raise ValueError(
            f"no search space for model kind {kind!r}; valid kinds: {sorted(SEARCH_SPACES)}"
        )
    return dict(SEARCH_SPACES[kind])


def parse_space(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a YAML-style description of a search space into Ray Tune distributions.

    Each value is either a fixed value (a number, string, boolean or list) or a one-key mapping
    ``{distribution: arguments}``, where ``distribution`` is one of
    [`SPACE_DISTRIBUTIONS`][molgnn.tune.SPACE_DISTRIBUTIONS] and ``arguments`` is a list (``choice``
    takes the list of categories; the others their positional bounds, e.g.
    ``{loguniform: [1e-4, 1e-3]}``). Ray Tune distributions already in ``spec`` are kept as they
    are.

    Args:
        spec: Field name -> fixed value, distribution description or Ray Tune distribution.

    Returns:
        Field name -> fixed value or Ray Tune distribution.
    """
    space: dict[str, Any] = {}
    for name, value in spec.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"search space keys must be field names, got {name!r}")
        if isinstance(value, Mapping):
            if len(value) != 1:
                raise ValueError(
                    f"search space entry {name!r} must be a fixed value or a one-key mapping "
                    f"{{distribution: arguments}}, got {dict(value)!r}"
                )
            ((dist, args),) = value.items()
            if dist not in SPACE_DISTRIBUTIONS:
                raise ValueError(
                    f"unknown distribution {dist!r} for {name!r}; valid: "
                    f"{sorted(SPACE_DISTRIBUTIONS)}"
                )
            if not isinstance(args, list | tuple) or not args:
                raise ValueError(
                    f"the arguments of {dist!r} for {name!r} must be a non-empty list, got {args!r}"
                )
            try:
                space[name] = (
                    SPACE_DISTRIBUTIONS[dist](list(args))
                    if dist == "choice"
                    else SPACE_DISTRIBUTIONS[dist](*args)
                )
            except (TypeError, ValueError) as err:
                raise ValueError(f"bad arguments {args!r} for {dist!r} of {name!r}: {err}") from err
        else:
            space[name] = value
    return space


def space_to_yaml(space: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of [`parse_space`][molgnn.tune.parse_space] for the distributions it knows (for
    reports).

    Args:
        space: Field name -> fixed value or Ray Tune distribution.

    Returns:
        A plain, YAML-serialisable dict.
    """
    out: dict[str, Any] = {}
    for name, value in space.items():
        if isinstance(value, Categorical):
            out[name] = {"choice": list(value.categories)}
        elif isinstance(value, Float | Integer):
            sampler = type(value.get_sampler()).__name__
            log = "LogUniform" in sampler
            if isinstance(value, Float):
                out[name] = {"loguniform" if log else "uniform": [value.lower, value.upper]}
            else:
                out[name] = {"lograndint" if log else "randint": [value.lower, value.upper]}
        elif isinstance(value, Domain):
            out[name] = repr(value)
        else:
            out[name] = value
    return out


def check_point_in_space(point: Mapping[str, Any], space: Mapping[str, Any]) -> None:
    """Check that a point to evaluate assigns a valid value to every tuned field.

    Args:
        point: Field name -> value.
        space: Field name -> fixed value or Ray Tune distribution.
    """
    unknown = sorted(set(point) - set(space))
    if unknown:
        raise ValueError(
            f"point to evaluate sets {unknown}, which are not in the search space "
            f"{sorted(space)}; fix them in the base training config instead (--set NAME=VALUE)"
        )
    for name, dist in space.items():
        if not isinstance(dist, Domain):
            continue
        if name not in point:
            raise ValueError(f"point to evaluate {dict(point)!r} lacks tuned field {name!r}")
        value = point[name]
        if isinstance(dist, Categorical):
            if value not in dist.categories:
                raise ValueError(
                    f"point to evaluate sets {name}={value!r}, not one of {dist.categories}"
                )
        elif isinstance(dist, Float | Integer):
            upper = dist.upper if isinstance(dist, Float) else dist.upper - 1
            if (
                not isinstance(value, int | float)
                or math.isnan(value)
                or not dist.lower <= value <= upper
            ):
                raise ValueError(
                    f"point to evaluate sets {name}={value!r}, outside [{dist.lower}, {upper}]"
                )
