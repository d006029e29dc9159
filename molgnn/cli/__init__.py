"""The ``molgnn`` command line: ``molgnn <command> ...``.

Each command lives in its own module of this package and exposes ``add_parser(subparsers)``,
which registers an ``argparse`` sub-parser whose ``func`` default runs the command and returns
an exit code. Commands are imported only when the command line is parsed, so heavy
dependencies (Ray, RDKit) are loaded only by the commands that need them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from molgnn._version import __version__

__all__ = ["COMMANDS", "build_parser", "main"]

#: Command name -> module that implements it.
COMMANDS: dict[str, str] = {
    "data": "molgnn.cli.data",
    "train": "molgnn.cli.train",
    "evaluate": "molgnn.cli.evaluate",
    "predict": "molgnn.cli.predict",
    "serve": "molgnn.cli.serve",
    "online": "molgnn.cli.online",
    "registry": "molgnn.cli.registry",
    "tune": "molgnn.cli.tune",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="molgnn", description="Equivariant graph neural networks for molecules."
    )
    parser.add_argument("--version", action="version", version=f"molgnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as err:  # the user's input or files: one line, no traceback
        print(f"molgnn {args.command}: error: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:
        # molgnn's own run errors (a diverged training, ...) name the problem and the fix; a
        # RuntimeError from anywhere else is a bug, whose traceback is wanted.
        if not type(err).__module__.startswith("molgnn."):
            raise
        print(f"molgnn {args.command}: error: {err}", file=sys.stderr)
        return 1
    except ImportError as err:  # an optional extra that is not installed
        print(
            f"molgnn {args.command}: error: {err}; install the extra it needs "
            "(see the README's Extras, e.g. pip install 'molgnn[all]')",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
