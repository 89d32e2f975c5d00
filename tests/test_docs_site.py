"""The documentation site builds with --strict, and every page works and reads well in a
real browser, on a laptop (1280 px) and on a phone (390 px).

1. `mkdocs build --strict` of both sites into temporary directories (once per module,
   the two builds side by side): the student site (mkdocs.yml, no answer key) and the
   instructor site (mkdocs-instructor.yml). Broken links, missing pages, failing
   notebook cells and unknown `{{ source(...) }}` references all fail it.
2. Chromium (Debian's /usr/bin/chromium, driven by Playwright; never `playwright
   install`) loads
   every HTML page of the built site from a local server and checks that: the page has a
   title, every image loaded, math was rendered by the vendored KaTeX without errors,
   nothing was logged to the console as an error, no request failed or returned >= 400,
   and nothing was fetched from outside the local server (the site must work offline).
3. Layout, measured (not screenshots), at 1280, 768 and 390 px: an equation number
   never intersects its equation, and a display equation that does not fit scrolls in
   its own box with a visible cue; at 1280 no code listing on a chapter page scrolls
   sideways and the copy button covers no code; no page is wider than a phone; every
   figure is shown no larger than its PNG (no upscaling), and its smallest text
   (``MinFontPx``, written by ``plotting.savefig``) and digit tiles (``DigitTilePx``)
   come out at >= 10 px and >= 24 px at 1280; the animation is >= 200 px high;
   identifiers in tables never break.
4. Notebooks: each page links to its .ipynb (made at build time), its .py and its
   chapter, and each chapter to its notebook, at top and bottom (the links are fetched);
   setup cells are hidden; outputs never wrap inside a number; no In [n]: gutter.
5. The student site has no answer key (files, links, search); the instructor site has
   it.
   Search previews contain no TeX and no notebook gutter or copy-button text.

The browser test is skipped only when /usr/bin/chromium is missing and the CI variable
is unset; under CI it fails instead.

    .venv/bin/python -m pytest tests/test_docs_site.py -q
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

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
CONFIGS = {"student": "mkdocs.yml", "instructor": "mkdocs-instructor.yml"}
LAPTOP, TABLET, PHONE = 1280, 768, 390
MIN_TEXT_PX = 10.0  # the body's small print at 1280 px
MIN_TILE_PX = 24.0  # a digit tile that can be read
MIN_ANIMATION_PX = 200
COURSE_FONT_PX = (
    10 * 100 / 72
)  # plotting.py's base font (10 pt at 100 dpi), untagged PNGs


def _mkdocs_config() -> dict:
    """mkdocs.yml, with its YAML tags (!relative) read as plain values."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load((REPO / "mkdocs.yml").read_text(), Loader=Loader)


# the instructor-only pages; an entry ending in "/" is a folder of files, not a page
# (tests/test_solutions.py checks that the student build leaves such folders out)
INSTRUCTOR_ONLY = sorted(
    p for p in _mkdocs_config()["extra"]["instructor_only"] if not p.endswith("/")
)


# ---------------------------------------------------------------------------
# Which pages the site has
# ---------------------------------------------------------------------------


def _site_path(src: str) -> str:
    """'instructors/answer-key.md' -> 'instructors/answer-key/' (use_directory_urls)."""
    rel = Path(src).with_suffix("")
    if rel.name in ("index", "README"):
        rel = rel.parent
    return "" if str(rel) == "." else rel.as_posix() + "/"


def _expected_pages(instructor: bool = False) -> list[str]:
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
    if not instructor:
        pages -= {_site_path(src) for src in INSTRUCTOR_ONLY}
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
INSTRUCTOR_PAGES = sorted(set(_expected_pages(instructor=True)) - set(PAGES)) + [
    p for p in PAGES if p.startswith("instructors/")
]


