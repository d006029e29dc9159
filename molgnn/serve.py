"""An HTTP prediction service (extra ``serve``: FastAPI and uvicorn).

Endpoints:

- ``GET /health``: ``{"status": "ok"}``.
- ``GET /model``: the model's target, units, elements, metrics and molgnn version.
- ``POST /predict``: a JSON body ``{"xyz": "<XYZ text>"}``, ``{"smiles": "..."}`` or
  ``{"molecules": [...]}`` of those. Each molecule gets either its values or its own error, so
  one bad molecule does not fail the batch. Bodies over ``max_request_bytes`` get HTTP 413.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from molgnn._version import __version__

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "molgnn.serve needs FastAPI and uvicorn: pip install 'molgnn[serve]'"
    ) from err

__all__ = ["create_app", "parse_xyz_text"]


def parse_xyz_text(text: str, label: str = "request") -> list[Any]:
    """Parse XYZ text (one or more molecules) with :func:`molgnn.data.read_xyz`'s checks.

    Error messages name ``label`` instead of a temporary file.
    """
    from molgnn.data import read_xyz

    fd, tmp = tempfile.mkstemp(suffix=".xyz")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        try:
            read = read_xyz(tmp)
        except ValueError as err:
            raise ValueError(str(err).replace(tmp, label)) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return read if isinstance(read, list) else [read]


def _molecules_of(item: Any, index: int) -> list[Any]:
    from molgnn.prediction import molecule_from_smiles

    if not isinstance(item, dict):
        raise ValueError(f"molecule {index}: expected an object with 'xyz' or 'smiles'")
    keys = set(item) & {"xyz", "smiles"}
    if len(keys) != 1:
        raise ValueError(f"molecule {index}: give exactly one of 'xyz' or 'smiles'")
    if "xyz" in item:
        if not isinstance(item["xyz"], str):
            raise ValueError(f"molecule {index}: 'xyz' must be a string")
        mols = parse_xyz_text(item["xyz"], label=f"molecule {index}")
        for k, mol in enumerate(mols):
            mol.name = str(
                item.get("name") or f"molecule {index}" + (f"[{k}]" if len(mols) > 1 else "")
            )
        return mols
    if not isinstance(item["smiles"], str):
        raise ValueError(f"molecule {index}: 'smiles' must be a string")
    return [molecule_from_smiles(item["smiles"])]


def create_app(
    model: nn.Module, max_request_bytes: int = 1_000_000, max_molecules: int = 1000
) -> Any:
    """Build the FastAPI application serving ``model``.

    Args:
        model: A loaded molgnn model (:func:`molgnn.load`).
        max_request_bytes: Largest accepted request body (default: 1 MB).
        max_molecules: Most molecules per request (default: ``1000``).
    """
    from molgnn.prediction import model_elements, predict

    app = FastAPI(title="molgnn", version=__version__)
    info = dict(getattr(model, "checkpoint_info", None) or {})
    elements = model_elements(model)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model")
    def model_info() -> dict[str, Any]:
        target = info.get("target") or {}
        return {
            "targets": target.get("names"),
            "units": target.get("units"),
            "elements": sorted(elements) if elements else None,
            "metrics": {
                k: v for k, v in (info.get("metrics") or {}).items() if isinstance(v, int | float)
            },
            "molgnn_version": info.get("molgnn_version"),
            "server_version": __version__,
        }

    @app.post("/predict")
    async def predict_endpoint(request: Request) -> Any:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > max_request_bytes:
            return JSONResponse({"error": f"request body over {max_request_bytes} bytes"}, 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_request_bytes:
                return JSONResponse({"error": f"request body over {max_request_bytes} bytes"}, 413)
        try:
            payload = json.loads(body or b"null")
        except json.JSONDecodeError as err:
            return JSONResponse({"error": f"invalid JSON: {err}"}, 400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "expected a JSON object"}, 400)
        items = payload.get("molecules", [payload])
        if not isinstance(items, list) or not items:
            return JSONResponse({"error": "'molecules' must be a non-empty list"}, 400)
        if len(items) > max_molecules:
            return JSONResponse({"error": f"at most {max_molecules} molecules per request"}, 413)
        results: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                mols = _molecules_of(item, index)
                for mol in mols:
                    pred = predict(model, mol)
                    results.extend(pred.to_records())
            except (ValueError, ImportError) as err:
                results.append({"index": index, "error": str(err)})
        return {"results": results}

    return app
