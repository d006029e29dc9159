"""An HTTP prediction service (extra ``serve``: FastAPI and uvicorn).

Endpoints:

- ``GET /health``: ``{"status": "ok"}``, answered by the event loop alone, so it stays fast while
  predictions run.
- ``GET /model``: the model's targets, units, elements, metrics, versions and the server's limits.
- ``POST /predict``: a JSON body ``{"xyz": "<XYZ text>"}`` or ``{"smiles": "..."}`` (either with an
  optional ``"name"``), or ``{"molecules": [...]}`` of those. Each molecule gets either its values
  or its own ``"error"``, so one bad molecule does not fail a batch.

Parsing molecules, embedding SMILES and running the model happen in worker processes, never on
the event loop, and each request has a time limit: a request over it gets HTTP 503 and its worker
is killed and replaced (a runaway RDKit embedding cannot be interrupted any other way). Request
bodies, molecules per request, atoms per molecule and SMILES length are bounded; a malformed body
gets a 4xx whose ``"error"`` names the problem. Responses are always strict JSON: a non-finite
prediction becomes ``null`` with an ``"error"`` for that molecule.
"""

from __future__ import annotations

import math
import pickle
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from torch import nn

from molgnn._version import __version__
from molgnn.inference._pool import Busy, ShuttingDown, Timeout, WorkerDied, WorkerPool
from molgnn.inference._requests import Limits, RequestError, decode_body, item_error, request_items
from molgnn.inference._work import INPUT, STATUS
from molgnn.inference.checks import model_elements

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "molgnn.inference.server needs FastAPI and uvicorn: pip install 'molgnn[serve]'"
    ) from err

__all__ = ["create_app"]

#: Bytes of an oversized request body read and discarded before the 413 is sent.
_DRAIN_BYTES = 16_000_000


# -- the application ----------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json(content: dict[str, Any], status: int = 200, **headers: str) -> JSONResponse:
    return JSONResponse(_finite(content), status, headers=headers or None)


def _check_positive(name: str, value: Any, integer: bool = True) -> None:
    kinds = (int,) if integer else (int, float)
    valid = isinstance(value, kinds) and not isinstance(value, bool) and value > 0
    if valid and isinstance(value, float):
        valid = math.isfinite(value)
    if not valid:
        raise ValueError(
            f"{name} must be a positive {'integer' if integer else 'number'}, got {value!r}"
        )


