"""Run a lesson's properties on a learner's file, in this process, and report events.

``diffusion-lessons check`` starts this module in a separate process
(``python -m diffusion_lessons.properties.worker``) so that the learner's code can
neither hang, silence nor fool the grader. It speaks one JSON object per line on its
own copy of standard output; everything the learner's code prints goes to a capture
file. The events, in order:

    {"event": "ready"}                          the grader's own imports are done
    {"event": "loaded", "functions": ..., ...}  the learner's file is imported
    {"event": "error", "message": ...}          ... or it could not be
    {"event": "start", "name": NAME}            a property begins
    {"event": "result", "name": NAME, ...}      and its result
    {"event": "wrappers", "wrapped": {...}}     functions that only call the course's
    {"event": "tampered", "message": ...}       the learner's code changed the grader
    {"event": "done"}

The parent (``diffusion_lessons.check``) applies the time limit of each step, kills
this process when one runs over, and starts a new one for the properties left.
"""

from __future__ import annotations

import builtins
import difflib
import importlib
import importlib.util
import inspect
import json
import os
import re
import sys
import traceback
import types
from pathlib import Path

# ---------------------------------------------------------------------------
# Loading the learner's file
# ---------------------------------------------------------------------------


class LoadFailure(Exception):
    """The learner's file could not be imported; the message says why and what to do."""


def where_in(err: BaseException, path: Path) -> str:
    """' (in FILE, line N, in f: `code`)' for the innermost frame inside ``path``."""
    frames = [
        f
        for f in traceback.extract_tb(err.__traceback__)
        if Path(f.filename).resolve() == path
    ]
    if not frames:
        return ""
    f = frames[-1]
    code = (f.line or "").strip()
    return f" (in {path.name}, line {f.lineno}, in {f.name}: `{code}`)"


def load_learner_module(path: Path) -> types.ModuleType:
    """Import the learner's file by path; LoadFailure names the problem and the fix."""
    name = f"_diffusion_lessons_learner_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))  # the learner's helper modules, beside it
    try:
        spec.loader.exec_module(module)
    except BaseException as err:  # noqa: BLE001 - anything, SystemExit included
        sys.modules.pop(name, None)
        raise LoadFailure(
            f"Importing {path.name} failed with {type(err).__name__}: "
            f"{err}{where_in(err, path)}.\n"
            "The checker imports your file: keep experiments and prints under "
            '`if __name__ == "__main__":`, and check the imports at the top.'
        ) from None
    finally:
        if str(path.parent) in sys.path:
            sys.path.remove(str(path.parent))
    return module


def origin(obj) -> str:
    """'yours', or 'course (imported)' for one of the course's own objects."""
    module = getattr(obj, "__module__", "") or ""
    if module.startswith("diffusion_lessons."):
        return "course (imported)"
    return "yours"


def _course_base(obj, course_obj) -> bool:
    """True when the class ``obj`` subclasses the course's class of the same name."""
    return (
        inspect.isclass(obj)
        and inspect.isclass(course_obj)
        and obj is not course_obj
        and issubclass(obj, course_obj)
    )


def near_misses(module: types.ModuleType, wanted: str, taken: set[str]) -> list[str]:
    """Names in the learner's file that look like a misspelt ``wanted``."""
    names = [
        n
        for n, v in vars(module).items()
        if callable(v) and not n.startswith("__") and n not in taken
    ]
    return difflib.get_close_matches(wanted, names, n=2, cutoff=0.75)


# ---------------------------------------------------------------------------
# Signatures: checked by how the properties call each function
# ---------------------------------------------------------------------------


def _describe(fn) -> str:
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return "(...)"
    return "(" + ", ".join(params) + ")"


