"""An HTTP prediction service (extra ``serve``: FastAPI and uvicorn).

Endpoints:

- ``GET /health``: ``{"status": "ok"}``, answered by the event loop alone, so it stays fast while
  predictions run.
- ``GET /model``: the model's targets, units, elements, metrics, versions, the server's limits
  and the uncertainty it serves (``null``, or an ensemble's or MC dropout's).
- ``POST /predict``: a JSON body ``{"xyz": "<XYZ text>"}`` or ``{"smiles": "..."}`` (either with an
  optional ``"name"``), or ``{"molecules": [...]}`` of those. Each molecule gets either its values
  or its own ``"error"``, so one bad molecule does not fail a batch. The molecules of a request are
  predicted together, in one forward pass (up to 40,000 atoms). With uncertainty, each record has ``"std"`` beside the
  values.
- ``GET /metrics``: request counts by endpoint and status code, latency histograms, molecules
  predicted and busy workers, in Prometheus's text format.
- ``GET /openapi.json`` and ``GET /docs``: the OpenAPI schema of these endpoints, with the
  request and response bodies, and its interactive page.

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
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from molgnn.inference._metrics import CONTENT_TYPE_LATEST, MetricsMiddleware, ServerMetrics
    from molgnn.inference._schema import (
        ErrorBody,
        Health,
        ServedModel,
        predict_request_schema,
        predict_response_model,
        result_model,
    )
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "molgnn.inference.server needs FastAPI, uvicorn and prometheus_client: "
        "pip install 'molgnn[serve]'"
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


def _uncertainty(model: nn.Module, mc_dropout_samples: int | None) -> dict[str, Any] | None:
    """What ``GET /model`` says of the served uncertainty, after the checks of
    [`molgnn.predict`][molgnn.inference.predict] (so a bad combination fails at start-up)."""
    from molgnn.uncertainty.ensemble import Ensemble
    from molgnn.uncertainty.sampling import sample_outputs

    if mc_dropout_samples is None and not isinstance(model, Ensemble):
        return None
    with sample_outputs(model, mc_dropout_samples):  # raises ValueError for what cannot sample
        pass
    if isinstance(model, Ensemble):
        return {"kind": "ensemble", "members": len(model), "samples": None}
    return {"kind": "mc_dropout", "members": None, "samples": mc_dropout_samples}


#: The paths ``/metrics`` counts by name; any other is counted as ``"other"``.
_ENDPOINTS = (
    "/health",
    "/model",
    "/predict",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
)

_DESCRIPTION = """Predictions of a molgnn model for molecules given as XYZ text or SMILES.

