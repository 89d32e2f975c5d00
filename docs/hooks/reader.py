"""MkDocs hook: the reader's path through the site, the notebooks' downloads, the two
builds (student and instructor) and readable search previews.

Every rule below applies to every page by its file name, so a new chapter or notebook
gets it without edits:

- **Chapter and notebook pair up by number.** ``lessons/NN-*.md`` and
  ``notebooks/NN-*.py`` belong together. A chapter with a notebook gets a box at its top
  and bottom linking to the notebook and its download; a notebook page gets a bar under
  its title linking to its ``.ipynb`` download, its ``.py`` source and its chapter.
- **The .ipynb download is made at build time** from the jupytext source (never
  committed): ``notebooks/NN-x.py`` gives ``notebooks/NN-x/NN-x.ipynb`` in the site,
  next to the page and the published ``.py``. It has no outputs; running it writes them.
- **Setup cells.** A notebook cell tagged ``setup`` (``# %% tags=["setup"]``) runs when
  the site is built and stays in the download, but is not shown on the page (warning
  filters, backend lines). It is removed after execution, from the HTML, because
  nbconvert's own tag removal runs before execution and would skip the cell.
- **Instructor-only pages.** ``extra.instructor_only`` lists pages (e.g. the answer key)
  that only the instructor build has: ``mkdocs build -f mkdocs-instructor.yml`` sets
  ``extra.instructor: true``. In the default (student) build these pages are left out of
  the files, the navigation and search, and a link to them elsewhere becomes its plain
  text. An entry that ends in ``/`` is a folder: every file under it is left out (the
  reference solutions, ``instructors/solutions/``).
- **Search previews** are text: TeX is turned into readable symbols (``\\bar\\alpha_t``
  becomes ``ᾱ_t``), and the copy button's "Copied!" is dropped, in
  ``search/search_index.json`` after the search plugin wrote it.
"""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path

import jupytext
from bs4 import BeautifulSoup
from mkdocs.structure.files import File
from mkdocs.utils import get_relative_url

CHAPTER = re.compile(r"^lessons/(?P<num>\d{2})-[^/]+\.md$")
NOTEBOOK = re.compile(r"^notebooks/(?P<num>\d{2})-[^/]+\.py$")
SETUP_TAG = "setup"

_state: dict = {"instructor": False, "instructor_only": set()}


# ---------------------------------------------------------------------------
# Student and instructor builds
# ---------------------------------------------------------------------------


def instructor_only(src_uri: str, entries) -> bool:
    """True when the file ``src_uri`` (relative to docs/) is listed in ``entries`` (the
    ``extra.instructor_only`` list) or lies under a listed folder (an entry ending in
    ``/``).
    """
    return any(
        src_uri.startswith(entry) if entry.endswith("/") else src_uri == entry
        for entry in entries
    )


def _without(nav, drop: set[str]):
    """The nav (strings and {title: item} dicts) without the pages in ``drop``."""
    if isinstance(nav, str):
        return None if instructor_only(nav, drop) else nav
    if isinstance(nav, dict):
        kept = {}
        for title, item in nav.items():
            item = _without(item, drop)
            if item not in (None, []):
                kept[title] = item
        return kept or None
    if isinstance(nav, list):
        kept = [
            x for x in (_without(item, drop) for item in nav) if x not in (None, {})
        ]
        return kept
    return nav


def on_config(config, **kwargs):
    extra = config.get("extra") or {}
    _state["instructor"] = bool(extra.get("instructor", False))
    _state["instructor_only"] = set(extra.get("instructor_only", []) or [])
    if not _state["instructor"] and config.get("nav"):
        config["nav"] = _without(config["nav"], _state["instructor_only"])
    return config


def on_files(files, config, **kwargs):
    if not _state["instructor"]:
        for file in list(files):
            if instructor_only(file.src_uri, _state["instructor_only"]):
                files.remove(file)
    # The downloadable .ipynb of every notebook, made from its jupytext source.
    for file in list(files):
        if NOTEBOOK.match(file.src_uri) and file.abs_src_path:
            stem = Path(file.src_uri).stem
            notebook = jupytext.read(file.abs_src_path)
            notebook.metadata.pop(
                "jupytext", None
            )  # a plain notebook, not a paired one
            files.append(
                File.generated(
                    config,
                    f"notebooks/{stem}/{stem}.ipynb",
                    content=jupytext.writes(notebook, fmt="ipynb"),
                )
            )
    return files


MD_LINK = re.compile(
    r"(?<!!)\[(?P<text>(?:[^\[\]]|\[[^\]]*\])*)\]\((?P<target>[^)\s#]*)(?P<anchor>#[^)\s]*)?"
    r"(?:\s+\"[^\"]*\")?\)"
)


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    """In the student build, a link to an instructor-only page becomes its text."""
    if _state["instructor"] or not _state["instructor_only"]:
        return markdown
    here = posixpath.dirname(page.file.src_uri)

    def plain(m: re.Match) -> str:
        target = m.group("target")
        if not target or "://" in target:
            return m.group(0)
        resolved = posixpath.normpath(posixpath.join(here, target))
        hidden = instructor_only(resolved, _state["instructor_only"])
        return m.group("text") if hidden else m.group(0)

    return MD_LINK.sub(plain, markdown)