def _call_problem(label: str, fn, n_args: int, keywords, template) -> str | None:
    """Why ``fn`` cannot be called with ``n_args`` positional arguments and the
    ``keywords``, or None. ``template`` is the course's version, for the names.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    names = {p.name for p in params if p.kind is not p.POSITIONAL_ONLY}
    want = _describe(template) if template is not None else ""
    for kw in keywords:
        if kw not in names and not has_var_kw:
            return (
                f"your {label}{_describe(fn)} has no parameter named {kw!r}: the "
                f"checks pass it by name, {label}(..., {kw}=...), as in the template's "
                f"{label}{want}. Name that parameter {kw}."
            )
    try:
        sig.bind(*range(n_args), **dict.fromkeys(keywords))
    except TypeError as err:
        positional = [
            p.name
            for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        return (
            f"your {label}{_describe(fn)} cannot be called the way the checks call it, "
            f"with {n_args} positional arguments like the template's {label}{want} "
            f"({err}); it takes {len(positional)}: keep the template's parameters in "
            "their order (the names of positional ones are yours to choose)"
        )
    return None


def signature_problem(name: str, obj, spec, template) -> str | None:
    """Check ``obj`` against the CALLS entry ``spec`` of ``name``."""
    if isinstance(spec, dict):  # a class: its constructor and forward
        if not inspect.isclass(obj):
            return f"{name} must be a class (an nn.Module); yours is {type(obj)}"
        for part, (n_args, keywords) in spec.items():
            method = getattr(obj, part, None)
            if method is None:
                return f"your {name} has no {part} method"
            bound = _bound_method(method)
            tmpl = _bound_method(getattr(template, part, None)) if template else None
            problem = _call_problem(f"{name}.{part}", bound, n_args, keywords, tmpl)
            if problem:
                return problem
        return None
    n_args, keywords = spec
    if not callable(obj):
        return f"{name} must be a function; yours is a {type(obj).__name__}"
    return _call_problem(name, obj, n_args, keywords, template)


def _bound_method(fn):
    """``fn`` without its ``self`` (so that its signature matches the calls)."""
    if fn is None:
        return None
    return types.MethodType(fn, object()) if inspect.isfunction(fn) else fn


# ---------------------------------------------------------------------------
# Running one property
# ---------------------------------------------------------------------------


def falsifying_example(err: BaseException) -> str:
    """hypothesis' note 'Falsifying example: check(t=3, ...)' as 't=3, ...'."""
    parts = []
    for note in getattr(err, "__notes__", ()):
        if note.startswith(("Falsifying example", "Failing test case")) and "(" in note:
            body = note.split("(", 1)[1].rsplit(")", 1)[0]
            parts += [
                a
                for a in (
                    re.sub(r"\s*#.*$", "", line).strip().rstrip(",")
                    for line in body.splitlines()
                )
                if a and not a.endswith("=data(...)")
            ]
        elif note.startswith("Draw "):
            parts.append(note.strip())
    return ", ".join(parts)


_EXCEPTION_GROUP = getattr(builtins, "BaseExceptionGroup", ())  # hypothesis' Flaky


class CourseCalled(Exception):
    """Raised by a course function that a wrapper check has replaced."""


def run_property(p, impl, path: Path) -> dict:
    """Run ``p.fn(impl)``; returns {"status", "message"}.

    Statuses: pass, fail, todo (NotImplementedError), exited (the code called
    sys.exit or exit), crashed (another BaseException).
    """
    import torch

    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            p.fn(impl)
    except NotImplementedError as err:
        return {"status": "todo", "message": str(err) or "not written yet"}
    except AssertionError as err:
        message = str(err) or "assertion failed"
        example = falsifying_example(err)
        return {
            "status": "fail",
            "message": message
            + where_in(err, path)
            + (f"\nFalsifying example: {example}" if example else ""),
        }
    except SystemExit as err:
        return {
            "status": "exited",
            "message": f"your code called sys.exit({err.code!r}) or exit()"
            f"{where_in(err, path)}: a function must return its result, never end "
            "the program",
        }
    except Exception as err:  # the learner's code crashed
        inner, flaky = err, ""
        if isinstance(err, _EXCEPTION_GROUP) and err.exceptions:
            inner = err.exceptions[0]
            flaky = (
                " It failed only some of the time: does your code draw random numbers "
                "without the generator argument?"
            )
        if isinstance(inner, NotImplementedError):
            return {"status": "todo", "message": str(inner) or "not written yet"}
        if isinstance(inner, SystemExit):
            return run_property_exit(inner, path)
        example = falsifying_example(err) or falsifying_example(inner)
        if isinstance(inner, AssertionError):
            message = f"{inner}{where_in(inner, path)}.{flaky}"
        else:
            message = (
                f"your code raised {type(inner).__name__}: "
                f"{inner}{where_in(inner, path)}.{flaky}"
            )
        return {
            "status": "fail",
            "message": message
            + (f"\nFalsifying example: {example}" if example else ""),
        }
    except BaseException as err:  # noqa: BLE001 - KeyboardInterrupt and the like
        return {
            "status": "crashed",
            "message": f"your code raised {type(err).__name__}{where_in(err, path)}",
        }
    return {"status": "pass", "message": ""}


