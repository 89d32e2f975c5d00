"""The properties of the exercises: one module per lesson, one source of truth.

A **property** is a statement that must hold for every input, for example "q_sample
with eps = 0 is sqrt(alpha_bar_t) x0". Each is a function ``fn(impl)`` that reads the
functions it checks from the namespace ``impl`` and raises AssertionError, with a
message that names the bug, when the statement fails. hypothesis draws the inputs.

The same properties are applied twice:

- by the tests (``tests/test_properties.py``) to the course's own functions, and to
  known buggy versions, which must fail;
- by the grader (``diffusion-lessons check N FILE``) to a learner's functions.

Adding a lesson's properties takes one new module and one registry line:

1. Write ``diffusion_lessons/properties/lessonNN.py`` with ``MODULE`` (the course
   module, e.g. ``"lesson09_latent"``), ``FUNCTIONS`` (the names the exercise template
   asks for), ``CALLS`` (how the properties call each function: the number of
   positional arguments and the keyword names), ``PROPERTIES = []``,
   ``prop = registrar(PROPERTIES)``, then one ``@prop(description, hint, uses=...)``
   function per property (see ``lesson09.py`` for a short example). Keep each
   description a string literal: ``check N --list`` reads them without importing torch.
2. Add ``NN: "lessonNN"`` to ``REGISTRY`` below, and the template
   ``diffusion_lessons/exercises/lessonNN_exercise.py``.

This package's ``__init__`` imports neither torch nor hypothesis; the lesson modules do.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import LESSONS

# lesson number -> the module of its properties (in this package)
REGISTRY: dict[int, str] = {
    1: "lesson01",
    2: "lesson02",
    3: "lesson03",
    4: "lesson04",
    5: "lesson05",
    6: "lesson06",
    7: "lesson07",
    8: "lesson08",
    9: "lesson09",
    10: "lesson10",
}


@dataclass(frozen=True)
class Property:
    """One checked statement. ``fn(impl)`` raises AssertionError when it does not hold.

    Attributes:
        name: a stable identifier (the JSON report's ``name``).
        description: one line for the report.
        hint: what to look at when it fails (the common bugs).
        uses: the exercise functions it exercises, read from ``impl`` by name.
        fn: the check; ``impl`` is a namespace holding the exercise functions (None in
            an outline read without importing the module).
    """

    name: str
    description: str
    hint: str
    uses: tuple[str, ...]
    fn: Callable | None = None


@dataclass
class LessonProperties:
    """A lesson's exercise: the course module, the functions the template asks for, how
    the properties call them, the properties.
    """

    lesson: int
    module: str
    functions: tuple[str, ...]
    calls: dict[str, dict] = field(default_factory=dict)
    properties: list[Property] = field(default_factory=list)

    @property
    def title(self) -> str:
        return LESSONS[self.lesson][1]


def lessons() -> list[int]:
    """The lessons that have an exercise."""
    return sorted(REGISTRY)


def unknown_lesson(lesson) -> str | None:
    """None for a lesson with an exercise, else a line naming those that have one."""
    if lesson in REGISTRY:
        return None
    return (
        f"No exercise for lesson {lesson!r}; the lessons with exercises are "
        f"{', '.join(str(n) for n in lessons())} (see: diffusion-lessons list)."
    )


def load(lesson: int) -> LessonProperties:
    """Import lesson ``lesson``'s property module (torch, hypothesis) and return it."""
    problem = unknown_lesson(lesson)
    if problem:
        raise ValueError(problem)
    mod = importlib.import_module(f"{__name__}.{REGISTRY[lesson]}")
    return LessonProperties(
        lesson, mod.MODULE, tuple(mod.FUNCTIONS), dict(mod.CALLS), list(mod.PROPERTIES)
    )


def outline(lesson: int) -> LessonProperties:
    """The same as ``load`` without importing anything: read from the module's source.

    Gives names, descriptions and ``uses`` (``fn`` is None, hints are left empty when
    they are not literals). Used by ``check N --list``, which must start at once.
    """
    problem = unknown_lesson(lesson)
    if problem:
        raise ValueError(problem)
    path = Path(__file__).with_name(f"{REGISTRY[lesson]}.py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants: dict[str, object] = {}
    props: list[Property] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    constants[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    pass
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if (
                isinstance(deco, ast.Call)
                and isinstance(deco.func, ast.Name)
                and deco.func.id == "prop"
            ):
                description = ast.literal_eval(deco.args[0])
                hint_node = deco.args[1]
                if isinstance(hint_node, ast.Name):
                    hint = constants.get(hint_node.id, "")
                else:
                    hint = ast.literal_eval(hint_node)
                uses = next(
                    ast.literal_eval(k.value) for k in deco.keywords if k.arg == "uses"
                )
                props.append(Property(node.name, description, hint, tuple(uses)))
    return LessonProperties(
        lesson,
        constants["MODULE"],
        tuple(constants["FUNCTIONS"]),
        dict(constants.get("CALLS", {})),
        props,
    )