# ---------------------------------------------------------------------------
# Fixtures: build once, serve once, one browser
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> dict[str, Path]:
    """Both sites, built side by side (each executes the notebooks)."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", NO_MKDOCS_2_WARNING="1", MPLBACKEND="Agg")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    out, procs = {}, {}
    for name, config in CONFIGS.items():
        out[name] = tmp_path_factory.mktemp(f"site-{name}")
        log = open(out[name].parent / f"build-{name}.log", "w+")  # noqa: SIM115
        procs[name] = (
            subprocess.Popen(
                [sys.executable, "-m", "mkdocs", "build", "--strict"]
                + ["-f", config, "-d", str(out[name])],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            ),
            log,
        )
    failures = []
    for name, (proc, log) in procs.items():
        try:
            code = proc.wait(timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "timeout"
        log.seek(0)
        if code != 0:
            failures.append(
                f"mkdocs build --strict -f {CONFIGS[name]} failed (exit {code}).\n"
                f"{log.read()[-20000:]}"
            )
        log.close()
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
    return out


@pytest.fixture(scope="module")
def site(sites) -> Path:
    return sites["student"]


@pytest.fixture(scope="module")
def instructor_site(sites) -> Path:
    return sites["instructor"]


def _serve(directory: Path):
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server(site):
    yield from _serve(site)


@pytest.fixture(scope="module")
def instructor_server(instructor_site):
    yield from _serve(instructor_site)


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


# Layout at the current width. Rectangles are compared as the reader sees them: the part
# of an equation hidden in its scroll box does not count.
_LAYOUT_JS = """
() => {
  const rect = (el) => el.getBoundingClientRect();
  const meet = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 &&
                         a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  const clip = (a, b) => ({
    left: Math.max(a.left, b.left), right: Math.min(a.right, b.right),
    top: Math.max(a.top, b.top), bottom: Math.min(a.bottom, b.bottom) });
  const tex = (el) => (el.querySelector("annotation")?.textContent || el.textContent
                       || "").trim().slice(0, 60);
  const numbers = [], cues = [];
  document.querySelectorAll(".katex-display").forEach((display) => {
    const box = rect(display);
    const tags = Array.from(display.querySelectorAll(".katex-tag"));
    const row = display.closest(".eq-row");
    if (row) tags.push(...row.querySelectorAll(".eq-number"));
    const parts = Array.from(display.querySelectorAll(".katex-html > .katex-base"))
      .map((b) => clip(rect(b), box));
    for (const tag of tags) {
      const t = rect(tag);
      const name = "number " + tag.textContent.trim();
      if (parts.some((p) => p.right > p.left && meet(t, p)))
        numbers.push(name + " drawn over " + tex(display));
      else if (t.right > window.innerWidth + 1 || t.top > box.bottom ||
               t.bottom < box.top)
        numbers.push(name + " not beside " + tex(display));
    }
    if (display.scrollWidth > display.clientWidth + 1) {
      const style = getComputedStyle(display);
      if (!["auto", "scroll"].includes(style.overflowX) ||
          !style.backgroundImage.includes("gradient"))
        cues.push(tex(display));
    }
  });
  const article = document.querySelector("article") || document.body;
  const wide = Array.from(article.querySelectorAll("pre"))
    .filter((pre) => !pre.closest(".jp-OutputArea") &&
                     pre.scrollWidth > pre.clientWidth + 1)
    .map((pre) => (pre.scrollWidth - pre.clientWidth) + " px hidden: " +
                  pre.textContent.trim().split("\\n")[0].slice(0, 60));
  const covered = [];
  article.querySelectorAll("pre").forEach((pre) => {
    const button = pre.querySelector(".md-clipboard");
    const code = pre.querySelector("code");
    if (!button || !code || !button.offsetParent) return;
    const b = rect(button);
    const range = document.createRange();
    range.selectNodeContents(code);
    if (Array.from(range.getClientRects()).some((r) => r.width > 0 && meet(r, b)))
      covered.push(code.textContent.trim().split("\\n")[0].slice(0, 60));
  });
  const images = Array.from(article.querySelectorAll("img")).map((img) => ({
    src: new URL(img.currentSrc || img.src, location.href).pathname,
    natural: img.naturalWidth, width: rect(img).width, height: rect(img).height }));
  const brokenIds = Array.from(document.querySelectorAll("article table code"))
    .filter((c) => c.getClientRects().length > 1).map((c) => c.textContent);
  const prompts = Array.from(
      document.querySelectorAll(".jp-InputPrompt, .jp-OutputPrompt"))
    .filter((p) => rect(p).width > 0).length;
  const wrapping = Array.from(document.querySelectorAll(".jp-OutputArea-output pre"))
    .filter((pre) => getComputedStyle(pre).whiteSpace !== "pre").length;
  return { numbers, cues, wide, covered, images, brokenIds, prompts, wrapping,
           pageWidth: document.documentElement.scrollWidth,
           viewport: window.innerWidth };
}
"""

# Links the site's hook puts on chapter and notebook pages; each is fetched.
_LINKS_JS = """
async () => {
  const links = Array.from(document.querySelectorAll(".nb-box a"));
  const out = [];
  for (const a of links) {
    const response = await fetch(a.href);
    let kind = response.headers.get("content-type") || "";
    if (a.classList.contains("nb-link-ipynb") && response.ok) {
      try { kind = "cells:" + (await response.json()).cells.length; }
      catch (e) { kind = "not a notebook"; }
    }
    out.push({ cls: a.className, box: a.closest(".nb-box").className, href: a.href,
               status: response.status, kind });
  }
  return { links: out, setupCells: document.querySelectorAll(".celltag_setup").length };
}
"""


def _figure_problems(site: Path, images: list[dict]) -> list[str]:
    """Figures at 1280 px: no upscaling, text >= 10 px, digit tiles >= 24 px, the
    animation >= 200 px high.
    """
    from PIL import Image

    problems = []
    for img in images:
        name = img["src"].rsplit("/", 1)[-1]
        if img["natural"] + 1 < img["width"]:
            problems.append(
                f"figure {name} upscaled: {img['natural']} px wide, shown at "
                f"{img['width']:.0f} px"
            )
        if not img["src"].startswith("/") or not img["natural"]:
            continue  # an image inlined in a notebook's output (data: URL)
        file = site / img["src"].lstrip("/")
        if not file.is_file():
            continue
        scale = img["width"] / img["natural"]
        with Image.open(file) as pic:
            info = dict(pic.info)
            info.update(getattr(pic, "text", {}) or {})
        comment = info.get("comment", b"")
        comment = comment.decode() if isinstance(comment, bytes) else str(comment)
        if m := re.search(r"DigitTilePx=([\d.]+)", comment):
            info["DigitTilePx"] = m.group(1)
        if name.endswith(".gif"):
            if img["height"] < MIN_ANIMATION_PX:
                problems.append(
                    f"animation {name} shown {img['height']:.0f} px high "
                    f"(< {MIN_ANIMATION_PX})"
                )
        else:
            text_px = float(info.get("MinFontPx", COURSE_FONT_PX)) * scale
            if text_px < MIN_TEXT_PX:
                problems.append(
                    f"figure {name}: smallest text {text_px:.1f} px at 1280 "
                    f"(< {MIN_TEXT_PX})"
                )
        if "DigitTilePx" in info:
            tile_px = float(info["DigitTilePx"]) * scale
            if tile_px < MIN_TILE_PX:
                problems.append(
                    f"figure {name}: digit tiles {tile_px:.1f} px at 1280 "
                    f"(< {MIN_TILE_PX})"
                )
    return problems


def _layout_problems(layout: dict, width: int, chapter: bool) -> list[str]:
    at = f"at {width} px"
    problems = [f"{p} {at}" for p in layout["numbers"]]
    problems += [f"equation scrolls without a cue {at}: {t!r}" for t in layout["cues"]]
    problems += [
        f"identifier broken across lines {at}: {t!r}" for t in layout["brokenIds"]
    ]
    if layout["pageWidth"] > layout["viewport"] + 1:
        problems.append(f"page is {layout['pageWidth']} px wide {at}")
    if layout["prompts"]:
        problems.append(f"{layout['prompts']} notebook In/Out prompts shown {at}")
    if layout["wrapping"]:
        problems.append(f"{layout['wrapping']} notebook outputs wrap lines {at}")
    if width == LAPTOP and chapter:
        problems += [f"code listing scrolls sideways {at}: {t}" for t in layout["wide"]]
        problems += [f"copy button covers code {at}: {t!r}" for t in layout["covered"]]
    return problems


def _link_problems(page_path: str, found: dict) -> list[str]:
    problems = []
    links = found["links"]
    for link in links:
        if link["status"] != 200 or link["kind"] == "not a notebook":
            problems.append(f"link {link['href']} -> {link['status']} {link['kind']}")
    classes = {(link["box"].split()[-1], link["cls"]) for link in links}
    if page_path.startswith("notebooks/"):
        for cls in ("nb-link-ipynb", "nb-link-py", "nb-link-chapter"):
            if ("nb-box--top", cls) not in classes:
                problems.append(f"notebook page has no {cls} link at its top")
        if found["setupCells"]:
            problems.append(f"{found['setupCells']} setup cells shown")
    number = re.match(r"lessons/(\d\d)-", page_path)
    if number and list((DOCS / "notebooks").glob(f"{number.group(1)}-*.py")):
        for where in ("nb-box--top", "nb-box--bottom"):
            for cls in ("nb-link-page", "nb-link-ipynb"):
                if (where, cls) not in classes:
                    problems.append(f"chapter has no {cls} link in its {where}")
    return problems


def _check_page(page_path: str, browser, site: Path, server: str) -> list[str]:
    if not (site / page_path / "index.html").is_file():
        return ["not in the built site (see test_every_built_page_is_checked)"]
    problems: list[str] = []
    local = urlparse(server).netloc

    context = browser.new_context(viewport={"width": LAPTOP, "height": 900})
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
    chapter = page_path.startswith("lessons/")
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

        layout = page.evaluate(_LAYOUT_JS)
        problems += _layout_problems(layout, LAPTOP, chapter)
        problems += _figure_problems(site, layout["images"])
        problems += _link_problems(page_path, page.evaluate(_LINKS_JS))
        for width in (TABLET, PHONE):
            page.set_viewport_size({"width": width, "height": 900})
            page.wait_for_timeout(50)
            problems += _layout_problems(page.evaluate(_LAYOUT_JS), width, chapter)
        page.wait_for_load_state("networkidle", timeout=PAGE_TIMEOUT_MS)
    finally:
        context.close()
    return problems


@pytest.mark.parametrize("page_path", PAGES, ids=lambda p: p or "home")
def test_page_in_browser(page_path, browser, site, server):
    problems = _check_page(page_path, browser, site, server)
    if problems:
        pytest.fail(f"page /{page_path}:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.mark.parametrize("page_path", INSTRUCTOR_PAGES)
def test_instructor_page_in_browser(
    page_path, browser, instructor_site, instructor_server
):
    """The pages that differ in the instructor site (the answer key, and the guide whose
    links to it are live there) pass the same checks.
    """
    problems = _check_page(page_path, browser, instructor_site, instructor_server)
    if problems:
        pytest.fail(
            f"instructor site, page /{page_path}:\n  " + "\n  ".join(problems),
            pytrace=False,
        )


def test_student_site_has_no_answer_key(site, instructor_site):
    for src in INSTRUCTOR_ONLY:
        path = _site_path(src)
        assert (instructor_site / path / "index.html").is_file(), path
        assert not (site / path).exists(), f"student site publishes {path}"
        link = re.compile(r'href="[^"]*' + re.escape(Path(src).stem) + "/")
        for html in site.rglob("*.html"):
            text = html.read_text(encoding="utf-8")
            assert not link.search(text), f"{html} links to {path}"
        for name in ("search/search_index.json", "sitemap.xml"):
            assert path not in (site / name).read_text(encoding="utf-8"), name
    guide = (instructor_site / "instructors" / "index.html").read_text(encoding="utf-8")
    # the instructor guide's links stay live there
    assert re.search(r'href="(\.\./)?answer-key/', guide)


# TeX that a reader should never see in a search preview.
_TEX = re.compile(
    r"\\[(\[]|\\\\[)\]]|\$\$|\\(?:frac|bar|hat|tilde|alpha|beta|epsilon|theta|sigma|"
    r"mathcal|mathbf|sqrt|mid|sim|tag|begin|end|operatorname|text)\b"
)


def test_search_previews_are_readable(site):
    index = json.loads((site / "search" / "search_index.json").read_text("utf-8"))
    problems = []
    for doc in index["docs"]:
        for field in ("title", "text"):
            text = doc.get(field, "")
            if m := _TEX.search(text):
                problems.append(f"TeX in {doc['location']} {field}: ...{m.group(0)}...")
            if re.search(r"\bIn\s*\[\s*\d*\s*\]:|Copied!", text):
                problems.append(f"notebook gutter text in {doc['location']} {field}")
    assert len(index["docs"]) > 100
    assert not problems, "\n".join(problems[:30]) + f"\n({len(problems)} in all)"


def test_notebook_downloads_are_notebooks(site):
    """The .ipynb made at build time from each jupytext source holds all its cells,
    setup cells included.
    """
    import jupytext

    for src in sorted((DOCS / "notebooks").glob("*.py")):
        made = site / "notebooks" / src.stem / f"{src.stem}.ipynb"
        assert made.is_file(), made
        notebook = json.loads(made.read_text(encoding="utf-8"))
        assert len(notebook["cells"]) == len(jupytext.read(src).cells)
        assert not (DOCS / "notebooks" / f"{src.stem}.ipynb").exists()  # not committed
