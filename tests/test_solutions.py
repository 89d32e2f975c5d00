"""The reference solutions (docs/instructors/solutions/lessonNN_solution.py): every task
of every exercise template done, and shipped only in the instructor site.

For every lesson with an exercise:
(a) the checker passes every property of the lesson on the solution, and every function
    of the exercise is the solution's own: none missing (the course's would stand in),
    imported or subclassed from the course, or a wrapper that calls the course's;
(b) the solution defines exactly the functions and classes of the template, keeps its
    task labels (``Task N.k``) and leaves no task unwritten;
(c) the page instructors/solutions.md includes the file and gives the command that
    checks it.
And for the two builds, without building a site: the student build leaves the
instructor-only pages and everything under an instructor-only folder (the solutions'
.py files) out of its files, navigation and links; the instructor build keeps the pages
and publishes no .py file of the folder (the page shows their code).

The checks run in this process (``isolate=False``), as tests/test_check.py does: the
same properties with the same hypothesis settings as ``diffusion-lessons check``.

    .venv/bin/python -m pytest tests/test_solutions.py -q
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from diffusion_lessons import properties
from diffusion_lessons.check import run_check, template_path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SOLUTIONS = DOCS / "instructors" / "solutions"
PAGE = DOCS / "instructors" / "solutions.md"
LESSONS = properties.lessons()
TASK = re.compile(r"\bTask (\d+\.\d+)\b")


def solution_path(lesson: int) -> Path:
    return SOLUTIONS / f"lesson{lesson:02d}_solution.py"


def _defined(path: Path) -> set[str]:
    """The public functions and classes a file defines at its top level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and not node.name.startswith("_")
    }