`POST /predict` takes one molecule (`{"xyz": ...}` or `{"smiles": ...}`, with an optional
`"name"`) or several (`{"molecules": [...]}`), predicted together. Each molecule gets its values
or its own `"error"`; a body refused as a whole gets a 4xx whose `"error"` names the problem.
`GET /model` describes the model, its limits and its uncertainty; `GET /metrics` is for
Prometheus."""


def create_app(
    model: nn.Module,
    max_request_bytes: int = 1_000_000,
    max_molecules: int = 1000,
    max_atoms: int = 1000,
    max_smiles_length: int = 1000,
    request_timeout: float = 30.0,
    workers: int = 2,
    mc_dropout_samples: int | None = None,
    threads_per_worker: int | None = None,
) -> Any:
    """Build the FastAPI application serving ``model``.

    The ``workers`` processes start here (each receives a copy of the model), so a model that
    cannot be served fails now rather than at the first request. They stop when the application
    shuts down (its lifespan ends) or with this process. They start as multiprocessing's
    ``forkserver`` (else ``spawn``) starts processes, which imports the main module: in a script,
    call this under ``if __name__ == "__main__":``.

    An [`Ensemble`][molgnn.uncertainty.Ensemble], or a model with dropout and
    ``mc_dropout_samples``, is served with uncertainty: each record of ``POST /predict`` then
    holds the mean prediction and its standard deviation ``std``, as
    [`Predictions.to_records`][molgnn.inference.Predictions] gives them.

    Args:
        model: A loaded molgnn model ([`molgnn.load`][molgnn.inference.load]) or an
            [`Ensemble`][molgnn.uncertainty.Ensemble].
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
        mc_dropout_samples: Serve MC dropout: this many forward passes (at least 2) per batch
            with the dropout of ``model`` on; the mean and standard deviation are returned
            (default: ``None``).
        threads_per_worker: Torch threads of each worker (default: ``None``: the CPUs divided
            by ``workers``, at least 1). On a CPU shared with other work, ``1`` avoids the
            threads of different processes waiting on each other.

    Raises:
        ValueError: for a limit that is not a positive number, or ``mc_dropout_samples`` with
            an ensemble, a model without dropout or fewer than 2 passes.
        RuntimeError: when the worker processes cannot start or load the model.
    """
    for name, value in [
        ("max_request_bytes", max_request_bytes),
        ("max_molecules", max_molecules),
        ("max_atoms", max_atoms),
        ("max_smiles_length", max_smiles_length),
        ("workers", workers),
        *([("threads_per_worker", threads_per_worker)] if threads_per_worker is not None else []),
    ]:
        _check_positive(name, value)
    _check_positive("request_timeout", request_timeout, integer=False)
    limits = Limits(
        max_request_bytes, max_molecules, max_atoms, max_smiles_length, float(request_timeout)
    )
    uncertainty = _uncertainty(model, mc_dropout_samples)
    info = dict(getattr(model, "checkpoint_info", None) or {})
    target = info.get("target") or {}
    elements = model_elements(model)
    try:
        model_bytes = pickle.dumps(model)
    except Exception as err:
        raise ValueError(
            f"cannot serve this model: it cannot be copied to a worker ({err})"
        ) from None
    pool = WorkerPool(model_bytes, limits, workers, mc_dropout_samples, threads_per_worker)
    pool.start()
    metrics = ServerMetrics()
    metrics.busy.set_function(lambda: pool.busy)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.start()  # again after an earlier shutdown; a no-op otherwise
        pool.attach()
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title="molgnn", version=__version__, description=_DESCRIPTION, lifespan=lifespan)
    app.state.worker_pool = pool
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics, endpoints=_ENDPOINTS)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        """FastAPI's own refusals (an unknown path, a wrong method) as ``{"error": ...}`` too."""
        message = f"{request.method} {request.url.path}: {err.detail}"
        if err.status_code == 404:
            message += f"; the endpoints are {', '.join(_ENDPOINTS[:5])} and /docs"
        return _json({"error": message}, err.status_code, **(err.headers or {}))

    @app.get("/health", response_model=None, responses={200: {"model": Health}})
    async def health() -> dict[str, str]:  # async: answered on the event loop, no thread hop
        """Answered by the event loop alone, so it stays fast while every worker is busy."""
        return {"status": "ok"}

    @app.get("/model", responses={200: {"model": ServedModel}})
    async def model_info() -> JSONResponse:
        """The model's targets, units, elements and metrics, the server's limits and the
        uncertainty it returns."""
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
                "uncertainty": uncertainty,
            }
        )

    @app.get(
        "/metrics",
        responses={
            200: {
                "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
                "description": "Prometheus's text exposition format",
            }
        },
    )
    async def metrics_endpoint() -> Response:
        """Requests by endpoint and status code, latency histograms, molecules predicted and
        busy workers, for Prometheus to scrape."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

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
        failures = sum(1 for _, kind in outcomes if kind is not None)
        metrics.count_molecules(len(outcomes) - failures, failures)
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

    request_schema, definitions = predict_request_schema()
    records = result_model(
        list(target.get("names") or []), list(target.get("units") or []), uncertainty is not None
    )
    refused = {
        400: "The body is empty, not UTF-8 or not JSON",
        413: "The body, or its number of molecules, is over a limit",
        422: "The body has the wrong shape, or its one molecule cannot be predicted (then "
        "`results` holds its record too)",
        500: "An internal error",
        501: "SMILES sent to a server without RDKit",
        503: "The request took longer than `request_timeout`, waited that long for a worker, "
        "or the server is shutting down (with `Retry-After`)",
    }

    @app.post(
        "/predict",
        responses={
            200: {"model": predict_response_model(records), "description": "One record each"},
            **{code: {"model": ErrorBody, "description": text} for code, text in refused.items()},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": request_schema,
                        "examples": {
                            "smiles": {"value": {"smiles": "CCO", "name": "ethanol"}},
                            "xyz": {"value": {"xyz": "1\nmethane\nC 0 0 0\n"}},
                            "batch": {"value": {"molecules": [{"smiles": "C"}, {"smiles": "O"}]}},
                        },
                    }
                },
            }
        },
    )
    async def predict_endpoint(request: Request) -> JSONResponse:
        """Predict one molecule or several, each with its values or its own error."""
        try:
            return await respond(request)
        except RequestError as err:
            headers = {"Retry-After": "5"} if err.status == 503 else {}
            return _json({"error": err.message}, err.status, **headers)
        except Exception as err:
            traceback.print_exc()
            return _json({"error": f"internal error: {type(err).__name__}: {err}"}, 500)

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, with the request body's definitions among its components."""
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app
