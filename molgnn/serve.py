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

import asyncio
import contextlib
import importlib
import json
import math
import multiprocessing
import os
import pickle
import signal
import sys
import tempfile
import threading
import traceback
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
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

#: Fields of one molecule in a request body.
MOLECULE_FIELDS = ("xyz", "smiles", "name")
#: Modules the worker processes need, imported once by the fork server (when available).
_PRELOAD = ["molgnn.serve", "molgnn.prediction", "molgnn.data", "rdkit.Chem.AllChem"]
#: Bytes of an oversized request body read and discarded before the 413 is sent.
_DRAIN_BYTES = 16_000_000
#: Seconds allowed for a worker process to start and load the model.
_START_TIMEOUT = 300.0

# How a molecule failed, and the HTTP status a single-molecule request gets for it.
_INPUT, _UNSUPPORTED, _INTERNAL, _NONFINITE = "input", "unsupported", "internal", "nonfinite"
_STATUS = {_INPUT: 422, _UNSUPPORTED: 501, _INTERNAL: 500}


@dataclass(frozen=True)
class _Limits:
    max_request_bytes: int
    max_molecules: int
    max_atoms: int
    max_smiles_length: int
    request_timeout: float


class _RequestError(Exception):
    """A request refused as a whole: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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


# -- request validation (on the event loop: cheap checks of the JSON structure only) ------------


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


def _decode_body(body: bytes) -> Any:
    """The JSON value of a request body; :class:`_RequestError` (400) for anything else."""
    if not body.strip():
        raise _RequestError(
            400, 'the request body is empty; send a JSON object such as {"smiles": "CCO"}'
        )
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _RequestError(
            400,
            f"the request body is not valid UTF-8: byte 0x{body[err.start]:02x} at position "
            f"{err.start} ({err.reason})",
        ) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise _RequestError(
            400, f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from None
    except ValueError as err:  # NaN, Infinity
        raise _RequestError(400, f"invalid JSON: {err}") from None
    except RecursionError:
        raise _RequestError(400, "invalid JSON: nested too deeply") from None


def _request_items(payload: Any, limits: _Limits) -> tuple[list[tuple[int, Any]], bool]:
    """``(index, item)`` per molecule of a decoded body, and whether it was a single molecule."""
    if not isinstance(payload, dict):
        raise _RequestError(
            422,
            f"expected a JSON object with 'xyz', 'smiles' or 'molecules', got {_json_type(payload)}",
        )
    if "molecules" not in payload:
        return [(0, payload)], True
    extra = sorted(set(payload) - {"molecules"})
    if extra:
        raise _RequestError(
            422,
            f"a body with 'molecules' takes no other top-level field, found {_quoted(extra)}; "
            "put each molecule's fields inside 'molecules'",
        )
    items = payload["molecules"]
    if not isinstance(items, list):
        raise _RequestError(422, f"'molecules' must be a list of objects, got {_json_type(items)}")
    if not items:
        raise _RequestError(422, "'molecules' is empty; give at least one molecule")
    if len(items) > limits.max_molecules:
        raise _RequestError(
            413,
            f"{len(items)} molecules in one request, over the limit of {limits.max_molecules} "
            "(max_molecules)",
        )
    return list(enumerate(items)), False


def _item_error(item: Any, index: int, single: bool, limits: _Limits) -> str | None:
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


# -- the work itself (in a worker process) -----------------------------------------------------


def _named(message: str, index: int) -> str:
    label = f"molecule {index}"
    return message if message.startswith(label) else f"{label}: {message}"


def _too_many_atoms(count: int, index: int, what: str, limits: _Limits) -> ValueError:
    return ValueError(
        f"molecule {index}: {what} {count} atoms, over the limit of {limits.max_atoms} atoms per "
        "molecule (max_atoms)"
    )


def _smiles_molecule(smiles: str, index: int, limits: _Limits) -> Any:
    """The 3D molecule of a SMILES string, refusing it before embedding if it is too large."""
    from molgnn.prediction import molecule_from_smiles

    try:
        Chem: Any = importlib.import_module("rdkit.Chem")
    except ImportError:
        raise ImportError(
            "this server cannot read SMILES: RDKit is not installed (pip install 'molgnn[chem]'); "
            "send 'xyz' instead"
        ) from None
    parsed = Chem.MolFromSmiles(smiles)
    if parsed is not None:  # else molecule_from_smiles says what is wrong with it
        count = parsed.GetNumAtoms() + sum(atom.GetTotalNumHs() for atom in parsed.GetAtoms())
        if count > limits.max_atoms:
            raise _too_many_atoms(count, index, "the SMILES gives, with hydrogens,", limits)
    return molecule_from_smiles(smiles)


def _item_molecules(item: dict[str, Any], index: int, limits: _Limits) -> list[Any]:
    name = item.get("name")
    if "smiles" in item:
        mol = _smiles_molecule(item["smiles"], index, limits)
        mol.name = name or item["smiles"]
        mol.generated_geometry = True
        return [mol]
    mols = parse_xyz_text(item["xyz"], label=f"molecule {index}")
    for k, mol in enumerate(mols):
        mol.name = (name or f"molecule {index}") + (f"[{k}]" if len(mols) > 1 else "")
        mol.generated_geometry = False
        if mol.z.numel() > limits.max_atoms:
            raise _too_many_atoms(int(mol.z.numel()), index, f"{mol.name} has", limits)
    return mols


def _finish(record: dict[str, Any], index: int, mol: Any) -> tuple[dict[str, Any], str | None]:
    """A prediction record with its index; a non-finite value becomes ``None`` plus an error."""
    record = {"index": index, **record, "generated_geometry": bool(mol.generated_geometry)}
    bad = {k: v for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        record.update(dict.fromkeys(bad))
        if not record.get("error"):
            values = ", ".join(f"{v} for {k!r}" for k, v in bad.items())
            record["error"] = (
                f"the model returned a non-finite prediction ({values}); the checkpoint's "
                "weights may be damaged"
            )
    if not record.get("error"):
        return record, None
    record["error"] = _named(str(record["error"]), index)
    return record, _NONFINITE


def _error_record(index: int, err: BaseException) -> tuple[dict[str, Any], str]:
    if isinstance(err, ValueError):
        return {"index": index, "error": _named(str(err), index)}, _INPUT
    if isinstance(err, ImportError):
        return {"index": index, "error": _named(str(err), index)}, _UNSUPPORTED
    traceback.print_exception(err)
    return {
        "index": index,
        "error": _named(f"internal error: {type(err).__name__}: {err}", index),
    }, _INTERNAL


def _run_request(model: nn.Module, items: list[tuple[int, dict[str, Any]]], limits: _Limits) -> Any:
    """Parse, embed and predict the molecules of one request (in a worker process).

    Returns ``("ok", [(record, failure kind or None), ...], warnings)`` or
    ``("refused", status, message)`` for a request over a limit.
    """
    from molgnn.prediction import predict

    outcomes: list[tuple[dict[str, Any], str | None]] = []
    todo: list[tuple[int, Any]] = []
    for index, item in items:
        try:
            todo.extend((index, mol) for mol in _item_molecules(item, index, limits))
        except Exception as err:
            outcomes.append(_error_record(index, err))
        if len(todo) > limits.max_molecules:
            return (
                "refused",
                413,
                f"the request holds more than {limits.max_molecules} molecules (XYZ texts may "
                "hold several each), over the limit (max_molecules)",
            )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:  # one batched pass when every molecule is fine ...
            records = predict(model, [mol for _, mol in todo]).to_records() if todo else []
            done = [_finish(r, i, m) for r, (i, m) in zip(records, todo, strict=True)]
        except Exception:  # ... else one molecule at a time, so each gets its own error
            done = []
            for index, mol in todo:
                try:
                    done.append(_finish(predict(model, mol).to_records()[0], index, mol))
                except Exception as err:
                    done.append(_error_record(index, err))
    outcomes.extend(done)
    notes = list(dict.fromkeys(str(w.message) for w in caught))
    outcomes.sort(key=lambda outcome: outcome[0]["index"])
    return ("ok", outcomes, notes)


def _exit_with_server(lifeline: Any) -> None:
    """End this worker when the server dies: ``lifeline`` reaches EOF when the server's end closes.

    A thread waits on it, so this works while RDKit or torch runs in the main thread (both
    release the GIL in their long loops).
    """

    def watch() -> None:
        try:
            lifeline.poll(None)
        finally:
            os._exit(0)

    threading.Thread(target=watch, name="molgnn-serve-lifeline", daemon=True).start()


def _worker_main(
    conn: Any, lifeline: Any, model_bytes: bytes, limits: _Limits, threads: int
) -> None:
    """A worker process: load the model, then answer requests from ``conn`` until it closes."""
    # The server stops its workers itself (SIGKILL), after answering their requests: a SIGTERM
    # or Ctrl-C sent to the whole process group must not kill them first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_with_server(lifeline)
    import torch

    torch.set_num_threads(threads)
    try:  # RDKit's own log lines would repeat, on the server's stderr, errors sent to clients
        from rdkit import rdBase

        rdBase.DisableLog("rdApp.*")
    except ImportError:
        pass
    try:
        model = pickle.loads(model_bytes)
    except Exception as err:
        conn.send(("failed", f"{type(err).__name__}: {err}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            items = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = _run_request(model, items, limits)
        except Exception as err:
            traceback.print_exc()
            reply = ("internal", f"{type(err).__name__}: {err}")
        conn.send(reply)


# -- the worker pool (on the event loop) --------------------------------------------------------


class _Timeout(Exception):
    pass


class _Busy(Exception):
    pass


class _WorkerDied(Exception):
    pass


class _ShuttingDown(Exception):
    pass


def _context() -> Any:
    """A fork server where there is one (fast replacements, fork-safe), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


