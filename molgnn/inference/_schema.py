"""The HTTP server's request and response bodies as pydantic models, for its OpenAPI schema.

The server reads and checks request bodies itself (``_requests``), so that it keeps its size
limit and its messages; these models only describe the bodies in ``/openapi.json`` and on the
``/docs`` page. The record of one molecule has a field per target of the served model, so its
model is built for that model ([`result_model`][molgnn.inference._schema.result_model]).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

__all__ = [
    "ErrorBody",
    "Health",
    "Molecule",
    "MoleculeBatch",
    "ServedModel",
    "predict_request_schema",
    "predict_response_model",
    "result_model",
]


def _no_default(schema: dict[str, Any]) -> None:
    """Drop ``"default": null`` from an optional field that must not be sent as ``null``."""
    schema.pop("default", None)


def _optional(description: str, **constraints: Any) -> Any:
    """A field that may be left out but, when given, is never ``null``."""
    return Field(None, description=description, json_schema_extra=_no_default, **constraints)


class Molecule(BaseModel):
    """One molecule: exactly one of `xyz` or `smiles`, and an optional `name`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["xyz"]}, {"required": ["smiles"]}]},
    )

    xyz: str = _optional(
        "XYZ text (atom count, comment line, one `element x y z` line per atom, in Å); several "
        "molecules one after another each count against `max_molecules`",
        min_length=1,
    )
    smiles: str = _optional(
        "A SMILES string; the server generates its 3D geometry with RDKit (at most "
        "`max_smiles_length` characters)",
        min_length=1,
    )
    name: str = _optional("A name for the molecule, returned in its record")


class MoleculeBatch(BaseModel):
    """Several molecules in one request (at most `max_molecules`), predicted together."""

    model_config = ConfigDict(extra="forbid")

    molecules: list[Molecule] = Field(min_length=1)


def predict_request_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON schema of a ``POST /predict`` body, and the definitions it refers to.

    The references point at ``#/components/schemas/...``, where the server's OpenAPI document
    puts the definitions.
    """
    adapter: TypeAdapter[Any] = TypeAdapter(Molecule | MoleculeBatch)
    schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    return schema, definitions


class ErrorBody(BaseModel):
    """A request refused as a whole (4xx or 5xx): what was wrong."""

    error: str = Field(description="The problem, naming the molecule, the field or the limit")


class Health(BaseModel):
    """`GET /health`."""

    status: Literal["ok"]


class ServedLimits(BaseModel):
    """The server's limits on a request."""

    max_request_bytes: int
    max_molecules: int
    max_atoms: int
    max_smiles_length: int
    request_timeout: float
    workers: int


class Uncertainty(BaseModel):
    """The uncertainty the server returns with each prediction (`std` in the records)."""

    kind: Literal["ensemble", "mc_dropout"] = Field(
        description="`ensemble`: the standard deviation over a deep ensemble's members; "
        "`mc_dropout`: over forward passes with dropout on"
    )
    members: int | None = Field(None, description="The ensemble's members (`ensemble`)")
    samples: int | None = Field(None, description="Forward passes per molecule (`mc_dropout`)")


class ServedModel(BaseModel):
    """`GET /model`: what the server predicts and its limits."""

    targets: list[str] | None
    units: list[str] | None
    elements: list[int] | None = Field(description="Atomic numbers the model was trained on")
    metrics: dict[str, float | None] = Field(description="The checkpoint's recorded metrics")
    molgnn_version: str | None = Field(description="The molgnn that wrote the checkpoint")
    server_version: str
    limits: ServedLimits
    uncertainty: Uncertainty | None = Field(
        description="The uncertainty returned as `std`, or `null` for plain predictions"
    )


def result_model(
    targets: Sequence[str], units: Sequence[str], uncertainty: bool
) -> type[BaseModel]:
    """The record of one molecule in a ``POST /predict`` response, for a model of ``targets``.

    Args:
        targets: The model's target names (empty when the checkpoint does not record them:
            the records then hold ``y0``, ``y1``, ...).
        units: Their units (or empty).
        uncertainty: Whether the records carry ``std``.
    """
    unit = dict(zip(targets, units))
    fields: dict[str, Any] = {
        "index": (int, Field(description="The molecule's position in the request")),
        "name": (str, _optional("The given name, else the SMILES or `molecule <index>`")),
        "generated_geometry": (
            bool,
            _optional("Whether the geometry was generated from a SMILES string"),
        ),
    }
    for t, target in enumerate(targets):
        where = f" in {unit[target]}" if unit.get(target) else ""
        fields[f"target_{t}"] = (
            float | None,
            Field(
                None,
                alias=target,
                description=f"The predicted {target}{where}; `null` when the molecule failed"
                + (" (the mean over the samples)" if uncertainty else ""),
            ),
        )
    if uncertainty:
        spread_fields: dict[str, Any] = {
            f"target_{t}": (float | None, Field(None, alias=target))
            for t, target in enumerate(targets)
        }
        spread = create_model(
            "StandardDeviation",
            __config__=ConfigDict(extra="forbid" if targets else "allow"),
            **spread_fields,
        )
        fields["std"] = (
            spread,
            _optional("The standard deviation of each target's prediction (same units)"),
        )
    fields["units"] = (dict[str, str], _optional("Each target's unit"))
    fields["warnings"] = (
        list[str],
        _optional(
            "Why the prediction may be unreliable (e.g. a molecule unlike the training data)"
        ),
    )
    fields["error"] = (str, _optional("Why this molecule has no prediction"))
    return create_model(
        "MoleculeResult",
        __config__=ConfigDict(extra="allow" if not targets else "forbid"),
        __doc__="The prediction for one molecule of the request, or its own error.",
        **fields,
    )


def predict_response_model(record: type[BaseModel]) -> type[BaseModel]:
    """The body of a ``POST /predict`` response whose records are ``record``."""
    return create_model(
        "PredictResponse",
        __doc__="One record per molecule, in request order. A single-molecule request that "
        "failed gets a 4xx or 5xx with `error` beside its record.",
        results=(list[record], Field(description="One record per molecule")),  # type: ignore[valid-type]
        warnings=(
            list[str],
            _optional("Warnings raised while predicting, once each"),
        ),
        error=(str, _optional("Set when a single-molecule request failed")),
    )
