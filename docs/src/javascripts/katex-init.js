// Typeset the math that pymdownx.arithmatex (generic mode) leaves in the page:
// <span class="arithmatex">\(...\)</span> inline and <div class="arithmatex">\[...\]</div> display.
// Only those elements are touched, so a "$" elsewhere in the text stays a dollar sign.
// A formula KaTeX cannot parse is shown in red and reported on the console, which the
// browser test (tests/docs/test_site_in_browser.py) treats as a failure.
function typesetMath(root) {
  for (const el of root.querySelectorAll(".arithmatex")) {
    if (el.querySelector(".katex")) continue;
    const text = el.textContent.trim();
    const display = text.startsWith("\\[");
    const tex = text.replace(/^\\[([]/, "").replace(/\\[)\]]$/, "");
    try {
      katex.render(tex, el, { displayMode: display, throwOnError: true });
    } catch (error) {
      console.error(`KaTeX could not typeset ${JSON.stringify(tex)}: ${error.message}`);
      katex.render(tex, el, { displayMode: display, throwOnError: false });
    }
  }
}

// Material for MkDocs emits document$ on every page load, instant navigation included.
if (typeof document$ !== "undefined") {
  document$.subscribe(({ body }) => typesetMath(body));
} else {
  document.addEventListener("DOMContentLoaded", () => typesetMath(document.body));
}
