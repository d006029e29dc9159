"""The HTTP server's checks of a request body: JSON, shape and limits.

They run on the event loop, so they are cheap: the structure of the JSON only. Reading the
molecules themselves happens in a worker process (``molgnn.inference._work``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MOLECULE_FIELDS",
    "Limits",
    "RequestError",
    "decode_body",
    "item_error",
    "request_items",
]

#: Fields of one molecule in a request body.
MOLECULE_FIELDS = ("xyz", "smiles", "name")


@dataclass(frozen=True)
class Limits:
    """The server's limits on a request (see
    [`create_app`][molgnn.inference.server.create_app])."""

    max_request_bytes: int
    max_molecules: int
    max_atoms: int
    max_smiles_length: int
    request_timeout: float


class RequestError(Exception):
    """A request refused as a whole: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_body(body: bytes) -> Any:
    """The JSON value of a request body; ``RequestError`` (400) for anything else."""
    if not body.strip():
        raise RequestError(
            400, 'the request body is empty; send a JSON object such as {"smiles": "CCO"}'
        )
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RequestError(
            400,
            f"the request body is not valid UTF-8: byte 0x{body[err.start]:02x} at position "
            f"{err.start} ({err.reason})",
        ) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise RequestError(
            400, f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from None
    except ValueError as err:  # NaN, Infinity
        raise RequestError(400, f"invalid JSON: {err}") from None
    except RecursionError:
        raise RequestError(400, "invalid JSON: nested too deeply") from None


def request_items(payload: Any, limits: Limits) -> tuple[list[tuple[int, Any]], bool]:
    """``(index, item)`` per molecule of a decoded body, and whether it was a single molecule."""
    if not isinstance(payload, dict):
        raise RequestError(
            422,
            f"expected a JSON object with 'xyz', 'smiles' or 'molecules', got {_json_type(payload)}",
        )
    if "molecules" not in payload:
        return [(0, payload)], True
    extra = sorted(set(payload) - {"molecules"})
    if extra:
        raise RequestError(
            422,
            f"a body with 'molecules' takes no other top-level field, found {_quoted(extra)}; "
            "put each molecule's fields inside 'molecules'",
        )
    items = payload["molecules"]
    if not isinstance(items, list):
        raise RequestError(422, f"'molecules' must be a list of objects, got {_json_type(items)}")
    if not items:
        raise RequestError(422, "'molecules' is empty; give at least one molecule")
    if len(items) > limits.max_molecules:
        raise RequestError(
            413,
            f"{len(items)} molecules in one request, over the limit of {limits.max_molecules} "
            "(max_molecules)",
        )
    return list(enumerate(items)), False


def item_error(item: Any, index: int, single: bool, limits: Limits) -> str | None:
    """What is wrong with one molecule's fields, or ``None``."""
    label = f"molecule {index}"
    if not isinstance(item, dict):
        return f"{label}: expected an object with 'xyz' or 'smiles', got {_json_type(item)}"
    unknown = sorted(set(item) - set(MOLECULE_FIELDS))
    if unknown:
        allowed = _quoted(list(MOLECULE_FIELDS)) + (
            " (or 'molecules' for a batch)" if single else ""
        )
        return f"{label}: unknown field(s) {_quoted(unknown)}; allowed: {allowed}"
    given = [key for key in ("xyz", "smiles") if key in item]
    if not given:
        return f"{label}: missing 'xyz' or 'smiles'; give exactly one of them"
    if len(given) > 1:
        return f"{label}: give exactly one of 'xyz' or 'smiles', not both"
    key, value = given[0], item[given[0]]
    if not isinstance(value, str):
        return f"{label}: '{key}' must be a string, got {_json_type(value)}"
    if not value.strip():
        return f"{label}: '{key}' is empty"
    if "name" in item and not isinstance(item["name"], str):
        return f"{label}: 'name' must be a string, got {_json_type(item['name'])}"
    if key == "smiles" and len(value) > limits.max_smiles_length:
        return (
            f"{label}: the SMILES has {len(value)} characters, over the limit of "
            f"{limits.max_smiles_length} (max_smiles_length)"
        )
    return None
