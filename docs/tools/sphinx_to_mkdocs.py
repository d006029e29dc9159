"""Rewrite Sphinx/reStructuredText markup in molgnn's docstrings as the docs site's Markdown.

The API reference is rendered by mkdocstrings, so docstrings speak Markdown:

- ``:class:`X```, ``:func:``, ``:meth:``, ``:attr:``, ``:data:``, ``:mod:``, ``:obj:``, ``:exc:``
  become mkdocs-autorefs cross-references, ``[`X`][molgnn.module.X]``, with the target resolved
  the way Sphinx resolves it (the enclosing class, the module and what it imports, then a unique
  match in the package) and written as the path the site documents it under. ``~`` shows the
  last component only; ``title <target>`` keeps the title. A target the site does not document
  (``torch.compile``, ``None``, a private helper) becomes inline code;
- ``:math:`x``` becomes ``$x$`` and a ``.. math::`` block a ``$$ ... $$`` block
  (pymdownx.arithmatex, typeset by KaTeX);
- a literal block introduced by ``::`` becomes a fenced code block (``Example::`` becomes a
  Google-style ``Example:`` section holding it).

Only docstrings (string statements) and ``#:`` comments change; code is never touched. The
documented paths come from the site's ``objects.inv``, so build the site first::

    mkdocs build -f docs/mkdocs.yml -d /tmp/site
    python docs/tools/sphinx_to_mkdocs.py --inventory /tmp/site/objects.inv molgnn

Prints what it changed and every reference it could not resolve. ``--check`` changes nothing
and exits 1 if any file still has Sphinx markup.
"""

from __future__ import annotations

import argparse
import ast
import collections
import re
import sys
import textwrap
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import griffe

ROLES = "class|func|meth|attr|data|mod|obj|exc|const"
# A trailing " s" is reStructuredText's plural of a role (":class:`Block` s"): "Blocks" here.
ROLE = re.compile(rf":(?:py:)?({ROLES}):`([^`]+)`(?P<plural> s(?!\w))?")
MATH_ROLE = re.compile(r":math:`([^`]+)`")
MATH_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<rest>.*)$")
LITERAL = re.compile(r"^(?P<head>.*?)(?P<marker>\s*::)[ \t]*$")
ANY_MARKUP = re.compile(rf":(?:py:)?(?:{ROLES}|math):`|^\s*\.\. [a-z-]+::|\S::\s*$", re.M)
EXTERNAL_LITERALS = {"None", "True", "False", "NotImplemented", "Ellipsis"}


@dataclass
class Inventory:
    """The ids the site documents: each id's page anchor, and the id that owns each anchor."""

    anchor: dict[str, str] = field(default_factory=dict)
    primary: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Inventory:
        data = path.read_bytes()
        header_end = 0
        for _ in range(4):
            header_end = data.index(b"\n", header_end) + 1
        inv = cls()
        for line in zlib.decompress(data[header_end:]).decode().splitlines():
            name, _domain, _prio, uri, *_ = line.split(" ")
            anchor = uri.replace("#$", "#" + name) if uri.endswith("#$") else uri
            inv.anchor[name] = anchor
            if uri.endswith("#$") or uri.endswith("#" + name):
                inv.primary[anchor] = name
        return inv

    def documented(self, path: str) -> str | None:
        anchor = self.anchor.get(path)
        return None if anchor is None else self.primary.get(anchor, path)


@dataclass
class Report:
    changed: collections.Counter[str] = field(default_factory=collections.Counter)
    unresolved: list[tuple[str, int, str]] = field(default_factory=list)