def create_app(
    model: nn.Module,
    max_request_bytes: int = 1_000_000,
    max_molecules: int = 1000,
    max_atoms: int = 1000,
    max_smiles_length: int = 1000,
    request_timeout: float = 30.0,
    workers: int = 2,
) -> Any:
    """Build the FastAPI application serving ``model``.

    The ``workers`` processes start here (each receives a copy of the model), so a model that
    cannot be served fails now rather than at the first request. They stop when the application
    shuts down (its lifespan ends) or with this process. They start as multiprocessing's
    ``forkserver`` (else ``spawn``) starts processes, which imports the main module: in a script,
    call this under ``if __name__ == "__main__":``.

    Args:
        model: A loaded molgnn model ([`molgnn.load`][molgnn.inference.load]).
        max_request_bytes: Largest accepted request body; larger ones get HTTP 413
            (default: 1 MB).
        max_molecules: Most molecules per request, counting each molecule of a multi-molecule
            XYZ text; more get HTTP 413 (default: ``1000``).
        max_atoms: Most atoms per molecule, hydrogens included; SMILES are checked before their
            geometry is generated (default: ``1000``).
        max_smiles_length: Longest accepted SMILES, in characters (default: ``1000``).
        request_timeout: Seconds of work allowed per request; a request over it gets HTTP 503
            and its worker is replaced. A request also waits at most this long for a free worker
            (then HTTP 503 too) (default: ``30.0``).
        workers: Worker processes, i.e. requests computed at once (default: ``2``).

    Raises:
        ValueError: for a limit that is not a positive number.
        RuntimeError: when the worker processes cannot start or load the model.
    """
    for name, value in [
        ("max_request_bytes", max_request_bytes),
        ("max_molecules", max_molecules),
        ("max_atoms", max_atoms),
        ("max_smiles_length", max_smiles_length),
        ("workers", workers),
    ]:
        _check_positive(name, value)
    _check_positive("request_timeout", request_timeout, integer=False)
    limits = Limits(
        max_request_bytes, max_molecules, max_atoms, max_smiles_length, float(request_timeout)
    )
    info = dict(getattr(model, "checkpoint_info", None) or {})
    elements = model_elements(model)
    try:
        model_bytes = pickle.dumps(model)
    except Exception as err:
        raise ValueError(
            f"cannot serve this model: it cannot be copied to a worker ({err})"
        ) from None
    pool = WorkerPool(model_bytes, limits, workers)
    pool.start()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.start()  # again after an earlier shutdown; a no-op otherwise
        pool.attach()
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title="molgnn", version=__version__, lifespan=lifespan)
    app.state.worker_pool = pool

    @app.get("/health")
    async def health() -> dict[str, str]:  # async: answered on the event loop, no thread hop
        return {"status": "ok"}

    @app.get("/model")
    async def model_info() -> JSONResponse:
        target = info.get("target") or {}
        return _json(
            {
                "targets": target.get("names"),
                "units": target.get("units"),
                "elements": sorted(elements) if elements else None,
                "metrics": {
                    k: v
                    for k, v in (info.get("metrics") or {}).items()
                    if isinstance(v, int | float)
                },
                "molgnn_version": info.get("molgnn_version"),
                "server_version": __version__,
                "limits": {**asdict(limits), "workers": workers},
            }
        )

    async def read_body(request: Request) -> bytes:
        """The body, or 413 when it is too large.

        An oversized body is still read and discarded (up to ``_DRAIN_BYTES``) so that the client,
        which may still be sending, gets the 413 rather than a reset connection.
        """
        size = request.headers.get("content-length")
        declared = int(size) if size is not None and size.isdigit() else None
        body = bytearray()
        received = 0
        if declared is None or declared <= max_request_bytes + _DRAIN_BYTES:
            async for chunk in request.stream():
                received += len(chunk)
                if received > max_request_bytes + _DRAIN_BYTES:
                    break
                if received <= max_request_bytes:
                    body += chunk
        if max(received, declared or 0) > max_request_bytes:
            raise RequestError(
                413,
                f"the request body is over the limit of {max_request_bytes} bytes "
                "(max_request_bytes)",
            )
        return bytes(body)

    async def respond(request: Request) -> JSONResponse:
        items, single = request_items(decode_body(await read_body(request)), limits)
        outcomes: list[tuple[dict[str, Any], str | None]] = []
        valid: list[tuple[int, dict[str, Any]]] = []
        for index, item in items:
            problem = item_error(item, index, single, limits)
            if problem:
                outcomes.append(({"index": index, "error": problem}, INPUT))
            else:
                valid.append((index, item))
        notes: list[str] = []
        if valid:
            try:
                reply = await pool.run(valid, request_timeout)
            except Busy:
                raise RequestError(
                    503,
                    f"all {workers} worker(s) stayed busy for {request_timeout:g} s "
                    "(request_timeout); try again later",
                ) from None
            except Timeout:
                raise RequestError(
                    503,
                    f"the request took longer than the limit of {request_timeout:g} s "
                    "(request_timeout) and was stopped; send fewer or smaller molecules",
                ) from None
            except ShuttingDown:
                raise RequestError(503, "the server is shutting down; try again later") from None
            except WorkerDied as err:
                raise RequestError(
                    500, f"the worker process died (exit code {err.args[0]}) during the request"
                ) from None
            if reply[0] == "refused":
                raise RequestError(reply[1], reply[2])
            if reply[0] != "ok":
                raise RequestError(500, f"internal error: {reply[1]}")
            outcomes.extend(reply[1])
            notes = reply[2]
        outcomes.sort(key=lambda outcome: outcome[0]["index"])
        content: dict[str, Any] = {"results": [record for record, _ in outcomes]}
        if notes:
            content["warnings"] = notes
        status = 200
        if single:
            failed = [(r, kind) for r, kind in outcomes if kind in STATUS]
            if failed:
                status = min(STATUS[kind] for _, kind in failed)
                content = {"error": failed[0][0]["error"], **content}
        return _json(content, status)

    @app.post("/predict")
    async def predict_endpoint(request: Request) -> JSONResponse:
        try:
            return await respond(request)
        except RequestError as err:
            headers = {"Retry-After": "5"} if err.status == 503 else {}
            return _json({"error": err.message}, err.status, **headers)
        except Exception as err:
            traceback.print_exc()
            return _json({"error": f"internal error: {type(err).__name__}: {err}"}, 500)

    return app
