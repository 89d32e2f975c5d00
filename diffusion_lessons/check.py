"""Automatic checks for the exercises: ``diffusion-lessons check N my_file.py``.

Each lesson has an exercise template
(``diffusion_lessons/exercises/lessonNN_exercise.py``): the lesson's functions with
their signatures and docstrings, and bodies for the learner to fill in. Its
**properties**, statements that must hold for every input, live in
``diffusion_lessons/properties/lessonNN.py``; the course's tests apply the same ones
to the course's own code. This module runs them on a learner's file and prints one
line per property:

    PASS     the property holds for every example tried
    FAIL     a counterexample was found: the message says what went wrong, with a hint
    TODO     the function still raises NotImplementedError, or the file lacks it
    TIMEOUT  the property ran longer than ``--timeout`` seconds (an endless loop?)
    EXITED   the code ended the program (sys.exit, exit(), os._exit)
    CRASHED  the process died (a crash in native code, a signal)

The learner's code runs in a separate process (``diffusion_lessons.properties.worker``)
with a time limit per property; whatever it prints is captured and summarised, never
mixed into the report. Functions the file does not define are taken from the course,
so a learner can work one function at a time.

Exit status: 0 when every property passes, 1 otherwise, 2 when the file cannot be
loaded. ``--json OUT`` writes the report as JSON; ``--batch DIR`` grades a folder of
submissions and writes a CSV and JSON summary.

This module imports neither torch nor hypothesis: ``check N --list`` starts at once.
"""

from __future__ import annotations

import argparse
import csv
import importlib.resources
import io
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from . import LESSONS
from . import properties as registry

__all__ = [
    "DEFAULT_TIMEOUT",
    "LoadError",
    "Result",
    "add_check_arguments",
    "batch_check",
    "check_command",
    "copy_template",
    "list_properties",
    "run_check",
    "template_path",
]

DEFAULT_TIMEOUT = 60.0  # seconds per property; a correct solution needs a few
STARTUP_LIMIT = 300.0  # seconds for the worker to import torch and the course
OUTPUT_LIMIT = 10_000_000  # bytes the learner's code may print before it is stopped
STATUSES = ("pass", "fail", "todo", "timeout", "exited", "crashed")


class LoadError(Exception):
    """The learner's file cannot be checked; the message says why and what to do."""


@dataclass
class Result:
    name: str
    description: str
    status: str  # one of STATUSES
    message: str
    hint: str
    functions: dict[str, str]

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "message": self.message,
            "hint": self.hint,
            "functions": self.functions,
        }


@dataclass
class Session:
    """What the worker reported: who wrote each function, the results, the output."""

    functions: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    results: dict[str, dict] = field(default_factory=dict)
    wrapped: dict[str, bool] = field(default_factory=dict)
    error: str | None = None
    tampered: str | None = None
    output: str = ""
    output_bytes: int = 0


# ---------------------------------------------------------------------------
# Before anything runs: the file itself
# ---------------------------------------------------------------------------


def precheck(path: Path, lesson) -> None:
    """Raise LoadError when ``path`` is missing, not Python or not valid Python."""
    if not path.exists():
        raise LoadError(
            f"No file {path}. Get a template with `diffusion-lessons check {lesson} "
            f"--template {path.name}`, fill it in, and check that file."
        )
    if path.is_dir():
        raise LoadError(
            f"{path} is a folder; name the .py file to check, e.g. "
            f"{path / 'lesson01_exercise.py'} (or grade the folder with --batch)."
        )
    if path.suffix != ".py":
        raise LoadError(
            f"{path} is not a Python file (.py); check the .py file with your "
            "functions in it."
        )
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LoadError(f"Cannot read {path}: {err}. Save it as UTF-8 text.") from None
    try:
        compile(source, str(path), "exec")
    except SyntaxError as err:
        line = (err.text or "").rstrip("\n")
        indent = len(line) - len(line.lstrip())
        caret = " " * max(0, (err.offset or 1) - 1 - indent) + "^"
        raise LoadError(
            f"{path.name}, line {err.lineno}: {type(err).__name__}: {err.msg}\n    "
            f"{line.strip()}\n    {caret}\n"
            "Fix this line (and look at the one before it: an unclosed bracket shows "
            "up one line late), then check again."
        ) from None


