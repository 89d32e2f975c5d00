"""MkDocs hook: show code from the package in the chapters, never a pasted copy.

A Markdown line that contains only

    {{ source("diffusion_lessons.lesson01_forward_noise:q_sample") }}

is replaced by a caption naming the file and line numbers and a fenced ``python`` block
with the object's source (``inspect.getsource``, dedented). The reference is
``module:qualname`` (``Schedule.T`` for a method or property of a class); ``module``
alone shows the whole module. The line may be indented (inside an admonition or a tab);
the output keeps that indentation.

Lines inside fenced code blocks are left alone, so a page can show the syntax literally.
An unknown module or name, or a malformed ``{{ source(...) }}`` line, fails the build
with a message naming the page, the line and the reference.

Each build imports the referenced package afresh, so ``mkdocs serve`` never shows stale
source; ``mkdocs serve`` also watches the directories of the referenced packages.
"""

from __future__ import annotations

import importlib
import inspect
import linecache
import re
import sys
import textwrap
from pathlib import Path

from mkdocs.exceptions import PluginError

# A line holding only {{ source("module[:qualname]") }} (single or double quotes).
SOURCE_LINE = re.compile(
    r"""^(?P<indent>[ \t]*)\{\{\s*source\(\s*"""
    r"""(?P<q>["'])(?P<ref>[^"']+)(?P=q)\s*\)\s*\}\}\s*$"""
)
# Anything that looks like an attempt at the directive (to report typos instead of
# ignoring them).
SOURCE_ATTEMPT = re.compile(r"^\s*\{\{\s*source\b")
FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})")

_MISSING = object()
_repo_root: Path = Path.cwd()
_fresh: set[str] = set()  # top-level packages imported afresh during this build
_watched: set[str] = set()  # package directories to watch under `mkdocs serve`


def on_config(config, **kwargs):
    global _repo_root
    _repo_root = Path(config.config_file_path).resolve().parent
    # Show the repository's code even when the package is not installed into this
    # Python.
    if str(_repo_root) not in sys.path:
        sys.path.insert(0, str(_repo_root))
    return config


def on_pre_build(config, **kwargs):
    _fresh.clear()
    linecache.checkcache()


def on_serve(server, config, builder, **kwargs):
    for path in sorted(_watched):
        server.watch(path)
    return server


def _purge(top: str) -> None:
    """Forget an already imported package that lives in this repository, so it is
    re-imported.
    """
    for name in list(sys.modules):
        if name == top or name.startswith(top + "."):
            file = getattr(sys.modules[name], "__file__", None)
            if file and Path(file).resolve().is_relative_to(_repo_root):
                del sys.modules[name]


def _import(module_name: str):
    top = module_name.split(".")[0]
    if top not in _fresh:
        _purge(top)
        importlib.invalidate_caches()
        _fresh.add(top)
    return importlib.import_module(module_name)


def _unwrap(obj):
    if isinstance(obj, property):
        return obj.fget
    if isinstance(obj, (classmethod, staticmethod)):
        return obj.__func__
    func = getattr(obj, "func", None)  # functools.cached_property / partialmethod
    if func is not None and not inspect.isclass(obj) and not inspect.isroutine(obj):
        return func
    if inspect.isroutine(obj):
        # decorated functions (e.g. @torch.no_grad()) point at their wrapper otherwise
        return inspect.unwrap(obj)
    return obj


def _display_path(file: Path, top) -> str:
    """Path shown in the caption: relative to the directory holding the top-level
    package.
    """
    top_file = getattr(top, "__file__", None)
    if top_file:
        base = Path(top_file).resolve().parent
        base = base.parent if Path(top_file).name == "__init__.py" else base
        if file.is_relative_to(base):
            return file.relative_to(base).as_posix()
    if file.is_relative_to(_repo_root):
        return file.relative_to(_repo_root).as_posix()
    return file.name


