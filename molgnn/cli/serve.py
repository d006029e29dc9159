"""``molgnn serve CKPT``: an HTTP prediction service (extra ``serve``).

``CKPT`` is whatever [`molgnn.load`][molgnn.inference.load] takes (a checkpoint file, or a
registry URI such as ``models:/name@alias``), passed through unchanged. Uncertainty as for
``molgnn predict``: ``--member CKPT`` (repeatable) serves the deep ensemble of ``CKPT`` and the
members, ``--mc-dropout N`` a model with dropout; each record then carries ``std``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import socket
import sys
from typing import Any

from molgnn.cli.predict import _samples

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Register ``molgnn serve``."""
    p = subparsers.add_parser(
        "serve",
        help="serve predictions over HTTP",
        description="POST /predict with {'xyz': ...}, {'smiles': ...} or {'molecules': [...]}; "
        "GET /health, /model, /metrics (Prometheus) and /openapi.json (the schema; /docs shows "
        "it). Parsing, SMILES embedding and inference run in worker processes with a time limit "
        "per request. Needs: pip install 'molgnn[serve]'.",
    )
    p.add_argument(
        "checkpoint",
        help="a molgnn checkpoint (.ckpt), or anything molgnn.load takes (e.g. models:/name@alias)",
    )
    p.add_argument(
        "--member",
        action="append",
        default=[],
        metavar="CKPT",
        help="another checkpoint of a deep ensemble (repeatable): CHECKPOINT and every --member "
        "are served together, with their mean and standard deviation ('std')",
    )
    p.add_argument(
        "--mc-dropout",
        type=_samples,
        metavar="N",
        help="MC dropout: serve the mean and standard deviation ('std') of N forward passes with "
        "dropout on (a model trained with dropout)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=8000, help="TCP port, 0 for any free one (default: 8000)"
    )
    p.add_argument(
        "--max-request-bytes",
        type=int,
        default=1_000_000,
        help="largest request body; larger ones get 413 (default: 1000000)",
    )
    p.add_argument(
        "--max-molecules", type=int, default=1000, help="most molecules per request (default: 1000)"
    )
    p.add_argument(
        "--max-atoms",
        type=int,
        default=1000,
        help="most atoms per molecule, hydrogens included (default: 1000)",
    )
    p.add_argument(
        "--max-smiles-length",
        type=int,
        default=1000,
        help="longest SMILES in characters (default: 1000)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        help="seconds of work per request; slower requests get 503 (default: 30)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="worker processes, i.e. requests computed at once (default: 2)",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads per worker (default: the CPUs divided by --workers, at least 1)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=3.0,
        help="seconds running requests get to finish after SIGTERM or Ctrl-C (default: 3)",
    )
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, got {args.port}")
    for flag in (
        "max_request_bytes",
        "max_molecules",
        "max_atoms",
        "max_smiles_length",
        "workers",
        "threads",
    ):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if not (math.isfinite(args.request_timeout) and args.request_timeout > 0):
        raise ValueError(
            f"--request-timeout must be a positive number of seconds, got {args.request_timeout}"
        )
    if not (math.isfinite(args.shutdown_timeout) and args.shutdown_timeout >= 0):
        raise ValueError(
            f"--shutdown-timeout must be zero or more seconds, got {args.shutdown_timeout}"
        )
    if args.mc_dropout is not None and args.member:
        raise ValueError(
            "--mc-dropout is for a single model; an ensemble (--member) has its own std"
        )


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (uvicorn listens on it once the workers are ready)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as err:
        raise ValueError(f"--host {host!r}: cannot resolve it ({err.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


def _load(path: str, members: list[str]) -> Any:
    """The model to serve: ``molgnn.load(path)``, or the ensemble of ``path`` and ``members``
    (as ``molgnn predict --member`` builds it)."""
    from molgnn.inference import load

    try:
        if members:
            from molgnn.uncertainty import Ensemble

            return Ensemble.from_checkpoints([path, *members])
        return load(path)
    except (ValueError, FileNotFoundError, ImportError):  # already one line naming the problem
        raise
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a checkpoint file") from None
    except Exception as err:  # whatever a damaged or foreign file raises inside torch
        raise ValueError(
            f"{path} is not a loadable molgnn checkpoint ({type(err).__name__}: {err})"
        ) from None


def _server_class(base: Any) -> Any:
    """uvicorn's ``Server``, with a shutdown that answers the requests still running."""

    class Server(base):
        def __init__(self, config: Any, pool: Any, grace: float) -> None:
            super().__init__(config)
            self.pool, self.grace = pool, grace

        async def shutdown(self, sockets: Any = None) -> None:
            # Stop accepting, give running requests ``grace`` seconds, then stop the workers:
            # the requests still waiting for one are answered 503 ("shutting down") before
            # uvicorn closes their connections.
            for server in self.servers:
                server.close()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.grace
            while self.server_state.tasks and loop.time() < deadline:
                await asyncio.sleep(0.05)
            self.pool.close()
            await super().shutdown(sockets)

    return Server


def run(args: argparse.Namespace) -> int:
    """Run ``molgnn serve``."""
    try:
        import uvicorn
    except ImportError:
        raise ValueError(
            "molgnn serve needs FastAPI and uvicorn: pip install 'molgnn[serve]'"
        ) from None
    _check_args(args)
    sock = _bind(args.host, args.port)
    try:
        from molgnn.inference.server import create_app

        try:
            app = create_app(
                _load(args.checkpoint, args.member),
                max_request_bytes=args.max_request_bytes,
                max_molecules=args.max_molecules,
                max_atoms=args.max_atoms,
                max_smiles_length=args.max_smiles_length,
                request_timeout=args.request_timeout,
                workers=args.workers,
                mc_dropout_samples=args.mc_dropout,
                threads_per_worker=args.threads,
            )
        except RuntimeError as err:
            raise ValueError(str(err)) from None
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        served = args.checkpoint
        if args.member:
            served = f"an ensemble of {1 + len(args.member)} ({args.checkpoint}, ...)"
        elif args.mc_dropout is not None:
            served += f" with MC dropout ({args.mc_dropout} passes)"
        print(
            f"molgnn serve: serving {served} on http://{shown}:{port} "
            f"({args.workers} worker(s), {args.request_timeout:g} s per request)",
            file=sys.stderr,
            flush=True,
        )
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
        server = _server_class(uvicorn.Server)(config, app.state.worker_pool, args.shutdown_timeout)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn raises Ctrl-C again once it has shut down
            return 130
    finally:
        sock.close()
    return 0
