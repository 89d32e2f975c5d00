"""The tour (the README's main job) runs end to end on reduced settings and writes what
it promises.
"""

import json

from diffusion_lessons import LESSONS
from diffusion_lessons.cli import main


def test_tour_quick_writes_figures_and_summary(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # lesson 05 trains into ./runs/
    main(["tour", "--quick", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [s["n"] for s in summary["lessons"]] == sorted(LESSONS)
    for section in summary["lessons"]:
        assert section["numbers"], f"lesson {section['n']} reported no numbers"
        for fig in section["figures"]:
            assert (tmp_path / fig).stat().st_size > 1000
    md = (tmp_path / "summary.md").read_text()
    assert "Lesson 05 trained the tiny preset" in md and "shipped checkpoint" in md
    for n in LESSONS:
        assert any(p.name.startswith(f"{n:02d}_") for p in tmp_path.iterdir()), (
            f"no figure from lesson {n}"
        )
    html = (tmp_path / "summary.html").read_text()
    assert html.count("<img") == sum(len(s["figures"]) for s in summary["lessons"])


def test_tour_subset(tmp_path):
    main(["tour", "--quick", "--lessons", "1-2", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [s["n"] for s in summary["lessons"]] == [1, 2]
    assert "shipped checkpoint" not in (tmp_path / "summary.md").read_text()