# ---------------------------------------------------------------------------
# Running the worker
# ---------------------------------------------------------------------------


def _apply(session: Session, event: dict) -> None:
    kind = event.get("event")
    if kind == "loaded":
        session.functions = event["functions"]
        session.notes = event.get("notes", {})
    elif kind == "error":
        session.error = event["message"]
    elif kind == "result":
        session.results[event["name"]] = {
            "status": event["status"],
            "message": event["message"],
        }
    elif kind == "wrappers":
        session.wrapped = event["wrapped"]
    elif kind == "tampered":
        session.tampered = event["message"]


def _run_inline(lesson: int, path: Path) -> Session:
    """Run the properties in this process (for the course's tests: no time limits)."""
    from .properties import worker

    session = Session()
    worker.session(lesson, path, None, lambda event: _apply(session, event))
    return session


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)  # the learner's own children too
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _exit_message(code: int, where: str) -> tuple[str, str]:
    """(status, message) for a worker that ended by itself with ``code``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return "crashed", f"the process died with {name} {where}"
    return "exited", (
        f"your code ended the program with exit code {code} {where} (sys.exit, exit() "
        "or os._exit): a function must return its result, never end the program"
    )


def _run_isolated(lesson: int, path: Path, names: list[str], timeout: float) -> Session:
    """Run the properties in worker processes, ``timeout`` seconds per property.

    A property that runs over, or ends the process, is recorded and a new worker
    continues with the properties left.
    """
    session = Session()
    pending = list(names)
    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, env.get("PYTHONPATH", "")) if p
    )
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="diffusion-lessons-check-") as tmp:
        capture = Path(tmp) / "output.txt"
        capture.touch()
        first = True
        while first or pending:
            first = False
            progress = _one_worker(
                lesson, path, pending, timeout, session, capture, env
            )
            if session.error is not None or session.tampered is not None:
                break
            if not progress:
                for name in pending:  # died twice on nothing: give up on the rest
                    session.results.setdefault(
                        name,
                        {
                            "status": "crashed",
                            "message": "the checker's process died before this ran",
                        },
                    )
                break
            pending = [n for n in pending if n not in session.results]
        session.output_bytes = capture.stat().st_size
        with capture.open("rb") as fh:
            session.output = fh.read(4000).decode("utf-8", "replace")
    return session


def _one_worker(lesson, path, names, timeout, session, capture, env) -> bool:
    """Run one worker on ``names``; returns False when it made no progress at all."""
    token = secrets.token_hex(16)
    start_size = capture.stat().st_size
    with capture.open("ab") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "diffusion_lessons.properties.worker",
                str(lesson),
                str(path),
                str(capture),
                *names,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sink,
            env=env,
            start_new_session=os.name == "posix",
        )
    proc.stdin.write((token + "\n").encode())
    proc.stdin.close()
    events: queue.Queue = queue.Queue()

    def read() -> None:
        for raw in proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("token") == token:
                events.put(event)
        events.put(None)  # the channel closed

    threading.Thread(target=read, daemon=True).start()
    phase, current, progress = "startup", None, False
    deadline = time.monotonic() + STARTUP_LIMIT
    try:
        while True:
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                event = ...
            if event is None:  # the worker ended
                proc.wait()
                if phase != "done":
                    _ended(session, phase, current, proc.returncode, path)
                    progress = progress or current is not None
                return progress
            if event is not ...:
                _apply(session, event)
                kind = event["event"]
                if kind == "ready":
                    phase, deadline = "import", time.monotonic() + timeout
                elif kind == "loaded":
                    phase = "running"
                    deadline = time.monotonic() + timeout
                elif kind == "start":
                    current = event["name"]
                    deadline = time.monotonic() + timeout
                elif kind == "result":
                    current, progress = None, True
                    deadline = time.monotonic() + timeout
                elif kind in ("done", "error", "tampered"):
                    phase = "done"
                continue
            if capture.stat().st_size - start_size > OUTPUT_LIMIT:
                _kill(proc)
                _record(
                    session,
                    phase,
                    current,
                    "fail",
                    f"your code printed more than {OUTPUT_LIMIT // 1_000_000} MB; "
                    "remove the prints from your functions",
                    path,
                )
                phase = "done"
                return True
            if time.monotonic() > deadline:
                _kill(proc)
                what = {
                    "startup": "the checker did not start within "
                    f"{STARTUP_LIMIT:.0f} s",
                    "import": f"importing {path.name} took longer than {timeout:g} s",
                }.get(
                    phase,
                    f"it ran longer than the time limit of {timeout:g} s: an endless "
                    "loop, or far too much work (use small tensors)",
                )
                _record(session, phase, current, "timeout", what, path)
                phase = "done"
                return True
    finally:
        _kill(proc)


def _record(session, phase, current, status, message, path) -> None:
    if phase in ("startup", "import"):
        session.error = (
            message[0].upper() + message[1:] + "."
            if status == "timeout"
            else f"Importing {path.name}: {message}."
        )
    elif current == "__wrappers__":
        pass  # the wrapper check is a courtesy, not a property
    elif current is not None:
        session.results[current] = {"status": status, "message": message}


def _ended(session, phase, current, code, path) -> None:
    if phase == "startup":
        session.error = (
            f"The checker's process ended while starting (exit code {code}); "
            "is diffusion-lessons installed with torch and hypothesis?"
        )
    elif phase == "import":
        status, message = _exit_message(code, f"while {path.name} was imported")
        session.error = message[0].upper() + message[1:] + "."
    elif current is not None and current != "__wrappers__":
        status, message = _exit_message(code, "during this check")
        session.results[current] = {"status": status, "message": message}


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------


def _owner_phrase(name: str, owner: str, wrapped: bool) -> str:
    if wrapped:
        return f"{name}: yours only calls the course's"
    if owner == "course (imported)":
        return f"course's {name}, imported"
    if owner == "course (subclassed)":
        return f"{name}: a subclass of the course's"
    if owner == "course":
        return f"course's {name}"
    return f"your {name}"


def _attribution(functions: dict[str, str], wrapped: dict[str, bool]) -> str:
    if all(o == "course" for o in functions.values()):
        return "(not in your file)"
    return (
        "("
        + "; ".join(
            _owner_phrase(n, o, wrapped.get(n, False)) for n, o in functions.items()
        )
        + ")"
    )


def _output_summary(session: Session) -> str:
    if not session.output_bytes:
        return ""
    lines = session.output.splitlines()
    shown = [line[:120] for line in lines[:5]]
    text = (
        f"  your code printed {session.output_bytes:,} bytes while it was checked "
        "(kept out of the report; the first lines:)\n"
    )
    return text + "".join(f"    | {line}\n" for line in shown)


def _print_report(lesson_props, path, session, results, out: TextIO) -> None:
    owners = session.functions
    print(
        f"Lesson {lesson_props.lesson:02d} · {lesson_props.title} — checking "
        f"{path.name}",
        file=out,
    )
    mine = [n for n, o in owners.items() if o != "course"]
    missing = [n for n, o in owners.items() if o == "course"]
    defines = ", ".join(mine) or "none of " + ", ".join(owners)
    extra = (
        f"; not in your file (the course's are used): {', '.join(missing)}"
        if missing and mine
        else ""
    )
    print(f"  your file defines: {defines}{extra}", file=out)
    course_code = [n for n, o in owners.items() if o.startswith("course (")]
    if course_code:
        verb = "is" if len(course_code) == 1 else "are"
        print(
            f"  note: {', '.join(course_code)} in your file {verb} the course's own "
            "(imported or subclassed), not your code",
            file=out,
        )
    wrapped = [n for n, w in session.wrapped.items() if w]
    if wrapped:
        print(
            f"  note: your {', '.join(wrapped)} only call the course's function of the "
            "same name: that is the course's code, not yours",
            file=out,
        )
    for note in session.notes.values():
        print(f"  note: {note}", file=out)
    out.write(_output_summary(session))
    width = min(max(len(r.description) for r in results), 70)
    for r in results:
        status = r.status.upper()
        note = (
            _attribution(r.functions, session.wrapped)
            if r.status != "todo"
            else f"({r.message.splitlines()[0]})"
        )
        print(f"  {status:<7}  {r.description:<{width}}  {note}", file=out)
        if r.status not in ("pass", "todo"):
            for line in r.message.splitlines():
                print(f"           {line}", file=out)
            print(f"           Hint: {r.hint}", file=out)
    counts = _counts(results)
    others = ", ".join(
        f"{counts[s]} {s}" for s in ("timeout", "exited", "crashed") if counts[s]
    )
    print(
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['todo']} to do"
        + (f", {others}" if others else "")
        + f" (of {len(results)}).",
        file=out,
    )


def _counts(results: list[Result]) -> dict[str, int]:
    return {s: sum(r.status == s for r in results) for s in STATUSES}


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_json(json_path, payload: dict) -> None:
    _write_atomic(
        Path(json_path), json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    )


def run_check(
    lesson: int,
    path: str | Path,
    json_path: str | Path | None = None,
    *,
    out: TextIO | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    isolate: bool = True,
) -> int:
    """Check the learner's file ``path`` against lesson ``lesson``'s properties and
    print the report.

    Args:
        lesson: the lesson number.
        path: the learner's .py file (usually a filled-in copy of the template).
        json_path: also write the report as JSON here: {"lesson", "title", "file",
            "exit_status", "error", "timeout", "functions": {name: "yours" | "course
            (imported)" | "course (subclassed)" | "course"}, "wrapped": [names],
            "notes", "output": {"bytes", "head"}, "results": [{"name", "description",
            "status", "message", "hint", "functions"}], "passed", "failed", "todo",
            "timeout_count", "exited", "crashed", "total"}.
        out: where to print (default: standard output).
        timeout: seconds each property may run.
        isolate: run the learner's code in a separate process (the default). False
            runs it here, without time limits: for the course's own tests.
    Returns:
        The exit status: 0 if every property passes, 1 otherwise, 2 if the file
        cannot be loaded.
    """
    out = out or sys.stdout
    path = Path(path).expanduser().resolve()
    payload = {
        "lesson": lesson,
        "title": LESSONS.get(lesson, ("", ""))[1],
        "file": str(path),
        "exit_status": 2,
        "error": None,
        "timeout": timeout,
        "functions": {},
        "wrapped": [],
        "notes": {},
        "output": {"bytes": 0, "head": ""},
        "results": [],
        "passed": 0,
        "failed": 0,
        "todo": 0,
        "timeout_count": 0,
        "exited": 0,
        "crashed": 0,
        "total": 0,
    }

    def refuse(message: str) -> int:
        print(f"Cannot check {path.name}: {message}", file=out)
        payload["error"] = message
        if json_path is not None:
            _write_json(json_path, payload)
        return 2

    problem = registry.unknown_lesson(lesson)
    if problem:
        return refuse(problem)
    lesson_props = registry.outline(lesson)
    try:
        precheck(path, lesson)
    except LoadError as err:
        return refuse(str(err))
    names = [p.name for p in lesson_props.properties]
    if isolate:
        session = _run_isolated(lesson, path, names, timeout)
    else:
        session = _run_inline(lesson, path)
    payload["output"] = {"bytes": session.output_bytes, "head": session.output}
    if session.error is not None:
        return refuse(session.error)
    results = []
    for p in lesson_props.properties:
        got = session.results.get(p.name) or {
            "status": "crashed",
            "message": "no result came back from the checker's process",
        }
        if session.tampered:
            got = {"status": "fail", "message": session.tampered}
        functions = {n: session.functions.get(n, "course") for n in p.uses}
        results.append(
            Result(
                p.name,
                p.description,
                got["status"],
                got["message"],
                p.hint,
                functions,
            )
        )
    _print_report(lesson_props, path, session, results, out)
    counts = _counts(results)
    status = 0 if counts["pass"] == len(results) else 1
    payload.update(
        exit_status=status,
        functions=session.functions,
        wrapped=sorted(n for n, w in session.wrapped.items() if w),
        notes=session.notes,
        results=[r.as_dict() for r in results],
        passed=counts["pass"],
        failed=counts["fail"],
        todo=counts["todo"],
        timeout_count=counts["timeout"],
        exited=counts["exited"],
        crashed=counts["crashed"],
        total=len(results),
    )
    if json_path is not None:
        _write_json(json_path, payload)
    return status


# ---------------------------------------------------------------------------
# Grading a class: a folder of submissions
# ---------------------------------------------------------------------------

CSV_COLUMNS = (
    "file",
    "exit_status",
    "passed",
    "failed",
    "todo",
    "timeout",
    "exited",
    "crashed",
    "total",
    "score",
    "course_code",
    "not_passed",
    "error",
)


def batch_check(
    lesson: int,
    folder: str | Path,
    out_dir: str | Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    out: TextIO | None = None,
    isolate: bool = True,
) -> int:
    """Grade every .py file in ``folder``; write each report (NAME.txt, NAME.json) and
    summary.csv and summary.json into ``out_dir``.

    Returns 0 when every submission passed every property, 1 when some did not, 2 when
    the folder cannot be graded (missing, empty, or ``out_dir`` already holds a
    summary).
    """
    out = out or sys.stdout
    shown_folder, shown_out = Path(folder), Path(out_dir)  # as given, for the messages
    folder = Path(folder).expanduser().resolve()
    out_dir = Path(out_dir).expanduser().resolve()
    problem = registry.unknown_lesson(lesson)
    if problem:
        print(problem, file=out)
        return 2
    if not folder.is_dir():
        print(
            f"No folder {folder}: name the folder of submissions (.py files).", file=out
        )
        return 2
    files = sorted(
        p for p in folder.glob("*.py") if p.is_file() and not p.name.startswith(".")
    )
    if not files:
        print(f"{folder} holds no .py files to grade.", file=out)
        return 2
    if (out_dir / "summary.csv").exists() or (out_dir / "summary.json").exists():
        print(
            f"{out_dir} already holds a summary; choose another --out folder or move "
            "it away first (nothing is overwritten).",
            file=out,
        )
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, entries = [], []
    print(
        f"Grading {len(files)} files in {shown_folder} (lesson {lesson:02d})", file=out
    )
    for f in files:
        text = io.StringIO()
        json_path = out_dir / f"{f.stem}.json"
        status = run_check(
            lesson, f, json_path, out=text, timeout=timeout, isolate=isolate
        )
        _write_atomic(out_dir / f"{f.stem}.txt", text.getvalue())
        report = json.loads(json_path.read_text(encoding="utf-8"))
        course_code = sorted(
            {n for n, o in report["functions"].items() if o.startswith("course (")}
            | set(report["wrapped"])
        )
        not_passed = [
            f"{r['name']}:{r['status']}"
            for r in report["results"]
            if r["status"] != "pass"
        ]
        total = report["total"]
        row = {
            "file": f.name,
            "exit_status": status,
            "passed": report["passed"],
            "failed": report["failed"],
            "todo": report["todo"],
            "timeout": report["timeout_count"],
            "exited": report["exited"],
            "crashed": report["crashed"],
            "total": total,
            "score": f"{report['passed'] / total:.3f}" if total else "0.000",
            "course_code": ";".join(course_code),
            "not_passed": ";".join(not_passed),
            "error": (report["error"] or "").splitlines()[0] if report["error"] else "",
        }
        rows.append(row)
        entries.append({**row, "report": json_path.name})
        print(
            f"  {f.name:<32} {report['passed']:>3}/{total:<3} passed  exit {status}"
            + (f"  course code: {row['course_code']}" if course_code else "")
            + (f"  ({row['error'][:60]})" if row["error"] else ""),
            file=out,
        )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    _write_atomic(out_dir / "summary.csv", buffer.getvalue())
    _write_json(
        out_dir / "summary.json",
        {
            "lesson": lesson,
            "title": LESSONS[lesson][1],
            "folder": str(folder),
            "timeout": timeout,
            "submissions": entries,
        },
    )
    passed_all = sum(r["exit_status"] == 0 for r in rows)
    print(
        f"{passed_all} of {len(rows)} passed every property. Summary: "
        f"{shown_out / 'summary.csv'} and summary.json; one report per file beside "
        "them.",
        file=out,
    )
    return 0 if passed_all == len(rows) else 1


# ---------------------------------------------------------------------------
# Templates and the command line
# ---------------------------------------------------------------------------


def template_path(lesson: int) -> Path:
    """The packaged template: diffusion_lessons/exercises/lessonNN_exercise.py."""
    problem = registry.unknown_lesson(lesson)
    if problem:
        raise ValueError(problem)
    return Path(
        str(
            importlib.resources.files("diffusion_lessons").joinpath(
                "exercises", f"lesson{lesson:02d}_exercise.py"
            )
        )
    )


def copy_template(
    lesson: int, dest: str | Path | None = None, *, overwrite: bool = False
) -> Path:
    """Copy lesson ``lesson``'s exercise template to ``dest`` (a .py file name or an
    existing folder; default: here).

    Returns the path written. Refuses to overwrite an existing file (your work) unless
    ``overwrite``.
    """
    src = template_path(lesson)
    dest = Path(dest) if dest is not None else Path.cwd()
    if dest.is_dir():
        dest = dest / src.name
    if dest.suffix != ".py":
        raise ValueError(
            f"Name the copy with a .py ending (e.g. {dest.with_suffix('.py').name}) so "
            "Python can import it, or give a folder."
        )
    if dest.exists() and not overwrite:
        raise FileExistsError(
            f"{dest} already exists and would be overwritten (your work?). Choose "
            "another name, or delete it first."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    return dest


def list_properties(lesson: int) -> str:
    """The lesson's exercise functions and properties, as text (``check N --list``)."""
    lesson_props = registry.outline(lesson)
    lines = [
        f"Lesson {lesson:02d} · {lesson_props.title}: "
        f"{len(lesson_props.properties)} properties",
        f"  functions to write: {', '.join(lesson_props.functions)} (template: "
        f"diffusion-lessons check {lesson} --template FILE.py)",
    ]
    for p in lesson_props.properties:
        lines.append(f"  {p.name:<34} {p.description}  [{', '.join(p.uses)}]")
    return "\n".join(lines)