class Resolver:
    def __init__(self, package: griffe.Module, inventory: Inventory) -> None:
        self.package = package
        self.inventory = inventory
        self.by_name: dict[str, set[str]] = collections.defaultdict(set)
        self._index(package)
        # molgnn's lazy top-level names (molgnn.load -> molgnn.inference.load), which griffe,
        # reading the source, cannot follow through the module's __getattr__.
        lazy = package.members.get("_ATTRIBUTES")
        lazy_value = getattr(lazy, "value", None)
        self.top_level: dict[str, str] = {
            f"molgnn.{name}": f"{module}.{name}"
            for name, module in (ast.literal_eval(str(lazy_value)) if lazy_value else {}).items()
        }

    def _index(self, obj: griffe.Object) -> None:
        for member in obj.members.values():
            if member.is_alias:
                continue
            self.by_name[member.name].add(member.path)
            if member.is_module or member.is_class:
                self._index(member)  # type: ignore[arg-type]

    def _lookup(self, path: str) -> griffe.Object | griffe.Alias | None:
        try:
            return self.package.modules_collection[path]
        except Exception:  # not found, or an alias griffe cannot resolve
            return None

    def _documented(self, path: str) -> str | None:
        found = self.inventory.documented(path)
        if found is not None:
            return found
        obj = self._lookup(path)
        if obj is None:
            return None
        try:
            canonical = obj.final_target.path if obj.is_alias else obj.path  # type: ignore[union-attr]
        except Exception:
            return None
        found = self.inventory.documented(canonical)
        name = path.rsplit(".", 1)[-1]
        # A package exports a function under the name of its own submodule
        # (molgnn.training.fit): griffe sees the submodule, Python the function. The API
        # page gives the function's section that anchor ([](){#molgnn.training.fit}).
        shadowed = found is None and obj.is_module and name in obj.members
        if shadowed and self._documented(f"{canonical}.{name}") is not None:
            return path
        return found

    def resolve(self, target: str, scope: str) -> str | None:
        """The documented id of ``target`` seen from the object at ``scope``, or None."""
        target = target.lstrip(".")
        target = self.top_level.get(target, target)
        if target.startswith("molgnn"):
            return self._documented(target)
        head, _, rest = target.partition(".")
        parts = scope.split(".")
        for n in range(len(parts), 0, -1):  # enclosing scopes, innermost first
            base = ".".join(parts[:n])
            obj = self._lookup(base)
            if obj is None or head not in obj.members:
                continue
            # The innermost scope that has the name decides, documented or not.
            member = obj.members[head]
            path = member.target_path if member.is_alias else member.path  # type: ignore[union-attr]
            return self._documented(f"{path}.{rest}" if rest else path)
        # Not in scope (Sphinx would also search the whole package): a unique match by name.
        last = target.rsplit(".", 1)[-1]
        matches = {
            found
            for path in self.by_name.get(last, ())
            if path.endswith("." + target) and (found := self._documented(path)) is not None
        }
        return matches.pop() if len(matches) == 1 else None


def _scopes(tree: ast.Module, module: str) -> list[tuple[int, int, str]]:
    """(first line, last line, dotted path) of every class and function, outermost first."""
    out: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                path = f"{prefix}.{child.name}"
                out.append((child.lineno, child.end_lineno or child.lineno, path))
                visit(child, path)
            elif not isinstance(child, ast.expr):
                visit(child, prefix)

    visit(tree, module)
    return out


def _scope_at(scopes: list[tuple[int, int, str]], line: int, module: str) -> str:
    best = module
    for first, last, path in scopes:
        if first <= line <= last:
            best = path  # later entries are nested deeper
    return best


