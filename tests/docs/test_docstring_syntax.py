"""molgnn's docstrings are Markdown, as the docs site (mkdocstrings) renders them.

Sphinx markup would show up raw on the site: roles (``:class:`X```, ``:math:`x```), directives
(``.. math::``) and ``::`` literal blocks. Write ``[`X`][molgnn.module.X]``, ``$x$``, ``$$``
blocks and fenced code instead (``docs/tools/sphinx_to_mkdocs.py`` converts old docstrings).
This reads the source, so it also covers modules that no API page shows; the browser test
(``test_site_in_browser.py``) checks the rendered pages.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "molgnn"
SPHINX = {
    "role": re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|obj|exc|const|math|ref):`"),
    "directive": re.compile(r"(?m)^\s*\.\. [a-z-]+::"),
    "literal block": re.compile(r"(?m)::[ \t]*$"),
}


def _docs(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every docstring (string statement) and ``#:`` comment of a file."""
    source = path.read_text()
    found = [
        (node.lineno, node.value.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    found += [
        (number, line.split("#:", 1)[1])
        for number, line in enumerate(source.splitlines(), start=1)
        if line.lstrip().startswith("#:")
    ]
    return found


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_sphinx_markup(path: Path) -> None:
    problems = [
        f"{path.relative_to(PACKAGE.parent)}:{line + text.count(chr(10), 0, match.start())}: "
        f"Sphinx {kind}: {match.group(0).strip()!r}"
        for line, text in _docs(path)
        for kind, pattern in SPHINX.items()
        for match in pattern.finditer(text)
    ]
    assert not problems, "\n".join(problems)


def test_the_check_finds_sphinx_markup(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""See :class:`Foo`.\n\n.. math::\n    x\n\nExample::\n\n    f()\n"""\n'
        "#: Uses :data:`BAR`.\nBAR = 1\n"
        'CODE = ":class:`not a docstring`"\n'
    )
    kinds = [kind for _, text in _docs(sample) for kind, p in SPHINX.items() if p.search(text)]
    assert sorted(kinds) == ["directive", "literal block", "role", "role"]