def _imported_from_course(path: Path) -> set[str]:
    """Names the file imports from the diffusion_lessons package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").split(".")[0] == "diffusion_lessons"
        for alias in node.names
    }


# ---------------------------------------------------------------------------
# (a) every property passes, on the solution's own code
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_passes_every_property_with_its_own_code(tmp_path, lesson):
    path = solution_path(lesson)
    out = io.StringIO()
    status = run_check(lesson, path, tmp_path / "report.json", out=out, isolate=False)
    text = out.getvalue()
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert status == 0, text
    assert report["error"] is None, text
    assert report["total"] == len(properties.load(lesson).properties) > 0
    assert report["passed"] == report["total"], text
    not_passed = [
        (r["name"], r["status"]) for r in report["results"] if r["status"] != "pass"
    ]
    assert not not_passed, text
    # every function is the solution's own: not the course's, imported, subclassed or
    # wrapped
    exercise = properties.load(lesson)
    assert report["functions"] == dict.fromkeys(exercise.functions, "yours"), text
    assert report["wrapped"] == [], text
    assert all(set(r["functions"].values()) == {"yours"} for r in report["results"]), (
        text
    )
    assert "course's" not in text, text
    assert f"{report['total']} passed, 0 failed, 0 to do" in text


# ---------------------------------------------------------------------------
# (b) the solution is the template, with every task done
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_answers_every_task_of_the_template(lesson):
    template, solution = template_path(lesson), solution_path(lesson)
    assert solution.is_file(), f"no reference solution {solution} for lesson {lesson}"
    # the same functions and classes as the template
    assert _defined(solution) == _defined(template), (
        f"{solution.name} defines {sorted(_defined(solution))}, the template "
        f"{sorted(_defined(template))}"
    )
    # every exercise function is written here, none imported from the course
    functions = set(properties.load(lesson).functions)
    assert functions <= _defined(solution)
    imported = functions & _imported_from_course(solution)
    assert not imported, f"{solution.name} imports {imported} from the course"
    # the template's task labels, and no task left to do
    source = solution.read_text(encoding="utf-8")
    tasks = set(TASK.findall(template.read_text(encoding="utf-8")))
    assert tasks and all(t.startswith(f"{lesson}.") for t in tasks)
    assert set(TASK.findall(source)) == tasks
    assert "NotImplementedError" not in source


def test_every_lesson_has_a_solution_and_nothing_else_is_there():
    expected = {solution_path(n).name for n in LESSONS}
    found = {p.name for p in SOLUTIONS.iterdir() if p.suffix == ".py"}
    assert found == expected


# ---------------------------------------------------------------------------
# (c) the instructors' page shows each file
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("lesson", LESSONS)
def test_the_solutions_page_includes_each_file_and_its_check(lesson):
    page = PAGE.read_text(encoding="utf-8")
    rel = solution_path(lesson).relative_to(REPO).as_posix()
    assert f'--8<-- "{rel}"' in page
    assert f"diffusion-lessons check {lesson} {rel}" in page


# ---------------------------------------------------------------------------
# Only the instructor build has them (the build's hook, without a site build)
# ---------------------------------------------------------------------------


def _reader():
    """A fresh copy of the site's hook docs/hooks/reader.py."""
    spec = importlib.util.spec_from_file_location(
        "_reader_hook_under_test", DOCS / "hooks" / "reader.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for item in nav.values() for p in _nav_pages(item)]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    return []


def _build_files(config_file: str):
    """(config, files, published) as the build of ``config_file`` sees them: the
    config after every plugin's and hook's on_config, the source files after their
    on_files, and of these the ones it writes (pages it renders, files it copies).
    """
    from mkdocs.config import load_config
    from mkdocs.structure.files import get_files

    config = load_config(str(REPO / config_file))
    config = config.plugins.on_config(config)
    files = config.plugins.on_files(get_files(config), config=config)
    published = {f.src_uri for f in files if f.inclusion.is_included()}
    return config, {f.src_uri for f in files}, published


INSTRUCTOR_PAGES = [
    "instructors/answer-key.md",
    "instructors/solutions.md",
    "instructors/exercise-solutions.md",
]


def test_student_build_leaves_out_the_solutions():
    config, files, published = _build_files("mkdocs.yml")
    entries = config["extra"]["instructor_only"]
    assert set(INSTRUCTOR_PAGES) <= set(entries)
    assert "instructors/solutions/" in entries  # the whole folder
    assert not config["extra"]["instructor"]
    # not merely unpublished (exclude_docs leaves out *.py) but gone from the build
    leaked = sorted(
        src
        for src in files
        if src.startswith("instructors/solutions/") or src in INSTRUCTOR_PAGES
    )
    assert not leaked, f"the student build still has {leaked}"
    nav = _nav_pages(config["nav"])
    assert not set(INSTRUCTOR_PAGES) & set(nav)
    assert "instructors/index.md" in nav and "instructors/index.md" in published
    # links to them from other pages become plain text
    hook = _reader()
    hook.on_config(config)
    page = SimpleNamespace(file=SimpleNamespace(src_uri="instructors/index.md"))
    markdown = (
        "See [the solutions](solutions.md), [one file](solutions/lesson01_solution.py),"
        " [worked](exercise-solutions.md) and [grading](grading.md)."
    )
    assert hook.on_page_markdown(markdown, page, config, None) == (
        "See the solutions, one file, worked and [grading](grading.md)."
    )


def test_instructor_build_has_the_pages_and_no_raw_solution_files():
    config, _, published = _build_files("mkdocs-instructor.yml")
    assert config["extra"]["instructor"]
    nav = _nav_pages(config["nav"])
    for src in ("instructors/solutions.md", "instructors/exercise-solutions.md"):
        assert src in nav, f"{src} is not in the instructor site's navigation"
    assert "instructors/solutions.md" in published
    # the page shows the code (--8<--); the .py files themselves are not copied
    raw = sorted(src for src in published if src.startswith("instructors/solutions/"))
    assert not raw, f"the instructor site would publish {raw} as raw files"


def test_the_folder_rule_matches_only_under_the_folder():
    hook = _reader()
    entries = {"instructors/answer-key.md", "instructors/solutions/"}
    assert hook.instructor_only("instructors/solutions/lesson01_solution.py", entries)
    assert hook.instructor_only("instructors/answer-key.md", entries)
    assert not hook.instructor_only("instructors/solutions.md", entries)
    assert not hook.instructor_only("instructors/answer-key.md.bak", entries)
    assert not hook.instructor_only("instructors/index.md", entries)
