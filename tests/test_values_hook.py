"""The docs hook that takes numbers from result files (docs/hooks/values.py)."""

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mkdocs.exceptions import PluginError

HOOK = Path(__file__).parents[1] / "docs" / "hooks" / "values.py"
spec = importlib.util.spec_from_file_location("values_hook", HOOK)
values = importlib.util.module_from_spec(spec)
spec.loader.exec_module(values)


def render(tmp_path, markdown, data):
    (tmp_path / "r.json").write_text(json.dumps(data))
    values.on_pre_build(None)
    page = SimpleNamespace(file=SimpleNamespace(src_path="page.md"))
    return values.on_page_markdown(
        markdown, page, SimpleNamespace(docs_dir=str(tmp_path)), None
    )


@given(st.floats(0, 1))
def test_pct_is_the_fraction_times_100_with_a_space(x):
    text = values.format_value(x, "pct1")
    assert text.endswith(" %")
    assert float(text[:-2]) == pytest.approx(100 * x, abs=0.05 + 1e-9)


@given(st.floats(1e-300, 1e300) | st.floats(-1e300, -1e-300), st.integers(0, 4))
def test_tex_is_scientific_notation_that_reads_back(x, digits):
    text = values.format_value(x, f"tex{digits}")
    mantissa, power = text.split("\\times 10^")
    assert power.startswith("{") and power.endswith("}")
    assert 1 <= abs(float(mantissa)) < 10 or float(mantissa) in (10.0, -10.0)
    back = float(mantissa) * 10 ** int(power[1:-1])
    assert back == pytest.approx(x, rel=10**-digits)


def test_values_are_replaced_outside_code_only(tmp_path):
    md = (
        'A {{ value("r.json", "a.b.1", ".1f") }} s and '
        '{{ value("r.json", "acc", "pct1") }}.\n'
        '```\n{{ value("r.json", "acc") }}\n```'
    )
    out = render(tmp_path, md, {"a": {"b": [0, 2.25]}, "acc": 0.905})
    assert out.splitlines()[0] == "A 2.2 s and 90.5 %."
    assert '{{ value("r.json", "acc") }}' in out  # shown literally inside a fence


@pytest.mark.parametrize(
    "ref, words",
    [
        ('"missing.json", "a"', "no file docs/missing.json"),
        ('"r.json", "nope"', "no entry"),
        ('"r.json", "acc", "d"', "cannot format"),
    ],
)
def test_a_bad_reference_fails_the_build_naming_it(tmp_path, ref, words):
    with pytest.raises(PluginError, match=words) as err:
        render(tmp_path, "x\n{{ value(" + ref + ") }}", {"acc": 0.5})
    assert "page.md:2" in str(err.value)


DOCS = HOOK.parents[1]


@pytest.mark.parametrize(
    "page", sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
)
def test_every_value_in_every_page_resolves(page):
    """Each value() of a page names a generated file and an entry that exist, and the
    spec formats it: the check the docs build makes, without the build.
    """
    values.on_pre_build(None)
    text = (DOCS / page).read_text()
    out = values.on_page_markdown(
        text,
        SimpleNamespace(file=SimpleNamespace(src_path=page)),
        SimpleNamespace(docs_dir=str(DOCS)),
        None,
    )
    assert text.count("{{ value(") == 0 or out != text
