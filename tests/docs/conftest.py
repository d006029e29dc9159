"""Running the documentation's code blocks: settings for ``test_code_blocks.py`` and a plugin.

``test_code_blocks.py`` runs every page (README.md and docs/src/**/*.md) through the PyPI plugin
`pytest-codeblocks <https://github.com/nschloe/pytest-codeblocks>`_, in a pytest of its own per
page (``python -m pytest -p pytest_codeblocks -p tests.docs.conftest --codeblocks PAGE``), so a
page's blocks run in order in one folder and share its files, as they do for a reader. The
plugin executes each ```` ```python ```` block with ``exec`` and each ```` ```bash ```` block with
``bash -c``; a block is skipped by an HTML comment before it, which a rendered page hides::

    <!--pytest.mark.skip(reason="creates a virtual environment")-->

This module is loaded into that inner pytest as a plugin (``-p tests.docs.conftest``) and adds
two things to pytest-codeblocks:

- ``bash`` blocks run under ``set -eo pipefail``: pytest-codeblocks checks only the exit status
  of the block's last command, so a failing command in the middle would otherwise pass. A
  failed block reports its stdout and stderr.
- ``<!--pytest.mark.tiny("--set subset=60 --set epochs=1")-->`` before a ``bash`` block appends
  those arguments to each ``molgnn train`` / ``molgnn online`` / ``python sweeps/...`` command of
  the block when ``MOLGNN_DOCS_TINY=1`` (what ``test_code_blocks.py`` sets), so that a block
  showing a two-minute or a multi-day run checks the same command line in seconds. Without
  ``MOLGNN_DOCS_TINY`` the blocks run as written.

In the outer pytest this file is an ordinary conftest; the hooks below touch only
pytest-codeblocks items, which the outer run does not have.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import traceback

import pytest

#: Commands that ``tiny`` shrinks (the start of a command line in a bash block).
TINY_COMMANDS = re.compile(r"^\s*(molgnn (train|online)|python3? sweeps/\S+\.py)(\s|$)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "tiny(args): arguments the docs test appends to the molgnn train/online and sweep "
        "commands of a bash code block when MOLGNN_DOCS_TINY=1",
    )


def _is_code_block(item: pytest.Item) -> bool:
    block = getattr(item, "obj", None)
    return type(item).__name__ == "TestBlock" and hasattr(block, "syntax")


def _split_tail(line: str) -> tuple[str, str]:
    """``line`` as (command, tail): the tail starts at the first unquoted redirection, ``&``,
    ``|``, ``;`` or ``#`` that follows a blank, where appended arguments must not go."""
    for match in re.finditer(r"\s+(\d?>|&|\||;|#)", line):
        before = line[: match.start()]
        if before.count("'") % 2 == 0 and before.count('"') % 2 == 0:
            return before, line[match.start() :]
    return line.rstrip(), ""


def shrink(code: str, args: str) -> str:
    """``code`` with ``args`` appended to every command that :data:`TINY_COMMANDS` matches.

    A command may run over several lines (``\\`` at the end of a line); the arguments go at the
    end of its last line, before any redirection, ``&``, pipe or comment.
    """
    out: list[str] = []
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        start = i
        while lines[i].rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
        command = lines[start : i + 1]
        if TINY_COMMANDS.match(command[0]):
            body, tail = _split_tail(command[-1])
            command[-1] = f"{body} {args}{tail}"
        out.extend(command)
        i += 1
    return "\n".join(out) + "\n"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tiny = os.environ.get("MOLGNN_DOCS_TINY") == "1"
    for item in items:
        if not _is_code_block(item):
            continue
        block = item.obj  # type: ignore[attr-defined]
        if block.syntax in ("bash", "sh"):
            mark = item.get_closest_marker("tiny")
            problem = None
            if item.get_closest_marker("skip") is None and tiny:
                if re.search(r"\bpip install\b|-m venv\b", block.code):
                    problem = "installs packages: skip it with a reason"
                elif mark is None and any(
                    TINY_COMMANDS.match(li) for li in block.code.splitlines()
                ):
                    problem = "trains without a tiny mark, which CI has no time for"
            if problem:
                block.code = f"echo 'bash block at line {block.lineno} {problem}' >&2\nexit 1\n"
                continue
            if tiny and mark is not None:
                args = " ".join(mark.args) or "--set subset=60 --set epochs=1"
                shlex.split(args)  # a malformed mark fails here, not in the shell
                block.code = shrink(block.code, args)
            block.syntax = "bash"
            block.code = "set -eo pipefail\n" + block.code


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if _is_code_block(item) and call.excinfo is not None:
        err = call.excinfo.value
        cause = err.__cause__ or err.__context__
        if isinstance(err, RuntimeError) and cause is not None:
            # pytest-codeblocks reports a failed Python block without its traceback
            trace = "".join(traceback.format_exception(cause))
            report.longrepr = f"{err}\n\n--- traceback ---\n{trace}"
        if isinstance(err, subprocess.CalledProcessError):
            out = (err.stdout or b"").decode(errors="replace")[-4000:]
            log = (err.stderr or b"").decode(errors="replace")[-6000:]
            report.longrepr = (
                f"bash block at line {item.obj.lineno} exited with {err.returncode}\n"  # type: ignore[attr-defined]
                f"--- code ---\n{item.obj.code}\n--- stdout ---\n{out}\n--- stderr ---\n{log}"  # type: ignore[attr-defined]
            )
    return report