def add_check_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``diffusion-lessons check``: N [FILE] [--json OUT] [--template
    DEST] [--list] [--timeout S] [--batch DIR [--out DIR]].
    """
    lessons = sorted(registry.REGISTRY)
    parser.add_argument(
        "lesson", type=int, help=f"lesson number ({lessons[0]}-{lessons[-1]})"
    )
    parser.add_argument("file", nargs="?", help="your .py file (a filled-in template)")
    parser.add_argument(
        "--json",
        metavar="OUT",
        default=None,
        help="also write the report as JSON to OUT (for autograders)",
    )
    parser.add_argument(
        "--template",
        metavar="DEST",
        default=None,
        help="copy the lesson's exercise template to DEST (a .py file or a folder) and "
        "stop",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the lesson's properties and stop"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds each property may run (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--batch",
        metavar="DIR",
        default=None,
        help="grade every .py file in DIR; write a report per file and summary.csv, "
        "summary.json into --out",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="with --batch: where to write the reports (default: grading-lessonNN)",
    )
    return parser


def check_command(args: argparse.Namespace) -> int:
    """Run ``diffusion-lessons check`` from parsed arguments; return the exit status."""
    timeout = getattr(args, "timeout", None) or DEFAULT_TIMEOUT
    try:
        if args.list:
            print(list_properties(args.lesson))
            return 0
        if args.template:
            dest = copy_template(args.lesson, args.template)
            print(
                f"Wrote {dest}. Fill in the functions, then run: diffusion-lessons "
                f"check {args.lesson} {dest}"
            )
            return 0
    except (ValueError, FileExistsError) as err:
        print(err, file=sys.stderr)
        return 2
    if timeout <= 0:
        print("--timeout must be a positive number of seconds.", file=sys.stderr)
        return 2
    batch = getattr(args, "batch", None)
    if batch:
        out_dir = getattr(args, "out", None) or f"grading-lesson{args.lesson:02d}"
        return batch_check(args.lesson, batch, out_dir, timeout=timeout)
    if not args.file:
        print(
            f"Name the file to check: diffusion-lessons check {args.lesson} FILE.py "
            "(get a template with --template FILE.py, see the properties with --list, "
            "grade a folder with --batch DIR).",
            file=sys.stderr,
        )
        return 2
    return run_check(args.lesson, args.file, args.json, timeout=timeout)


def main(argv: list[str] | None = None) -> None:
    """``python -m diffusion_lessons.check N FILE``: the same as ``diffusion-lessons
    check``.
    """
    parser = add_check_arguments(
        argparse.ArgumentParser(
            prog="diffusion-lessons check", description=__doc__.splitlines()[0]
        )
    )
    raise SystemExit(check_command(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
