"""The course's structure: lessons import only from earlier lessons, and every lesson
runs on its own.
"""

import ast
import importlib
import re
from pathlib import Path

import pytest

from diffusion_lessons import LESSONS

PACKAGE = Path(__file__).resolve().parents[1] / "diffusion_lessons"
LESSON_FILES = sorted(PACKAGE.glob("lesson[0-9][0-9]_*.py"))


def imported_lessons(path: Path) -> set[int]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            found.update(int(m) for m in re.findall(r"lesson(\d\d)_", name))
    return found


@pytest.mark.parametrize("path", LESSON_FILES, ids=lambda p: p.name)
def test_lessons_import_only_from_lower_numbered_lessons(path):
    n = int(path.name[6:8])
    later = {m for m in imported_lessons(path) if m >= n}
    assert not later, (
        f"{path.name} imports from lesson(s) {sorted(later)}; a lesson may only use "
        "earlier lessons."
    )


@pytest.mark.parametrize("path", LESSON_FILES, ids=lambda p: p.name)
def test_lesson_has_docstring_run_and_main(path):
    module = importlib.import_module(f"diffusion_lessons.{path.stem}")
    assert (
        module.__doc__
        and "Chapter:" in module.__doc__
        and "Builds on:" in module.__doc__
    )
    assert callable(module.run) and callable(module.main)


def test_registry_matches_files():
    present = {p.stem for p in LESSON_FILES}
    assert present <= {m for m, _ in LESSONS.values()}


def test_cli_list_and_run(tmp_path, capsys):
    from diffusion_lessons.cli import main, parse_lessons

    main(["list"])
    assert "lesson01_forward_noise" in capsys.readouterr().out
    assert parse_lessons("1-3") == [1, 2, 3] and parse_lessons("2,4") == [2, 4]
    with pytest.raises(SystemExit, match="No lesson"):
        parse_lessons("99")
    main(["run", "2", "--out", str(tmp_path), "--quick"])
    assert (tmp_path / "02_schedules.png").exists()