class Converter:
    def __init__(self, resolver: Resolver, report: Report) -> None:
        self.resolver = resolver
        self.report = report
        self.raw = True  # whether the docstring being converted is a raw string

    def role(self, match: re.Match[str], scope: str, where: tuple[str, int]) -> str:
        kind, content = match.group(1), " ".join(match.group(2).split())
        title_form = re.fullmatch(r"(.+?)\s*<([^<>]+)>", content)
        if title_form:
            display, target = title_form.group(1), title_form.group(2)
        else:
            target = content
            display = content.lstrip("~!.")
            if content.startswith("~"):
                display = display.rsplit(".", 1)[-1]
        target = target.lstrip("~!").removesuffix("()")
        plural = "s" if match.group("plural") else ""
        self.report.changed[kind] += 1
        found = None
        if target not in EXTERNAL_LITERALS and not content.startswith("!"):
            found = self.resolver.resolve(target, scope)
        if found is None:
            if target not in EXTERNAL_LITERALS:
                self.report.unresolved.append((where[0], where[1], f":{kind}:`{content}`"))
            return self._keep_lines(match, f"``{display}``" + plural)
        return self._keep_lines(match, f"[`{display}`][{found}]" + plural)

    @staticmethod
    def _keep_lines(match: re.Match[str], new: str) -> str:
        """A role written over two lines: its replacement starts the second line."""
        breaks = match.group(0).count("\n")
        if breaks == 0:
            return new
        if breaks > 1:
            raise ValueError(f"a role over more than two lines: {match.group(0)!r}")
        last = match.group(0).rsplit("\n", 1)[1]
        return "\n" + last[: len(last) - len(last.lstrip())] + new

    def text(
        self,
        text: str,
        scope: str,
        where: tuple[str, int],
        *,
        block_syntax: bool,
        raw: bool = True,
    ) -> tuple[list[str], set[int]]:
        """Convert one docstring's (or comment's) source text: its lines, and which changed."""
        self.raw = raw
        lines = text.split("\n")
        # The last line of a multi-line docstring is the closing quotes' indentation: keep it.
        tail = [lines.pop()] if len(lines) > 1 and not lines[-1].strip() else []
        if block_syntax:
            lines = self._math_blocks(lines)
            lines = self._literal_blocks(lines)
        # Roles may run over a line break, so they are replaced in the whole text at once.
        math = MATH_ROLE.sub(self._math, "\n".join(lines))

        def line_of(match: re.Match[str]) -> tuple[str, int]:
            return (where[0], where[1] + math.count("\n", 0, match.start()))

        out = ROLE.sub(lambda m: self.role(m, scope, line_of(m)), math).split("\n")
        out = [new.rstrip() if new != old else new for old, new in zip(lines, out, strict=True)]
        changed = {k for k, (old, new) in enumerate(zip(lines, out, strict=True)) if old != new}
        return out + tail, changed

    def _math(self, match: re.Match[str]) -> str:
        self.report.changed["math"] += 1
        return f"${match.group(1).strip()}$"

    def _math_blocks(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(lines):
            m = MATH_DIRECTIVE.match(lines[i])
            if not m:
                out.append(lines[i])
                i += 1
                continue
            indent = m.group("indent")
            body = [m.group("rest")] if m.group("rest").strip() else []
            i += 1
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or _width(lines[i]) > len(indent)):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            block = [line for line in block if not re.match(r"\s*:[a-z]+:", line)]  # options
            body += textwrap.dedent("\n".join(block)).split("\n") if block else []
            if out and out[-1].strip():
                out.append("")
            # As in Sphinx, a blank line separates equations.
            equations: list[list[str]] = [[]]
            for b in body:
                if b.strip():
                    equations[-1].append(b)
                elif equations[-1]:
                    equations.append([])
            for n, equation in enumerate(e for e in equations if e):
                if n:
                    out.append("")
                out += [f"{indent}$$"] + [
                    f"{indent}{b}".rstrip() for b in _aligned(equation, self.raw)
                ]
                out.append(f"{indent}$$")
                self.report.changed["math block"] += 1
            if i < len(lines) and lines[i].strip():
                out.append("")
        return out

    def _literal_blocks(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(lines):
            m = LITERAL.match(lines[i])
            nxt = i + 1
            while nxt < len(lines) and not lines[nxt].strip():
                nxt += 1
            indent = _width(lines[i])
            if not m or nxt >= len(lines) or nxt == i + 1 or _width(lines[nxt]) <= indent:
                out.append(lines[i])
                i += 1
                continue
            j = nxt
            block: list[str] = []
            while j < len(lines) and (not lines[j].strip() or _width(lines[j]) > indent):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            code = textwrap.dedent("\n".join(block)).split("\n")
            lang = _language(code)
            pad = " " * indent
            head, marker = m.group("head"), m.group("marker")
            if head.strip() in {"Example", "Examples"}:
                # A Google-style section: its title, then the code indented under it.
                out.append(f"{pad}{head.strip()}:")
                inner = pad + "    "
                out += (
                    [f"{inner}```{lang}"] + [f"{inner}{c}".rstrip() for c in code] + [f"{inner}```"]
                )
            else:
                # "text::" keeps one colon; a lone " ::" after a sentence disappears.
                out.append(head + (":" if marker == "::" else ""))
                out.append("")
                out += [f"{pad}```{lang}"] + [f"{pad}{c}".rstrip() for c in code] + [f"{pad}```"]
            if j < len(lines) and lines[j].strip():
                out.append("")
            i = j
            self.report.changed["literal block"] += 1
        return out


def _aligned(equation: list[str], raw: bool) -> list[str]:
    r"""Sphinx sets an equation with ``\\`` or ``&`` outside any environment in an aligned
    environment; KaTeX needs it written out."""
    text = "\n".join(equation)
    outside = text
    inner = re.compile(r"\\begin\{(\w+\*?)\}(?:(?!\\begin\{).)*?\\end\{\1\}", re.S)
    while inner.search(outside):
        outside = inner.sub("", outside)
    newline = "\\\\" if raw else "\\\\\\\\"  # in the source text: \\ or \\\\
    if "&" not in outside and newline not in outside:
        return equation
    slash = "\\" if raw else "\\\\"
    return [f"{slash}begin{{aligned}}", *equation, f"{slash}end{{aligned}}"]


def _width(line: str) -> int:
    return len(line) - len(line.lstrip())


def _language(code: list[str]) -> str:
    body = [c for c in code if c.strip() and not c.lstrip().startswith("#")]
    if body and all(re.match(r"^\s*[\w.-]+:(\s|$)", c) or c.startswith(" ") for c in body):
        return "yaml"
    return "python"


WIDTH = 100  # the formatter's line length, which docstrings wrap at too
ITEM = re.compile(r"^\s*(?:[-*] |\d+\. )")
SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")
# Spans a line must not be broken inside: references, code, inline math.
UNBREAKABLE = re.compile(r"\[`[^`]*`\]\[[^\]]*\]|``[^`]*``|`[^`]*`|\$[^$]*\$")


def _in_blocks(lines: list[str]) -> list[bool]:
    """Which lines are inside (or fence) a code block or a $$ math block."""
    flags, inside, fence = [], False, ""
    for line in lines:
        text = line.strip()
        if not inside and (text.startswith("```") or text == "$$"):
            inside, fence = True, "```" if text.startswith("```") else "$$"
            flags.append(True)
        elif inside:
            flags.append(True)
            if text == fence:
                inside = False
        else:
            flags.append(False)
    return flags


def _section_item(lines: list[str], i: int) -> bool:
    """Whether line i is an entry of a Google-style section (``name: text`` under ``Args:``)."""
    indent = _width(lines[i])
    for k in range(i - 1, -1, -1):
        if lines[k].strip() and _width(lines[k]) < indent:
            # Returns and Yields hold a description, not "name: text" entries.
            free_text = lines[k].strip() in {"Returns:", "Yields:"}
            return bool(SECTION.match(lines[k])) and not free_text
    return False


def _continuation_indent(lines: list[str], i: int, first_indent: int | None) -> int:
    """The indentation of the line after line i in its paragraph."""
    line = lines[i]
    if i == 0 and first_indent is not None:
        return first_indent  # the docstring's first line starts after the quotes
    if ITEM.match(line):
        return len(ITEM.match(line).group(0))  # type: ignore[union-attr]
    if _section_item(lines, i):
        return _width(line) + 4
    return _width(line)


def rewrap(
    lines: list[str],
    changed: set[int],
    limits: dict[int, int],
    default: int = WIDTH,
    first_indent: int | None = None,
) -> list[str]:
    """Re-wrap the paragraphs of changed lines that grew past their width.

    A long line's overflow moves to the start of the next line of its paragraph (which may
    overflow in turn), or onto a new line when the paragraph ends there. Lines are ``default``
    wide, except those in ``limits`` (the first and last, which share a line with quotes).
    ``first_indent`` is the indentation of a docstring's lines after its first.
    """
    lines = list(lines)
    i = 0
    while i < len(lines):
        limit = limits.get(i, default)
        if i not in changed or len(lines[i]) <= limit or _in_blocks(lines)[i]:
            i += 1
            continue
        line = lines[i]
        indent = line[: _width(line)]
        protected = UNBREAKABLE.sub(lambda m: m.group(0).replace(" ", "\x00"), line[len(indent) :])
        words = [w.replace("\x00", " ") for w in protected.split(" ")]
        head, k = indent + words[0], 1
        while k < len(words) and len(head) + 1 + len(words[k]) <= limit:
            head, k = f"{head} {words[k]}", k + 1
        if k == len(words):
            i += 1
            continue
        rest = " ".join(words[k:])
        lines[i] = head
        nxt = i + 1
        indent_next = _continuation_indent(lines, i, first_indent)
        joins = (
            nxt < len(lines)
            and lines[nxt].strip()
            and not _in_blocks(lines)[nxt]
            and not ITEM.match(lines[nxt])
            and not SECTION.match(lines[nxt])
            and _width(lines[nxt]) == indent_next
        )
        if joins:
            lines[nxt] = lines[nxt][: _width(lines[nxt])] + rest + " " + lines[nxt].lstrip()
            changed = changed | {nxt}
        else:
            lines.insert(nxt, " " * indent_next + rest)
            changed = {c + 1 if c >= nxt else c for c in changed} | {nxt}
            limits = {c + 1 if c >= nxt else c: v for c, v in limits.items()}
        i += 1
    return lines


def convert_file(path: Path, module: str, converter: Converter) -> str:
    source = path.read_text()
    tree = ast.parse(source)
    scopes = _scopes(tree, module)
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            continue
        const = node.value
        column = _char_offset(lines[const.lineno - 1], const.col_offset)
        start = starts[const.lineno - 1] + column
        end_line = const.end_lineno or const.lineno
        end = starts[end_line - 1] + _char_offset(lines[end_line - 1], const.end_col_offset or 0)
        literal = source[start:end]
        m = re.fullmatch(r"(?s)([rRuU]{0,2})('\'\'|\"\"\"|'|\")(.*)\2", literal)
        if not m or not ANY_MARKUP.search(m.group(3)):
            continue
        # A docstring lies inside its object's lines, so this is the object itself.
        scope = _scope_at(scopes, const.lineno, module)
        body, changed = converter.text(
            m.group(3),
            scope,
            (str(path), const.lineno),
            block_syntax=True,
            raw="r" in m.group(1).lower(),
        )
        quotes = len(m.group(2))
        limits = {0: WIDTH - column - len(m.group(1)) - quotes}
        last = len(body) - 1
        if body[last].strip():  # the closing quotes follow the text on its last line
            limits[last] = limits.get(last, WIDTH) - quotes
        body = rewrap(body, changed, limits, first_indent=_docstring_indent(body, column))
        edits.append((start, end, f"{m.group(1)}{m.group(2)}{chr(10).join(body)}{m.group(2)}"))

    # "#:" comments (griffe-sphinx reads them as the docstrings of the attributes below them),
    # converted a block of consecutive lines at a time so that they re-wrap together.
    number = 0
    while number < len(lines):
        comment = re.match(r"^([ \t]*)#:", lines[number])
        if not comment:
            number += 1
            continue
        indent, first = comment.group(1), number
        while number < len(lines) and lines[number].startswith(indent + "#:"):
            number += 1
        block = [line.rstrip("\r\n")[len(indent) + 2 :] for line in lines[first:number]]
        text = "\n".join(block)
        if ANY_MARKUP.search(text):
            scope = _scope_at(scopes, first + 1, module)
            new, changed = converter.text(text, scope, (str(path), first + 1), block_syntax=False)
            width = len(indent) + 2
            new = rewrap(new, changed, {}, WIDTH - width)
            newline = "\r\n" if lines[first].endswith("\r\n") else "\n"
            edits.append(
                (starts[first], starts[number], "".join(f"{indent}#:{c}{newline}" for c in new))
            )

    original = source
    for start, end, new in sorted(edits, reverse=True):
        source = source[:start] + new + source[end:]
    if _code(source) != _code(original):
        raise RuntimeError(f"{path}: the conversion would change code, not only docstrings")
    return source


def _code(source: str) -> str:
    """The file's syntax tree with its string statements (docstrings) blanked."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        is_string = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if is_string and isinstance(node.value.value, str):  # type: ignore[attr-defined]
            node.value.value = ""  # type: ignore[attr-defined]
    return ast.dump(tree)


def _docstring_indent(body: list[str], column: int) -> int:
    """The indentation of a docstring's lines after the first (the quotes' column if none)."""
    widths = [_width(line) for line in body[1:] if line.strip()]
    return min(widths) if widths else column


def _char_offset(line: str, byte_offset: int) -> int:
    """ast's column offsets count UTF-8 bytes; strings index characters."""
    return len(line.encode()[:byte_offset].decode(errors="ignore"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "paths", nargs="+", type=Path, help="files or folders of the molgnn package"
    )
    parser.add_argument("--inventory", type=Path, help="the built site's objects.inv")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if markup remains"
    )
    args = parser.parse_args(argv)

    files = sorted({f for p in args.paths for f in ([p] if p.is_file() else p.rglob("*.py"))})
    if args.check:
        left = [f for f in files if ANY_MARKUP.search(f.read_text())]
        for f in left:
            print(f"Sphinx markup left in {f}")
        return 1 if left else 0
    if args.inventory is None:
        parser.error("--inventory is required (build the site first)")

    root = Path.cwd()
    package = griffe.load(
        "molgnn",
        search_paths=[str(root)],
        extensions=griffe.load_extensions("griffe_sphinx"),
        resolve_aliases=True,
        resolve_external=False,
    )
    report = Report()
    converter = Converter(Resolver(package, Inventory.read(args.inventory)), report)
    for f in files:
        rel = f.resolve().relative_to(root)
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        before = f.read_text()
        after = convert_file(f, module, converter)
        if after != before:
            f.write_text(after)
            print(f"converted {rel}")
    print("conversions:", dict(sorted(report.changed.items())))
    for file, line, role in report.unresolved:
        print(f"not documented on the site, left as code: {file}:{line}: {role}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