class _Worker:
    def __init__(self, ctx: Any, args: tuple[Any, ...]) -> None:
        self.conn, child = ctx.Pipe()
        lifeline, self._lifeline = ctx.Pipe(duplex=False)  # only this process holds the end
        self.process = ctx.Process(
            target=_worker_main,
            args=(child, lifeline, *args),
            name="molgnn-serve-worker",
            daemon=True,
        )
        self.process.start()
        child.close()
        lifeline.close()

    def check_ready(self, message: Any) -> None:
        if not (isinstance(message, tuple) and message[0] == "ready"):
            detail = message[1] if isinstance(message, tuple) else message
            raise RuntimeError(f"a server worker could not load the model: {detail}")

    def stop(self) -> None:
        # By pid, not Process.kill(): once the fork server is gone (a SIGTERM to the process
        # group), multiprocessing takes its children for dead while they still run.
        if self.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(timeout=5)

    def kill(self) -> None:
        self.stop()
        self.conn.close()
        self._lifeline.close()


async def _receive(conn: Any, timeout: float) -> Any:
    """``conn.recv()`` without blocking the event loop; ``asyncio.TimeoutError`` after ``timeout``."""
    if not conn.poll():
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        fd = conn.fileno()

        def wake() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await asyncio.wait_for(readable, max(timeout, 0.0))
        finally:
            loop.remove_reader(fd)
    return conn.recv()