def run_property_exit(err: SystemExit, path: Path) -> dict:
    return {
        "status": "exited",
        "message": f"your code called sys.exit({err.code!r}) or exit()"
        f"{where_in(err, path)}: a function must return its result",
    }


# ---------------------------------------------------------------------------
# Tampering: the learner's code must not change the grader, torch or the course
# ---------------------------------------------------------------------------


_WATCHED = (
    "hypothesis",
    "hypothesis.strategies",
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "torch.linalg",
    "torch.testing",
    "math",
    "difflib",
)


def _watched_modules() -> list[types.ModuleType]:
    """The course's and the grader's modules, the libraries the properties call."""
    watched = [
        m
        for name, m in list(sys.modules.items())
        if isinstance(m, types.ModuleType)
        and (name in _WATCHED or name.split(".")[0] == "diffusion_lessons")
    ]
    return watched + [builtins, json, os]


class Snapshot:
    """Every attribute of the grader's, the course's, torch's and hypothesis' modules
    (and of torch.Tensor and nn.Module), to notice a learner's file that rebinds one.
    """

    def __init__(self) -> None:
        import torch

        self.spaces = {
            getattr(m, "__name__", repr(m)): (m, dict(vars(m)))
            for m in _watched_modules()
        }
        for cls in (torch.Tensor, torch.nn.Module):
            self.spaces[cls.__qualname__] = (cls, dict(vars(cls)))

    def changes(self) -> list[str]:
        found = []
        skip = {"__warningregistry__", "__loader__", "__spec__"}
        for label, (obj, before) in self.spaces.items():
            now = vars(obj)
            for key, value in before.items():
                if key in skip or key.startswith("_diffusion_lessons_learner"):
                    continue
                if key in (
                    "modules",
                    "path",
                    "path_importer_cache",
                    "stdout",
                    "stderr",
                ):
                    continue  # sys's, which imports and redirection change
                if key not in now or now[key] is not value:
                    found.append(f"{label}.{key}")
        return found


# ---------------------------------------------------------------------------
# The session: load, run the properties, check for wrappers
# ---------------------------------------------------------------------------


def _impl(lesson_props, module, course) -> tuple[types.SimpleNamespace, dict, dict]:
    """The functions to check, who wrote each, and notes on the missing ones."""
    owners, fns, notes = {}, {}, {}
    taken = set(lesson_props.functions)
    for name in lesson_props.functions:
        if hasattr(module, name):
            obj = getattr(module, name)
            owners[name] = origin(obj)
            if _course_base(obj, getattr(course, name, None)):
                owners[name] = "course (subclassed)"
            fns[name] = obj
        else:
            owners[name] = "course"
            fns[name] = getattr(course, name)
            close = near_misses(module, name, taken)
            if close:
                notes[name] = (
                    f"your file has {' and '.join(close)}: did you mean {name}? "
                    f"(the checks look for the name {name})"
                )
    return types.SimpleNamespace(**fns), owners, notes


