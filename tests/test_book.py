"""Editorial rules of the book, checked on the Markdown sources (no site build needed).

1. Equation numbers run in reading order: in every chapter the numbers of its
   ``\\tag{N.M}`` equations appear in increasing order (``5.2 < 5.2a < 5.2b < 5.3``),
   and each belongs to its own chapter. Every "eq. N.M" / "eqs. (N.M)" reference on a
   page, in a notebook or in a lesson module names an equation that exists.
2. The book speaks in its own voice: no page or notebook mentions documents a reader
   does not have ("learner's report", "seed notebook", "seed report", "issue report",
   "toolchain notes"), and "session" appears only in the instructor guide, where it
   means a class meeting.
3. No chapter sprawls: the always-visible part of a chapter, that is every Markdown line
   outside collapsible ``??? note`` blocks, blank lines included, stays within
   ``MAX_VISIBLE_LINES``. At 1280 px a screen shows about 30 lines of the chapter text
   once figures and code are counted, so 450 Markdown lines is about 15 screens. A
   ``{{ source(...) }}`` line counts as one line although the site shows the code it
   names; the limit leaves room for that.
4. No measured time is retyped: outside fenced code, inline code and ``{{ value() }}``
   macros, no page states a time with a decimal point ("8.4 s", "0.9 seconds",
   "6.8 minutes"), the form a measurement takes. Round budgets and defaults ("about 10
   minutes", "60 s by default") are design, not measurements, and stay as words. A
   measured time comes from a generated file through ``value()``.

    .venv/bin/python -m pytest tests/test_book.py -q
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
CHAPTERS = sorted((DOCS / "lessons").glob("*.md"))
NOTEBOOKS = sorted((DOCS / "notebooks").glob("*.py"))
PAGES = sorted(p for p in DOCS.rglob("*.md") if "javascripts" not in p.parts)
MODULES = sorted((REPO / "diffusion_lessons").glob("lesson*.py"))

#: The most always-visible Markdown lines a chapter may have (about 15 screens).
MAX_VISIBLE_LINES = 450
#: Chapters allowed more for now, each with its limit and the reason. Remove an entry as
#: soon as the chapter fits; the test fails if a listed chapter already fits, so that an
#: exception cannot outlive its reason.
LONGER_FOR_NOW: dict[str, tuple[int, str]] = {}

FORBIDDEN = [
    "learner's report",
    "learner’s report",
    "seed notebook",
    "seed report",
    "issue report",
    "toolchain notes",
]
SESSION = re.compile(r"\bsessions?\b", re.IGNORECASE)

TAG = re.compile(r"\\tag\{(\d+)\.(\d+)([a-z]?)\}")
NUM = r"\d+\.\d+[a-z]?(?![\d.])"
# "eq. 3.1", "eqs. (3.2)–(3.3)", "eq. (5.2, 5.3)", "Eqs. 7.3-7.4", "eq. (4.6) and (4.5)"
EQ_REF = re.compile(
    r"\b[Ee]qs?\.\s*\(?(" + NUM + r"(?:\)?\s*(?:[–-]|,|and|to)\s*\(?" + NUM + r")*)"
)


def _key(num: str) -> tuple[int, int, str]:
    m = re.fullmatch(r"(\d+)\.(\d+)([a-z]?)", num)
    assert m, num
    return int(m.group(1)), int(m.group(2)), m.group(3)


def _all_tags() -> set[str]:
    return {
        f"{a}.{b}{c}" for page in CHAPTERS for a, b, c in TAG.findall(page.read_text())
    }


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# ---------------------------------------------------------------------------
# 1. Equation numbers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_equation_numbers_appear_in_reading_order(chapter):
    chapter_number = int(chapter.name[:2])
    tags = [(int(a), int(b), c) for a, b, c in TAG.findall(chapter.read_text())]
    assert all(a == chapter_number for a, _, _ in tags), (
        f"{_rel(chapter)}: an equation is numbered for another chapter: {tags}"
    )
    assert len(set(tags)) == len(tags), f"{_rel(chapter)}: a number is used twice"
    out_of_order = [
        f"{a}.{b}{c} after {p}.{q}{r}"
        for (p, q, r), (a, b, c) in zip(tags, tags[1:])
        if (a, b, c) <= (p, q, r)
    ]
    assert not out_of_order, (
        f"{_rel(chapter)}: equation numbers out of reading order: {out_of_order}"
    )


def test_the_order_check_catches_a_swap():
    """The key used above orders sub-numbers after their parent and before the next."""
    assert sorted(["5.3", "5.2b", "5.2", "5.2a", "5.10"], key=_key) == [
        "5.2",
        "5.2a",
        "5.2b",
        "5.3",
        "5.10",
    ]


@pytest.mark.parametrize(
    "path", PAGES + NOTEBOOKS + MODULES, ids=lambda p: _rel(p).replace("/", ":")
)
def test_equation_references_name_an_existing_equation(path):
    tags = _all_tags()
    dangling = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        for group in EQ_REF.findall(line):
            for num in re.findall(NUM, group):
                if num not in tags:
                    dangling.append(f"line {lineno}: eq. {num}")
    assert not dangling, f"{_rel(path)} refers to equations no chapter has: {dangling}"


# ---------------------------------------------------------------------------
# 2. The book's own voice
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES + NOTEBOOKS, ids=lambda p: _rel(p))
def test_no_page_mentions_documents_the_reader_does_not_have(path):
    text = path.read_text()
    found = [
        f"line {text[: m.start()].count(chr(10)) + 1}: {m.group(0)!r}"
        for phrase in FORBIDDEN
        for m in re.finditer(re.escape(phrase), text, re.IGNORECASE)
    ]
    if "instructors" not in path.relative_to(DOCS).parts:
        found += [
            f"line {text[: m.start()].count(chr(10)) + 1}: {m.group(0)!r}"
            for m in SESSION.finditer(text)
        ]
    assert not found, (
        f"{_rel(path)} mentions what a reader cannot follow; say it in the course's "
        f"own words: {found}"
    )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_lesson_module_mentions_documents_the_reader_does_not_have(path):
    text = path.read_text().lower()
    found = [phrase for phrase in FORBIDDEN if phrase in text]
    assert not found, f"{_rel(path)} mentions {found}"


def test_the_voice_check_would_catch_a_mention(tmp_path):
    page = tmp_path / "x.md"
    page.write_text("As the Seed Report says, one session was enough.\n")
    text = page.read_text()
    assert any(re.search(re.escape(p), text, re.IGNORECASE) for p in FORBIDDEN)
    assert SESSION.search(text)


# ---------------------------------------------------------------------------
# 3. Length
# ---------------------------------------------------------------------------


def visible_lines(markdown: str) -> list[str]:
    """The lines of a page a reader sees without opening anything: every line except
    the body of a collapsible block (``??? note "title"``: the title line stays
    visible, the body, indented deeper than the ``???``, does not).
    """
    out: list[str] = []
    fold_indent: int | None = None
    for line in markdown.splitlines():
        indent = len(line) - len(line.lstrip())
        if fold_indent is not None:
            if not line.strip() or indent > fold_indent:
                continue
            fold_indent = None
        m = re.match(r"^(\s*)\?\?\?\+?\s", line)
        if m:
            fold_indent = len(m.group(1))
        out.append(line)
    return out


def test_visible_lines_skips_only_the_body_of_a_fold():
    page = 'a\n\n??? note "More"\n\n    hidden\n\n    hidden too\n\nb\n'
    assert visible_lines(page) == ["a", "", '??? note "More"', "b"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_fits_about_fifteen_screens(chapter):
    n = len(visible_lines(chapter.read_text()))
    limit, reason = LONGER_FOR_NOW.get(chapter.stem, (MAX_VISIBLE_LINES, ""))
    assert n <= limit, (
        f"{_rel(chapter)} has {n} always-visible lines (limit {limit}): "
        'move derivations, option tables or measurement details into ??? note "..." '
        "blocks, link to a table instead of repeating it, or shorten captions"
    )
    if reason:
        assert n > MAX_VISIBLE_LINES, (
            f"{_rel(chapter)} now fits in {MAX_VISIBLE_LINES} lines: remove it from "
            "LONGER_FOR_NOW"
        )


def test_chapter08_per_digit_table_quotes_the_evaluation_file():
    """The per-digit table beside figure 8.2 takes every number through value(), digit
    by digit: the real-digit columns from lesson 08's run (docs/figures/08_run.json),
    the generated-digit columns from the 1,000-sample evaluation
    (docs/figures/07_evaluate_w0.json) that figure 8.2 is drawn from."""
    text = (DOCS / "lessons" / "08-clip.md").read_text()
    ref = r'\{\{ value\("figures/%s\.json", "%s\.(\d)", "[^"]*"\) \}\}'
    bold = r"(?:\*\*)?"
    rows = re.findall(
        r"^\| (\d) \| "
        + bold
        + ref % ("08_run", "clip_real")
        + bold
        + r" \| "
        + bold
        + ref % ("08_run", "clip_score_real")
        + bold
        + r" \| "
        + ref % ("07_evaluate_w0", "clip_per_class")
        + r" \| "
        + ref % ("07_evaluate_w0", "per_class")
        + r" \|$",
        text,
        re.M,
    )
    assert len(rows) == 10, "the per-digit CLIP table of section 8.4 was not found"
    assert all(len(set(row)) == 1 for row in rows), rows


# ---------------------------------------------------------------------------
# 4. Measured times come from generated files
# ---------------------------------------------------------------------------

MEASURED_TIME = re.compile(
    r"(?<![\w.])\d+\.\d+\s*(?:s|sec|seconds?|min|minutes?|ms|hours?)\b"
)


def retyped_times(text: str) -> list[str]:
    """Decimal times outside fences, inline code and value() macros ('line N: ...')."""
    found, fence = [], None
    for i, line in enumerate(text.split("\n"), 1):
        m = re.match(r"^\s*(`{3,}|~{3,})", line)
        if m:
            fence = None if fence and m.group(1)[0] == fence else m.group(1)[0]
            continue
        if fence:
            continue
        clean = re.sub(r"\{\{.*?\}\}|`[^`]*`", "", line)
        found += [f"line {i}: {t.group(0)!r}" for t in MEASURED_TIME.finditer(clean)]
    return found


# the generated files under docs/figures are where measured times belong
WRITTEN_PAGES = [p for p in PAGES if "figures" not in p.relative_to(DOCS).parts]


@pytest.mark.parametrize("path", WRITTEN_PAGES, ids=lambda p: _rel(p))
def test_no_page_retypes_a_measured_time(path):
    found = retyped_times(path.read_text())
    assert not found, (
        f"{_rel(path)} retypes measured times {found}; quote them from the generated "
        'file with {{ value("figures/FILE.json", "key", ".1f") }} instead'
    )


def test_the_time_check_catches_a_retyped_time():
    page = "Run 1 takes 8.4 s here.\n```\n0.9 s in code is fine\n```\n"
    assert retyped_times(page) == ["line 1: '8.4 s'"]
    assert retyped_times('{{ value("f.json", "t", ".1f") }} s, about 10 minutes') == []
