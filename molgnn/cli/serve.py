"""``molgnn serve CKPT``: an HTTP prediction service (extra ``serve``)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Register ``molgnn serve``."""
    p = subparsers.add_parser(
        "serve",
        help="serve predictions over HTTP",
        description="POST /predict with {'xyz': ...}, {'smiles': ...} or {'molecules': [...]}; "
        "GET /health and /model. Needs: pip install 'molgnn[serve]'.",
    )
    p.add_argument("checkpoint")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-request-bytes", type=int, default=1_000_000)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``molgnn serve``."""
    try:
        import uvicorn
    except ImportError:
        raise ValueError(
            "molgnn serve needs FastAPI and uvicorn: pip install 'molgnn[serve]'"
        ) from None
    from molgnn.serve import create_app
    from molgnn.training import load

    app = create_app(load(args.checkpoint), max_request_bytes=args.max_request_bytes)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
