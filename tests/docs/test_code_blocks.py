"""Every ``python`` and ``bash`` block of README.md and docs/src/ runs, and a failing one fails.

Each page runs in a pytest of its own with the PyPI plugin pytest-codeblocks (see
``tests/docs/conftest.py`` for what it adds), in a fresh folder where ``sweeps/`` and
``benchmarks/`` are links to the repository's, as in a clone. Its blocks run in page order and
share that folder, so a page may train a model in one block and load it in the next.

The environment is the docs' "tiny" mode, which nothing downloads in:

- ``MOLGNN_QM9PACK_DIR`` is the installed qm9pack wheel's data folder (QM9, offline), and
  ``HOME`` and ``MOLGNN_DATA`` are one temporary folder for the whole session, so QM9 is
  processed once and ``~/.cache/molgnn/qm9`` in a page means that folder;
- ``MOLGNN_DOCS_TINY=1``: the commands of a block marked ``tiny`` get its ``--set`` arguments
  (a QM9 subset of tens of molecules, one epoch).

Blocks that cannot run here are skipped by a ``pytest.mark.skip(reason=...)`` comment that names
why (they create virtual environments, or start Ray, which binds to the machine's outward
address outside a network namespace). This test fails a page whose skipped block gives no
reason, whose ``python``/``bash`` fence carries extra words (pytest-codeblocks would silently
not run it), or whose ``pytest-codeblocks:cont`` does not follow a python or bash block.

``MOLGNN_DOCS_PAGES=README.md,docs/src/concepts.md`` runs only those pages; the time each block
took is printed (``pytest -s``) and written to ``$MOLGNN_DOCS_TIMES`` when that is set.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip(
    "pytest_codeblocks", reason="needs pytest-codeblocks (pip install -e '.[test]')"
)

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "src").rglob("*.md"))]
#: Fence languages that pytest-codeblocks runs.
RUN_LANGUAGES = ("python", "bash", "sh")
#: Seconds one page may take (the whole set of pages takes a few minutes).
PAGE_TIMEOUT = 900

_wanted = os.environ.get("MOLGNN_DOCS_PAGES")
if _wanted:
    PAGES = [ROOT / p.strip() for p in _wanted.split(",") if p.strip()]


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def _fences(text: str) -> list[tuple[int, str]]:
    """(line, info string) of each fenced block that opens at the start of a line."""
    found, inside = [], False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            if not inside:
                found.append((number, stripped[3:].strip()))
            inside = not inside
    return found


def check_page_syntax(page: Path) -> list[str]:
    """Problems that would make pytest-codeblocks skip a block silently or misplace one."""
    text = page.read_text()
    problems = []
    fences = _fences(text)
    for number, info in fences:
        words = info.split()
        runnable = words and words[0] in (*RUN_LANGUAGES, "py", "python3", "shell", "console")
        if runnable and (info not in RUN_LANGUAGES or words[0] == "sh"):
            problems.append(
                f"line {number}: fence '```{info}' is not run; write '```python' or '```bash'"
            )
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if "pytest-codeblocks:cont" in line:
            before = [info for n, info in fences if n < number]
            if not before or before[-1] not in RUN_LANGUAGES:
                problems.append(f"line {number}: 'cont' must follow a python or bash block")
        skip = re.search(r"pytest\.mark\.(skip|skipif|xfail)\b(.*)", line)
        if skip and "reason=" not in skip.group(2):
            problems.append(f"line {number}: a skipped block must say why (reason=...)")
        if "pytest-codeblocks:skip" in line:
            problems.append(f"line {number}: use pytest.mark.skip(reason=...) instead")
    return problems


def _qm9pack_data() -> Path:
    """The data folder of the installed qm9pack wheel (as molgnn.data.qm9.qm9pack_dir finds it,
    whatever MOLGNN_QM9PACK_DIR says here)."""
    import importlib.util

    spec = importlib.util.find_spec("qm9pack")
    folder = None
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    if folder is None or not (folder / "qm9_part1.csv").is_file():
        pytest.fail("the docs test reads QM9 from the qm9pack wheel: pip install -e '.[test]'")
    return folder


@pytest.fixture(scope="session")
def docs_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HOME of the pages' commands, shared by all pages so that QM9 is processed once."""
    home = tmp_path_factory.mktemp("docs-home")
    (home / ".cache" / "molgnn").mkdir(parents=True)
    return home


@pytest.fixture(scope="session")
def docs_env(docs_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):  # whatever the developer's shell set for molgnn does not leak in
        if name.startswith(("MOLGNN_", "RAY_")):
            del env[name]
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        HOME=str(docs_home),
        MOLGNN_DATA=str(docs_home / ".cache" / "molgnn"),
        MOLGNN_QM9PACK_DIR=str(_qm9pack_data()),
        MOLGNN_DOCS_TINY="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        PATH=os.pathsep.join([bin_dir, env.get("PATH", "")]),
        PYTHONUNBUFFERED="1",
        RAY_USAGE_STATS_ENABLED="0",
        MPLBACKEND="Agg",
    )
    return env


def _results(junit: Path) -> list[dict[str, object]]:
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = tag
                out_message = node.get("message", "")
                break
        else:
            out_message = ""
        out.append(
            {
                "name": case.get("name"),
                "time": float(case.get("time", 0)),
                "outcome": outcome,
                "message": out_message,
            }
        )
    return out


@pytest.mark.parametrize("page", PAGES, ids=[_name(p) for p in PAGES])
def test_code_blocks(page: Path, docs_env: dict[str, str], tmp_path: Path) -> None:
    problems = check_page_syntax(page)
    assert not problems, f"{_name(page)}:\n" + "\n".join(problems)
    expected = [info for _, info in _fences(page.read_text()) if info in RUN_LANGUAGES]
    if not expected:
        return  # nothing to run on this page

    work = tmp_path / "work"
    work.mkdir()
    for folder in ("sweeps", "benchmarks"):
        (work / folder).symlink_to(ROOT / folder)
    junit = tmp_path / "blocks.xml"
    command = [
        sys.executable, "-m", "pytest", "-p", "pytest_codeblocks", "-p", "tests.docs.conftest",
        "--codeblocks", "-p", "no:cacheprovider", "-q", "-rs", f"--junitxml={junit}",
        "-o", "junit_family=xunit2", str(page),
    ]  # fmt: skip
    run = subprocess.run(
        command, cwd=work, env=docs_env, capture_output=True, text=True, timeout=PAGE_TIMEOUT
    )
    results = _results(junit) if junit.is_file() else []
    times = {str(r["name"]): r["time"] for r in results}
    print(f"\n{_name(page)}: " + json.dumps(times))
    if os.environ.get("MOLGNN_DOCS_TIMES"):
        with open(os.environ["MOLGNN_DOCS_TIMES"], "a") as f:
            f.write(json.dumps({"page": _name(page), "blocks": results}) + "\n")
    if run.returncode != 0:
        pytest.fail(
            f"code blocks of {_name(page)} failed (exit {run.returncode}):\n"
            + run.stdout[-20000:]
            + run.stderr[-5000:],
            pytrace=False,
        )
    # pytest-codeblocks merges a 'cont' block into the one before it
    merged = page.read_text().count("pytest-codeblocks:cont")
    assert len(results) == len(expected) - merged, (
        f"{len(results)} blocks ran or skipped, {len(expected) - merged} expected"
    )
    for result in results:
        if result["outcome"] == "skipped":
            assert str(result["message"]).strip(), f"{result['name']} was skipped without a reason"
