"""MkDocs hook: numbers in the prose come from the generated result files.

Anywhere in a page (outside fenced code blocks),

    {{ value("figures/lesson_times.json", "lessons.1.seconds", ".1f") }}

is replaced by that entry of the JSON file (a path relative to docs/), formatted with
the Python format spec given (default: the value as it is). The spec ``pct1`` (``pct0``,
``pct2``) writes a fraction as a percentage with that many decimals and a space before
the sign, the book's style: 0.905 -> "90.5 %". The spec ``tex2`` (``tex1``, ...) writes
a number in scientific notation for use inside math, 2.43e-09 -> "2.43\\times 10^{-9}".
The key is a dotted path; a part that is
a whole number also indexes a list.

A missing file, a missing key or a bad spec fails the build with the page, the line and
the reference, so a number on the site is never retyped by hand and never goes stale
silently: regenerate the file and the page follows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mkdocs.exceptions import PluginError

VALUE = re.compile(
    r"""\{\{\s*value\(\s*(["'])(?P<file>[^"']+)\1\s*,\s*(["'])(?P<key>[^"']+)\3"""
    r"""\s*(?:,\s*(["'])(?P<spec>[^"']*)\5\s*)?\)\s*\}\}"""
)
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")

_cache: dict[Path, object] = {}


def _lookup(data, key: str):
    for part in key.split("."):
        if isinstance(data, list) and part.lstrip("-").isdigit():
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            raise KeyError(part)
    return data


def format_value(value, spec: str | None) -> str:
    """The value written with ``spec`` (a format spec, or pctN for a percentage)."""
    if not spec:
        return str(value)
    if spec.startswith("pct"):
        return f"{100 * float(value):.{int(spec[3:] or 0)}f} %"
    if spec.startswith("tex"):
        mantissa, exponent = f"{float(value):.{int(spec[3:] or 0)}e}".split("e")
        return f"{mantissa}\\times 10^{{{int(exponent)}}}"
    return format(value, spec)


def value_of(docs_dir: Path, file: str, key: str, spec: str | None) -> str:
    path = (docs_dir / file).resolve()
    if path not in _cache:
        _cache[path] = json.loads(path.read_text())
    return format_value(_lookup(_cache[path], key), spec)


def on_pre_build(config, **kwargs):
    _cache.clear()  # `mkdocs serve` re-reads files that were regenerated


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    docs_dir = Path(config.docs_dir)
    fence = None
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if m:
            marker = m.group(1)
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
            continue
        if fence or "value(" not in line:
            continue

        def replace(match, lineno=i + 1):
            ref = f"{match.group('file')}:{match.group('key')}"
            try:
                return value_of(
                    docs_dir,
                    match.group("file"),
                    match.group("key"),
                    match.group("spec"),
                )
            except FileNotFoundError:
                reason = f"no file docs/{match.group('file')}"
            except KeyError as err:
                reason = f"no entry {err} in it"
            except (TypeError, ValueError) as err:
                reason = f"cannot format it: {err}"
            raise PluginError(
                f"{page.file.src_path}:{lineno}: value {ref}: {reason}. Regenerate the "
                "file with the command named beside the number, or fix the reference."
            )

        lines[i] = VALUE.sub(replace, line)
    return "\n".join(lines)