def render_source(ref: str) -> tuple[str, str]:
    """Return (caption, code) for a reference ``module[:qualname]``; raise LookupError
    if unknown.
    """
    module_name, _, qualname = ref.strip().partition(":")
    module_name, qualname = module_name.strip(), qualname.strip()
    if not module_name or (":" in ref and not qualname):
        raise LookupError("expected 'package.module' or 'package.module:Qual.name'")
    try:
        module = _import(module_name)
    except ImportError as exc:
        raise LookupError(f"cannot import module {module_name!r}: {exc}") from exc
    except (
        Exception
    ) as exc:  # the module itself is broken: say so instead of a bare traceback
        raise LookupError(
            f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc

    obj = module
    if qualname:
        for i, part in enumerate(qualname.split(".")):
            parent = obj
            # keep property / classmethod objects to unwrap them
            if inspect.isclass(parent):
                obj = inspect.getattr_static(parent, part, _MISSING)
            else:
                obj = getattr(parent, part, _MISSING)
            if obj is _MISSING:
                where = module_name + (
                    ":" + ".".join(qualname.split(".")[:i]) if i else ""
                )
                names = sorted(
                    n
                    for n, v in getattr(parent, "__dict__", {}).items()
                    if not n.startswith("_")
                    and (
                        not inspect.ismodule(parent)
                        or getattr(v, "__module__", None) == parent.__name__
                    )
                )
                hint = f" Names available there: {', '.join(names)}." if names else ""
                raise LookupError(f"{where} has no attribute {part!r}.{hint}")
        obj = _unwrap(obj)

    try:
        lines, start = inspect.getsourcelines(obj)
        file = Path(inspect.getsourcefile(obj) or inspect.getfile(obj)).resolve()
    except (TypeError, OSError) as exc:
        raise LookupError(
            f"no source for {ref!r} ({type(obj).__name__}); reference a module, class, "
            "function "
            f"or method: {exc}"
        ) from exc
    start = max(start, 1)  # a module reports line 0
    end = start + len(lines) - 1
    code = textwrap.dedent("".join(lines)).rstrip("\n")
    top = sys.modules[module_name.split(".")[0]]
    caption = f"*Source: `{_display_path(file, top)}`, lines {start}–{end}*"
    top_file = getattr(top, "__file__", None)
    if top_file and Path(top_file).resolve().is_relative_to(_repo_root):
        _watched.add(str(Path(top_file).resolve().parent))
    return caption, code


def _block(indent: str, caption: str, code: str) -> list[str]:
    longest = max((len(m) for m in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    out = [
        caption,
        "{ .source-caption }",
        "",
        f"{fence}python",
        *code.splitlines(),
        fence,
    ]
    return [(indent + line) if line else "" for line in out]


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    out: list[str] = []
    fence: str | None = None  # the fence string of the code block we are inside
    changed = False
    for lineno, line in enumerate(markdown.split("\n"), start=1):
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            out.append(line)
            continue
        m_open = FENCE_OPEN.match(line)
        if m_open:
            fence = m_open.group("fence")
            out.append(line)
            continue
        m = SOURCE_LINE.match(line)
        if m is None:
            if SOURCE_ATTEMPT.match(line):
                raise PluginError(
                    f"docs/{page.file.src_uri}:{lineno}: malformed source reference "
                    f"{line.strip()!r}; "
                    "write it alone on its line as "
                    '{{ source("package.module:Qual.name") }}'
                )
            out.append(line)
            continue
        ref = m.group("ref")
        try:
            caption, code = render_source(ref)
        except LookupError as exc:
            raise PluginError(
                f"docs/{page.file.src_uri}:{lineno}: unknown source reference {ref!r}: "
                f"{exc}"
            ) from None
        if out and out[-1].strip():
            out.append("")  # the caption must start a new paragraph
        out.extend(_block(m.group("indent"), caption, code))
        changed = True
    return "\n".join(out) if changed else markdown
