"""The documentation site builds with --strict, and every page works in a real browser.

1. `mkdocs build --strict` into a temporary directory (once per module): broken links,
   missing pages, failing notebook cells and unknown `{{ source(...) }}` references all
   fail it.
2. Chromium (Debian's /usr/bin/chromium, driven by Playwright; never `playwright
   install`) loads
   every HTML page of the built site from a local server and checks that: the page has a
   title, every image loaded, math was rendered by the vendored KaTeX without errors,
   nothing was logged to the console as an error, no request failed or returned >= 400,
   and nothing was fetched from outside the local server (the site must work offline).

The browser test is skipped only when /usr/bin/chromium is missing and the CI variable
is unset; under CI it fails instead.

    .venv/bin/python -m pytest tests/test_docs_site.py -q
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BUILD_TIMEOUT_S = 1200
PAGE_TIMEOUT_MS = 20_000


# ---------------------------------------------------------------------------
# Which pages the site has
# ---------------------------------------------------------------------------


def _expected_pages() -> list[str]:
    """Site paths ("" for the home page, "notation/" ...) predicted from docs/, for
    parametrizing.

    Markdown pages and docs/notebooks/*.py notebooks become pages (use_directory_urls).
    `test_every_built_page_is_checked` verifies the prediction against the built site,
    so a page can never escape the browser test unnoticed.
    """
    sources = [
        p
        for p in DOCS.rglob("*.md")
        if not {"hooks", "figures"} & set(p.relative_to(DOCS).parts)
    ]
    sources += sorted((DOCS / "notebooks").glob("*.py"))
    pages = set()
    for src in sources:
        rel = src.relative_to(DOCS).with_suffix("")
        if any(part.startswith(".") for part in rel.parts):
            continue
        if rel.name in ("index", "README"):
            rel = rel.parent
        pages.add("" if str(rel) == "." else rel.as_posix() + "/")
    return sorted(pages)


def _built_pages(site: Path) -> list[str]:
    """Every HTML page of the built site, as site paths (404 page and theme assets left
    out).
    """
    pages = []
    for html in site.rglob("*.html"):
        rel = html.relative_to(site)
        if rel.parts[0] == "assets" or rel.as_posix() == "404.html":
            continue
        if rel.name == "index.html":
            pages.append("" if rel.parent == Path(".") else rel.parent.as_posix() + "/")
        else:
            pages.append(rel.as_posix())
    return sorted(pages)


PAGES = _expected_pages()


# ---------------------------------------------------------------------------
# Fixtures: build once, serve once, one browser
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", NO_MKDOCS_2_WARNING="1", MPLBACKEND="Agg")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"mkdocs build --strict failed (exit {proc.returncode}).\n"
            f"--- stderr ---\n{proc.stderr[-20000:]}\n--- stdout "
            f"---\n{proc.stdout[-5000:]}",
            pytrace=False,
        )
    return out


@pytest.fixture(scope="module")
def server(site):
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(
                f"{CHROMIUM} is missing; CI must run the browser test (apt-get install "
                "chromium)"
            )
        pytest.skip(
            f"{CHROMIUM} is missing (install Debian's chromium to run the browser test)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield b
        finally:
            b.close()


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_site_builds_strict(site):
    assert (site / "index.html").is_file()
    assert (site / "javascripts" / "katex" / "katex.min.js").is_file()


def test_every_built_page_is_checked(site):
    built = _built_pages(site)
    assert built == PAGES, (
        "The browser test's page list (predicted from docs/) differs from the built "
        "site:\n"
        f"  built but not checked: {sorted(set(built) - set(PAGES))}\n"
        f"  expected but not built: {sorted(set(PAGES) - set(built))}\n"
        "Update _expected_pages() in tests/test_docs_site.py."
    )


# Runs in the page after load: wait for every image (lazy ones forced eager), then
# report.
_IMAGES_JS = """
async () => {
  const imgs = Array.from(document.images);
  imgs.forEach((img) => { img.loading = "eager"; });
  await Promise.all(imgs.map((img) => img.complete ? null : new Promise((resolve) => {
    img.addEventListener("load", resolve, { once: true });
    img.addEventListener("error", resolve, { once: true });
    setTimeout(resolve, 10000);
  })));
  return imgs.filter((img) => !img.complete || img.naturalWidth === 0)
             .map((img) => img.currentSrc || img.src || img.outerHTML.slice(0, 120));
}
"""

_MATH_JS = """
() => {
  const arithmatex = Array.from(document.querySelectorAll(".arithmatex"));
  const nbMarkdown = Array.from(document.querySelectorAll(
    ".jupyter-wrapper .jp-MarkdownCell .jp-RenderedMarkdown"));
  // Text of notebook Markdown cells with the rendered formulas and code taken out:
  // leftover $$...$$ or $...$ means math that was not rendered.
  const leftovers = nbMarkdown.map((el) => {
    const copy = el.cloneNode(true);
    copy.querySelectorAll(".katex, code, pre").forEach((k) => k.remove());
    return copy.textContent;
  }).filter((text) =>
    /\\$\\$[\\s\\S]+?\\$\\$|\\$[^$\\s][^$]*\\$|\\\\\\(|\\\\\\[/.test(text));
  return {
    rendered: document.documentElement.dataset.mathRendered ?? null,
    katex: document.querySelectorAll(".katex").length,
    errors: Array.from(document.querySelectorAll(".katex-error"))
                 .map((e) => e.getAttribute("title") || e.textContent),
    unrendered: arithmatex.filter((el) => !el.querySelector(".katex"))
                          .map((el) => el.textContent.slice(0, 80)),
    leftovers: leftovers.map((t) => t.trim().slice(0, 120)),
    // KaTeX draws square roots and stretchy delimiters as inline SVGs; page CSS such as
    // `svg { max-width: 100%; height: auto }` squashes them to nothing.
    flatSvgs: Array.from(document.querySelectorAll(".katex svg"))
      .filter((svg) => svg.getBoundingClientRect().height < 2)
      .map((svg) => svg.closest(".katex")?.querySelector("annotation"))
      .map((note) => note?.textContent || "")
      .map((tex) => tex.slice(0, 80)),
  };
}
"""


@pytest.mark.parametrize("page_path", PAGES, ids=lambda p: p or "home")
def test_page_in_browser(page_path, browser, site, server):
    if not (site / page_path / "index.html").is_file():
        pytest.fail(
            f"{page_path or 'home'}: not in the built site (see "
            "test_every_built_page_is_checked)"
        )
    problems: list[str] = []
    local = urlparse(server).netloc

    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.on(
        "console",
        lambda msg: (
            msg.type == "error"
            and problems.append(
                f"console error: {msg.text} ({msg.location.get('url', '')})"
            )
        ),
    )
    page.on("pageerror", lambda exc: problems.append(f"uncaught exception: {exc}"))
    page.on(
        "requestfailed",
        lambda req: problems.append(f"request failed: {req.url} ({req.failure})"),
    )
    page.on(
        "response",
        lambda resp: (
            resp.status >= 400 and problems.append(f"HTTP {resp.status}: {resp.url}")
        ),
    )
    page.on(
        "request",
        lambda req: (
            urlparse(req.url).scheme in ("http", "https")
            and urlparse(req.url).netloc != local
            and problems.append(f"request outside the site (fails offline): {req.url}")
        ),
    )
    try:
        page.goto(server + page_path, wait_until="load", timeout=PAGE_TIMEOUT_MS)
        try:
            page.wait_for_function(
                "document.documentElement.dataset.mathRendered !== undefined",
                timeout=PAGE_TIMEOUT_MS,
            )
        except Exception:
            problems.append(
                "docs/javascripts/katex-render.js did not finish (no "
                "data-math-rendered)"
            )

        title = page.title().strip()
        if not title:
            problems.append("the page has no <title>")

        broken = page.evaluate(_IMAGES_JS)
        problems += [f"image did not load: {src}" for src in broken]

        math = page.evaluate(_MATH_JS)
        has_math = math["katex"] > 0 or math["unrendered"] or math["leftovers"]
        if has_math and math["katex"] == 0:
            problems.append("the page has math but no .katex element was rendered")
        problems += [f"KaTeX error: {e}" for e in math["errors"]]
        problems += [f"formula not rendered: {t!r}" for t in math["unrendered"]]
        problems += [
            f"unrendered $ math in a notebook cell: {t!r}" for t in math["leftovers"]
        ]
        problems += [
            f"KaTeX SVG (square root?) squashed by CSS in: {t!r}"
            for t in math["flatSvgs"]
        ]
        page.wait_for_load_state("networkidle", timeout=PAGE_TIMEOUT_MS)
    finally:
        context.close()

    if problems:
        pytest.fail(f"page /{page_path}:\n  " + "\n  ".join(problems), pytrace=False)
