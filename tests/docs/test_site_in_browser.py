"""The documentation site as a reader sees it: built, served on 127.0.0.1 and opened in Chromium.

``mkdocs build --strict`` checks links, anchors and cross-references, but not what a browser
shows. This builds the site into a temporary folder, serves it from a thread, opens every page in
headless Chromium (Debian's ``/usr/bin/chromium`` driven by Playwright) and fails on

- a page that does not load (HTTP status, JavaScript error, console error, failed request),
- any request that leaves 127.0.0.1 (the site must work offline: KaTeX is vendored),
- Sphinx/reStructuredText markup left in the text (``:math:``, ``:class:``, ``.. math::``, ...)
  or Markdown reference syntax that did not become a link (``[Name][molgnn.x]``), outside code,
- math that KaTeX did not typeset (an ``.arithmatex`` element with no KaTeX output, a KaTeX
  error) or ``$x$`` that arithmatex left as text,
- a page whose title heading is repeated (one ``<h1>``, and the first ``<h2>`` is not its copy).

It skips, saying why, where mkdocs, Playwright or Chromium is missing, except under CI (``CI`` set),
where it fails instead: ``.ci/run`` installs all three. With ``MOLGNN_DOCS_SCREENSHOTS=DIR`` it
also saves a full-page PNG of every page into DIR.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MKDOCS_YML = ROOT / "docs" / "mkdocs.yml"

# Sphinx roles (:math:`x`, :py:class:`X`; Markdown turns their backticks into code, so the
# text shows ":math:"), directives (.. math::), RST literal-block markers ("Example::" at the end
# of a line) and Markdown references that did not become links ([`X`][molgnn.x.X] shows as
# "[][molgnn.x.X]" once its code is left out), in a page's text outside code and math.
_ROLES = "math|class|func|meth|data|obj|mod|attr|exc|const|ref|doc|term|any|cite|eq|numref|envvar"
RAW_MARKUP = {
    "Sphinx role": re.compile(rf":(?:py:|std:|math:)?(?:{_ROLES}):"),
    "RST directive": re.compile(r"(?<!\.)\.\. [a-z-]+::"),
    "RST literal-block marker": re.compile(r"(?m)\w::[ \t]*$"),
    "unresolved reference": re.compile(r"\]\[~?[A-Za-z_][\w.]*\]"),
}


def _chromium() -> str | None:
    return (
        os.environ.get("MOLGNN_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def _missing() -> str | None:
    for module in ("mkdocs", "mkdocstrings", "material", "playwright"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[docs]')"
    if _chromium() is None:
        return "no Chromium found (apt-get install chromium, or set MOLGNN_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the docs browser test cannot run in CI: {reason}")
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-q",
            "-f",
            str(MKDOCS_YML),
            "-d",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stdout}\n{build.stderr}"
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=_chromium(),
            headless=True,
            chromium_sandbox=False,  # --no-sandbox: CI runs as root
            args=[
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _pages(site: Path) -> list[str]:
    """Every HTML page of the site, as a URL path ("guide/data/" for guide/data/index.html)."""
    pages = []
    for path in sorted(site.rglob("*.html")):
        rel = path.relative_to(site).as_posix()
        pages.append(rel[: -len("index.html")] if rel.endswith("index.html") else rel)
    return pages


# What each page reports back: its text outside code and math, its math (typeset or not) and
# its headings.
_INSPECT = """() => {
    const math = [...document.querySelectorAll(".arithmatex")];
    const prose = document.querySelector("article")?.cloneNode(true);
    prose?.querySelectorAll("pre, code, .arithmatex").forEach((el) => el.remove());
    return {
        prose: prose ? prose.textContent : "",
        math: math.length,
        untypeset: math.filter((el) => !el.querySelector(".katex")).map((el) => el.textContent),
        katexErrors: [...document.querySelectorAll(".katex-error")].map((el) => el.title),
        h1: [...document.querySelectorAll("article h1")].map((el) => el.textContent.trim()),
        h2: [...document.querySelectorAll("article h2")].map((el) => el.textContent.trim()),
    };
}"""
# Inline math that arithmatex did not recognise stays as "$x$" in the prose.
_DOLLAR_MATH = re.compile(r"\$[^$\s][^$]*\$")
# Pages open a few at a time: most of a page's time is waiting for the network to go idle.
_BATCH = 4


def _strip_permalink(heading: str) -> str:
    return heading.rstrip("¶").strip()


def _excerpts(kind: str, pattern: re.Pattern[str], text: str) -> list[str]:
    out = []
    for match in list(pattern.finditer(text))[:5]:
        around = " ".join(text[max(match.start() - 60, 0) : match.end() + 60].split())
        out.append(f"{kind} in the text: ...{around}...")
    return out


class _Page:
    """One page opened in the browser, with everything that went wrong while it loaded."""

    def __init__(self, context, base_url: str, rel: str) -> None:
        self.rel = rel
        self.problems: list[str] = []
        self.page = page = context.new_page()
        page.route("**/*", self._offline(base_url))
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"JavaScript error: {exc}"))
        page.on("requestfailed", lambda req: self.problems.append(f"failed request: {req.url}"))
        page.on("response", self._response)
        response = page.goto(f"{base_url}/{rel}", wait_until="commit")
        if response is None or not response.ok:
            status = response.status if response else "no response"
            self.problems.append(f"page did not load: {status}")

    def _offline(self, base_url: str):
        def route(route, request) -> None:
            if request.url.startswith((base_url + "/", "data:")):
                route.continue_()
            else:
                self.problems.append(f"request off 127.0.0.1: {request.url}")
                route.abort()

        return route

    def _console(self, message) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def check(self, shots: str | None) -> int:
        """Wait for the page to settle, record what is wrong with it; returns its math count."""
        page = self.page
        page.wait_for_load_state("load")
        page.wait_for_load_state("networkidle")
        info = page.evaluate(_INSPECT)
        for kind, pattern in RAW_MARKUP.items():
            self.problems += _excerpts(kind, pattern, info["prose"])
        self.problems += _excerpts("untypeset $...$ math", _DOLLAR_MATH, info["prose"])
        self.problems += [f"math not typeset: {tex[:80]!r}" for tex in info["untypeset"][:5]]
        self.problems += [f"KaTeX error: {title[:120]}" for title in info["katexErrors"][:5]]
        h1 = [_strip_permalink(h) for h in info["h1"]]
        h2 = [_strip_permalink(h) for h in info["h2"]]
        if len(h1) != 1:
            self.problems.append(f"{len(h1)} <h1> headings: {h1}")
        elif h2 and h2[0] == h1[0]:
            self.problems.append(f"the title {h1[0]!r} is repeated as the first <h2>")
        if shots:
            name = (self.rel.strip("/").replace("/", "_") or "index").removesuffix(".html")
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"{name}.png"), full_page=True)
        page.close()
        return info["math"]


def test_every_page_renders(site: Path, base_url: str, browser) -> None:
    pages = _pages(site)
    assert "" in pages and any(p.startswith("api/") for p in pages), pages
    shots = os.environ.get("MOLGNN_DOCS_SCREENSHOTS")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    math_total = 0
    try:
        for first in range(0, len(pages), _BATCH):
            batch = [_Page(context, base_url, rel) for rel in pages[first : first + _BATCH]]
            for page in batch:
                math_total += page.check(shots)
                problems += [f"/{page.rel}: {problem}" for problem in page.problems]
    finally:
        context.close()
    assert not problems, f"{len(problems)} problems on {len(pages)} pages:\n" + "\n".join(problems)
    # The API reference has math; a renderer that silently does nothing must not pass.
    assert math_total > 0, "no .arithmatex element on any page: is pymdownx.arithmatex configured?"