# ---------------------------------------------------------------------------
# Chapters and notebooks
# ---------------------------------------------------------------------------


def _partner(files, src_uri: str, pattern: re.Pattern, num: str):
    for file in files.documentation_pages():
        m = pattern.match(file.src_uri)
        if m and m.group("num") == num:
            return file
    return None


def _notebook_box(page_file, nb_file, where: str) -> str:
    stem = Path(nb_file.src_uri).stem
    # (a notebook's File is wrapped by mkdocs-jupyter: use its .url, the page's address)
    page_url = get_relative_url(nb_file.url, page_file.url)
    ipynb = posixpath.join(page_url, f"{stem}.ipynb")
    label = (
        "Companion notebook: run every experiment of this chapter yourself."
        if where == "top"
        else "Now run it: the companion notebook repeats this chapter's experiments."
    )
    return (
        f'<div class="nb-box nb-box--{where}">'
        f'<span class="nb-box__label">{label}</span>'
        f'<a class="nb-link-page" href="{page_url}">Open the notebook</a>'
        f'<a class="nb-link-ipynb" href="{ipynb}" download>Download .ipynb</a>'
        "</div>"
    )


def _notebook_bar(page_file, chapter_file, title: str | None) -> str:
    stem = Path(page_file.src_uri).stem
    parts = [
        '<div class="nb-box nb-box--top">',
        '<span class="nb-box__label">This page is a notebook.</span>',
        f'<a class="nb-link-ipynb" href="{stem}.ipynb" download>Download .ipynb</a>',
        f'<a class="nb-link-py" href="{stem}.py" download>Jupytext source (.py)</a>',
    ]
    if chapter_file is not None:
        chapter_url = get_relative_url(chapter_file.url, page_file.url)
        parts.append(
            f'<a class="nb-link-chapter" href="{chapter_url}">'
            f"Read the chapter{': ' + title if title else ''}</a>"
        )
    parts.append("</div>")
    return "".join(parts)


def _insert_after_h1(soup: BeautifulSoup, html: str) -> None:
    box = BeautifulSoup(html, "html.parser")
    h1 = soup.find("h1")
    if h1 is None:
        soup.insert(0, box)
        return
    # In a notebook the h1 sits inside its Markdown cell: put the bar after that cell.
    anchor = h1.find_parent("div", class_="jp-Cell") or h1
    anchor.insert_after(box)


def on_page_content(html: str, page, config, files, **kwargs) -> str:
    src = page.file.src_uri
    m_chapter, m_notebook = CHAPTER.match(src), NOTEBOOK.match(src)
    if not (m_chapter or m_notebook):
        return html
    soup = BeautifulSoup(html, "html.parser")
    if m_chapter:
        nb = _partner(files, src, NOTEBOOK, m_chapter.group("num"))
        if nb is None:
            return html
        _insert_after_h1(soup, _notebook_box(page.file, nb, "top"))
        soup.append(
            BeautifulSoup(_notebook_box(page.file, nb, "bottom"), "html.parser")
        )
        return str(soup)
    for cell in soup.select(f"div.jp-Cell.celltag_{SETUP_TAG}"):
        cell.decompose()
    chapter = _partner(files, src, CHAPTER, m_notebook.group("num"))
    title = chapter.page.title if chapter is not None and chapter.page else None
    _insert_after_h1(soup, _notebook_bar(page.file, chapter, title))
    return str(soup)


# ---------------------------------------------------------------------------
# Search previews
# ---------------------------------------------------------------------------

_GREEK = (
    "alpha α beta β gamma γ delta δ zeta ζ eta η theta θ iota ι kappa κ lambda λ mu μ "
    "nu ν xi ξ pi π rho ρ sigma σ tau τ upsilon υ phi ϕ chi χ psi ψ omega ω"
).split()
_SYMBOLS = {
    **dict(zip(_GREEK[::2], _GREEK[1::2])),
    "varepsilon": "ε",
    "epsilon": "ϵ",
    "varphi": "φ",
    "Gamma": "Γ",
    "Delta": "Δ",
    "Theta": "Θ",
    "Lambda": "Λ",
    "Pi": "Π",
    "Sigma": "Σ",
    "Phi": "Φ",
    "Psi": "Ψ",
    "Omega": "Ω",
    "nabla": "∇",
    "partial": "∂",
    "sum": "∑",
    "prod": "∏",
    "int": "∫",
    "infty": "∞",
    "sim": "~",
    "approx": "≈",
    "le": "≤",
    "leq": "≤",
    "ge": "≥",
    "geq": "≥",
    "ne": "≠",
    "neq": "≠",
    "ll": "≪",
    "gg": "≫",
    "cdot": "·",
    "times": "×",
    "mid": "|",
    "in": "∈",
    "to": "→",
    "rightarrow": "→",
    "Rightarrow": "⇒",
    "leftarrow": "←",
    "mapsto": "↦",
    "pm": "±",
    "ldots": "…",
    "dots": "…",
    "cdots": "⋯",
    "quad": " ",
    "qquad": " ",
    "langle": "⟨",
    "rangle": "⟩",
    "propto": "∝",
    "equiv": "≡",
    "odot": "⊙",
    "top": "⊤",
    "prime": "′",
    "lVert": "‖",
    "rVert": "‖",
    "Vert": "‖",
    "lvert": "|",
    "rvert": "|",
    "vert": "|",
}
_ACCENTS = {
    "bar": "\u0304",
    "overline": "\u0304",
    "hat": "\u0302",
    "widehat": "\u0302",
    "tilde": "\u0303",
    "widetilde": "\u0303",
    "dot": "\u0307",
    "vec": "\u20d7",
}
_FONTS = (
    "text|textrm|textbf|textit|mathrm|mathbf|mathit|mathcal|mathbb|mathsf|"
    "operatorname|boldsymbol|bm|emph"
)