def wrapped_functions(lesson_props, impl, owners, module, course, path) -> dict:
    """{name: True} for each of the learner's functions that calls the course's function
    of the same name (a wrapper): the property runs with the course's one replaced by a
    function that raises.
    """
    from . import _common

    found = {}
    for name in lesson_props.functions:
        if owners[name] != "yours":
            continue
        prop = next((p for p in lesson_props.properties if name in p.uses), None)
        original = getattr(course, name, None)
        if prop is None or original is None:
            continue

        def raiser(*args, _name=name, **kwargs):
            raise CourseCalled(_name)

        replaced = [(course, name, original)]
        for key, value in vars(module).items():
            if value is original:
                replaced.append((module, key, value))
            elif isinstance(value, types.ModuleType) and value is course:
                pass  # the course module's attribute is replaced below already
        for owner, key, _ in replaced:
            setattr(owner, key, raiser)
        _common.EXAMPLES_CAP = 1
        try:
            import torch

            with torch.random.fork_rng(devices=[]):
                prop.fn(impl)
        except CourseCalled:
            found[name] = True
        except BaseException as err:  # noqa: BLE001
            groups = getattr(err, "exceptions", ())
            if any(isinstance(e, CourseCalled) for e in groups):
                found[name] = True
        finally:
            _common.EXAMPLES_CAP = None
            for owner, key, value in replaced:
                setattr(owner, key, value)
    return found


def session(lesson: int, path: Path, names: list[str] | None, emit) -> None:
    """Load ``path`` and run lesson ``lesson``'s properties called ``names`` (all when
    None), reporting each step through ``emit(dict)``.
    """
    from . import load

    lesson_props = load(lesson)
    course = importlib.import_module(f"diffusion_lessons.{lesson_props.module}")
    for n in range(1, lesson + 1):  # the course modules the properties use
        from .. import LESSONS

        importlib.import_module(f"diffusion_lessons.{LESSONS[n][0]}")
    snapshot = Snapshot()
    emit({"event": "ready"})
    try:
        module = load_learner_module(path)
    except LoadFailure as err:
        emit({"event": "error", "message": str(err)})
        return
    impl, owners, notes = _impl(lesson_props, module, course)
    problems = {}
    for name in lesson_props.functions:
        if owners[name] in ("yours", "course (subclassed)"):
            problem = signature_problem(
                name,
                getattr(impl, name),
                lesson_props.calls[name],
                getattr(course, name, None),
            )
            if problem:
                problems[name] = problem
    emit(
        {
            "event": "loaded",
            "functions": owners,
            "notes": notes,
            "signature_problems": problems,
        }
    )
    changed = snapshot.changes()
    if changed:
        emit({"event": "tampered", "message": _tamper_message(changed)})
        return
    for p in lesson_props.properties:
        if names is not None and p.name not in names:
            continue
        emit({"event": "start", "name": p.name})
        mine = [n for n in p.uses if owners[n] != "course"]
        if not mine:
            result = {
                "status": "todo",
                "message": f"not in your file: write {', '.join(p.uses)} to check this",
            }
        elif any(n in problems for n in p.uses):
            result = {
                "status": "fail",
                "message": "\n".join(problems[n] for n in p.uses if n in problems),
            }
        else:
            result = run_property(p, impl, path)
        changed = snapshot.changes()
        if changed:
            emit({"event": "tampered", "message": _tamper_message(changed)})
            return
        emit({"event": "result", "name": p.name, **result})
    emit({"event": "start", "name": "__wrappers__"})
    wrapped = wrapped_functions(lesson_props, impl, owners, module, course, path)
    emit({"event": "wrappers", "wrapped": wrapped})
    emit({"event": "done"})


def _tamper_message(changed: list[str]) -> str:
    shown = ", ".join(changed[:4]) + (
        f" and {len(changed) - 4} more" if changed[4:] else ""
    )
    return (
        f"your file changes the checker's, the course's or torch's own code ({shown}); "
        "the checks cannot be trusted, so every property fails. Define your functions "
        "and change nothing else."
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m diffusion_lessons.properties.worker LESSON FILE CAPTURE [NAME ...]``.

    The first line of standard input is a token that every event carries. Standard
    output and error are redirected to the file CAPTURE once the events' channel is
    set up.
    """
    argv = sys.argv[1:] if argv is None else argv
    lesson, path, capture = int(argv[0]), Path(argv[1]), argv[2]
    names = argv[3:] or None
    token = sys.stdin.readline().strip()
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    sink = os.open(capture, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - the learner's input()
    write = channel.write
    flush = channel.flush
    dumps = json.dumps

    def emit(event: dict) -> None:
        sys.stdout.flush()
        write(dumps({**event, "token": token}) + "\n")
        flush()

    session(lesson, path.resolve(), names, emit)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no atexit handlers of the learner's


if __name__ == "__main__":
    main()