class _WorkerPool:
    """Worker processes holding the model; a worker past its time limit is killed and replaced."""

    def __init__(self, model_bytes: bytes, limits: _Limits, size: int) -> None:
        self.size = size
        self._ctx = _context()
        threads = max(1, (os.cpu_count() or 1) // size)
        self._args = (model_bytes, limits, threads)
        self._workers: set[_Worker] = set()
        self._idle: asyncio.Queue[_Worker | None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def start(self) -> None:
        """Start the missing workers and wait until each has loaded the model."""
        self._closed = False
        new = [_Worker(self._ctx, self._args) for _ in range(self.size - len(self._workers))]
        self._workers.update(new)
        for worker in new:
            if not worker.conn.poll(_START_TIMEOUT):
                self.close()
                raise RuntimeError(f"a server worker did not start within {_START_TIMEOUT:g} s")
            try:
                worker.check_ready(worker.conn.recv())
            except (EOFError, RuntimeError) as err:
                self.close()
                if isinstance(err, EOFError):
                    code = worker.process.exitcode
                    raise RuntimeError(
                        f"a server worker died while starting (exit code {code})"
                    ) from None
                raise

    def attach(self) -> None:
        """Make the workers available to requests on the running event loop."""
        self._idle = asyncio.Queue()
        for worker in self._workers:
            self._idle.put_nowait(worker)

    async def run(self, items: list[tuple[int, dict[str, Any]]], timeout: float) -> Any:
        """The worker's reply for ``items``.

        Raises:
            _Busy: no worker came free within ``timeout``.
            _Timeout: the work took longer than ``timeout`` (the worker is replaced).
            _WorkerDied: the worker process ended (the worker is replaced).
            _ShuttingDown: the pool was closed before or during the work.
        """
        idle = self._idle
        if idle is None or self._closed:
            raise _ShuttingDown
        try:
            worker = await asyncio.wait_for(idle.get(), timeout)
        except asyncio.TimeoutError:
            raise _Busy from None
        if worker is None:  # close() wakes the waiting requests with None
            idle.put_nowait(None)
            raise _ShuttingDown
        try:
            worker.conn.send(items)
            reply = await _receive(worker.conn, timeout)
        except asyncio.TimeoutError:
            self._replace(worker)
            raise _Timeout from None
        except (EOFError, OSError):
            self._replace(worker)
            if self._closed:
                raise _ShuttingDown from None
            raise _WorkerDied(worker.process.exitcode) from None
        except BaseException:  # cancelled (shutdown, disconnect): its reply would come too late
            self._replace(worker)
            raise
        if not self._closed:
            idle.put_nowait(worker)
        return reply

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self._workers.discard(worker)
        if not self._closed:
            task = asyncio.get_running_loop().create_task(self._start_one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _start_one(self) -> None:
        while not self._closed:
            # In a thread: starting a process can wait seconds (e.g. for a new fork server).
            worker = await asyncio.to_thread(_Worker, self._ctx, self._args)
            if self._closed:
                worker.kill()
                return
            self._workers.add(worker)
            try:
                worker.check_ready(await _receive(worker.conn, _START_TIMEOUT))
            except (asyncio.TimeoutError, EOFError, OSError, RuntimeError) as err:
                print(
                    f"molgnn serve: a replacement worker failed to start: {err!r}", file=sys.stderr
                )
                worker.kill()
                self._workers.discard(worker)
                await asyncio.sleep(5.0)
                continue
            if self._idle is not None:
                self._idle.put_nowait(worker)
            return

    def close(self) -> None:
        """Stop every worker at once, busy or not; the requests waiting on them get 503."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for worker in list(self._workers):
            # A busy worker's pipe stays open: the request waiting on it wakes up at its EOF
            # (and closes it); closing it here would leave that request waiting forever.
            worker.stop()
        self._workers.clear()
        if self._idle is not None:
            while not self._idle.empty():
                waiting = self._idle.get_nowait()
                if waiting is not None:
                    waiting.conn.close()
            self._idle.put_nowait(None)
        self._idle = None


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
        model: A loaded molgnn model (:func:`molgnn.load`).
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
    from molgnn.prediction import model_elements

    for name, value in [
        ("max_request_bytes", max_request_bytes),
        ("max_molecules", max_molecules),
        ("max_atoms", max_atoms),
        ("max_smiles_length", max_smiles_length),
        ("workers", workers),
    ]:
        _check_positive(name, value)
    _check_positive("request_timeout", request_timeout, integer=False)
    limits = _Limits(
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
    pool = _WorkerPool(model_bytes, limits, workers)
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
            raise _RequestError(
                413,
                f"the request body is over the limit of {max_request_bytes} bytes "
                "(max_request_bytes)",
            )
        return bytes(body)

    async def respond(request: Request) -> JSONResponse:
        items, single = _request_items(_decode_body(await read_body(request)), limits)
        outcomes: list[tuple[dict[str, Any], str | None]] = []
        valid: list[tuple[int, dict[str, Any]]] = []
        for index, item in items:
            problem = _item_error(item, index, single, limits)
            if problem:
                outcomes.append(({"index": index, "error": problem}, _INPUT))
            else:
                valid.append((index, item))
        notes: list[str] = []
        if valid:
            try:
                reply = await pool.run(valid, request_timeout)
            except _Busy:
                raise _RequestError(
                    503,
                    f"all {workers} worker(s) stayed busy for {request_timeout:g} s "
                    "(request_timeout); try again later",
                ) from None
            except _Timeout:
                raise _RequestError(
                    503,
                    f"the request took longer than the limit of {request_timeout:g} s "
                    "(request_timeout) and was stopped; send fewer or smaller molecules",
                ) from None
            except _ShuttingDown:
                raise _RequestError(503, "the server is shutting down; try again later") from None
            except _WorkerDied as err:
                raise _RequestError(
                    500, f"the worker process died (exit code {err.args[0]}) during the request"
                ) from None
            if reply[0] == "refused":
                raise _RequestError(reply[1], reply[2])
            if reply[0] != "ok":
                raise _RequestError(500, f"internal error: {reply[1]}")
            outcomes.extend(reply[1])
            notes = reply[2]
        outcomes.sort(key=lambda outcome: outcome[0]["index"])
        content: dict[str, Any] = {"results": [record for record, _ in outcomes]}
        if notes:
            content["warnings"] = notes
        status = 200
        if single:
            failed = [(r, kind) for r, kind in outcomes if kind in _STATUS]
            if failed:
                status = min(_STATUS[kind] for _, kind in failed)
                content = {"error": failed[0][0]["error"], **content}
        return _json(content, status)

    @app.post("/predict")
    async def predict_endpoint(request: Request) -> JSONResponse:
        try:
            return await respond(request)
        except _RequestError as err:
            headers = {"Retry-After": "5"} if err.status == 503 else {}
            return _json({"error": err.message}, err.status, **headers)
        except Exception as err:
            traceback.print_exc()
            return _json({"error": f"internal error: {type(err).__name__}: {err}"}, 500)

    return app