def _group(text: str) -> str:
    text = text.strip()
    return text if len(text) <= 1 or re.fullmatch(r"\w+", text) else f"({text})"


def _accent(m: re.Match) -> str:
    body = m.group(2)
    if body.startswith("{"):
        body = body[1:-1]
    if body.startswith("\\"):
        body = _SYMBOLS.get(body[1:], body[1:])
    return body + _ACCENTS[m.group(1)] if len(body) == 1 else body


def tex_to_text(tex: str) -> str:
    """Readable plain text for a TeX formula (search previews): symbols for commands,
    ``a/b`` for fractions, ``x_(t-1)`` for long subscripts, no braces or spacing.
    """
    s = tex.replace(r"\{", "\x00").replace(r"\}", "\x01").replace(r"\|", "‖")
    s = re.sub(r"\\(?:begin|end)\{[^{}]*\}(?:\{[^{}]*\})?", " ", s)
    s = re.sub(r"\\tag\*?\{([^{}]*)\}", r"   (\1)", s)
    s = re.sub(r"\\(?:left|right|[bB]igg?[lr]?)(?![A-Za-z])\.?", "", s)
    s = s.replace("\\\\", "; ").replace("&", "")
    s = re.sub(r"\\!", "", s)
    s = re.sub(r"\\[,;:> ]", " ", s)
    s = re.sub(r"\\(?:displaystyle|textstyle|limits|nolimits)(?![A-Za-z])", "", s)
    for _ in range(20):  # innermost groups first
        before = s
        s = re.sub(
            r"\\d?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}",
            lambda m: f"{_group(m.group(1))}/{_group(m.group(2))}",
            s,
        )
        s = re.sub(r"\\sqrt\s*\{([^{}]*)\}", lambda m: "√" + _group(m.group(1)), s)
        s = re.sub(
            r"\\(" + "|".join(_ACCENTS) + r")(?![A-Za-z])\s*"
            r"(\{[^{}]*\}|\\[A-Za-z]+|[A-Za-z0-9])",
            _accent,
            s,
        )
        s = re.sub(r"\\(?:" + _FONTS + r")\s*\{([^{}]*)\}", r"\1", s)
        s = re.sub(r"([_^])\{([^{}]*)\}", lambda m: m.group(1) + _group(m.group(2)), s)
        # a bare group: not the argument of a command (\frac{..}{..}) or of _ and ^
        s = re.sub(r"(?<![A-Za-z}_^])\{([^{}]*)\}", r"\1", s)
        if s == before:
            break
    s = re.sub(r"\\([A-Za-z]+)", lambda m: _SYMBOLS.get(m.group(1), m.group(1)), s)
    s = s.replace("\x00", "{").replace("\x01", "}").replace("\\", "")
    return re.sub(r"\s+", " ", s).strip()


_MATH = re.compile(
    r"\\\((?P<inline>.+?)\\\)"
    r"|\\\[(?P<display>.+?)\\\]"
    r"|\$\$(?P<dd>.+?)\$\$"
    r"|(?<![\\$\w])\$(?P<d>[^$\n]{1,300}?)\$(?!\w)",
    re.S,
)


def readable(text: str) -> str:
    """Search-preview text: formulas as plain symbols, no notebook prompt or copy-button
    text.
    """

    def math(m: re.Match) -> str:
        tex = next(g for g in m.groups() if g is not None)
        if m.group("d") is not None and not re.search(r"[\\_^{]", tex):
            return m.group(0)  # "$5 and $6": prices, not math
        return tex_to_text(tex)

    text = _MATH.sub(math, text)
    text = re.sub(r"\b(?:In|Out)\s*\[\s*\d*\s*\]:\s*", "", text)
    return re.sub(r"\s*\bCopied!\s*", " ", text)


def on_post_build(config, **kwargs):
    index = Path(config["site_dir"]) / "search" / "search_index.json"
    if not index.is_file():
        return
    data = json.loads(index.read_text(encoding="utf-8"))
    for doc in data.get("docs", []):
        doc["title"] = readable(doc.get("title", ""))
        doc["text"] = readable(doc.get("text", ""))
    index.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
