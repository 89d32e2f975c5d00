"""`diffusion-lessons figures` keeps what each lesson printed (NN_output.txt) and the
numbers its run() returned (NN_run.json), which the chapters quote with value().
"""

import json
import math
import types
from pathlib import Path

import numpy as np
import torch

import diffusion_lessons.cli as cli
from diffusion_lessons.runs import json_ready, write_json


def fake_lesson(out, quick=False):
    print("accuracy 97.5%")
    return {
        "accuracy": torch.tensor(0.975),
        "per_class": torch.tensor([0.5, 1.0]),
        "confusion": np.array([[1, 0], [0, 2]]),
        "floor": (95.64, 100),
        "first50": {0: 0.25, 1: None},
        "nan": math.nan,
        "files": [Path(out) / "01_fake.png"],
        "model": torch.nn.Linear(2, 2),  # no JSON form: left out
    }


def test_figures_writes_the_output_and_the_run_json(tmp_path, monkeypatch, capsys):
    module = types.SimpleNamespace(run=fake_lesson)
    monkeypatch.setattr(cli, "lesson_module", lambda n: module)
    cli.main(["figures", "--lessons", "1", "--out", str(tmp_path)])
    assert "accuracy 97.5%" in (tmp_path / "01_output.txt").read_text()
    data = json.loads((tmp_path / "01_run.json").read_text())
    assert data["accuracy"] == torch.tensor(0.975).item()
    assert data["per_class"] == [0.5, 1.0]
    assert data["confusion"] == [[1, 0], [0, 2]]
    assert data["floor"] == [95.64, 100]
    assert data["first50"] == {"0": 0.25, "1": None}
    assert data["nan"] is None
    assert data["files"] == [str(tmp_path / "01_fake.png")]
    assert "model" not in data
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file was left behind"


def test_json_ready_keeps_list_positions_and_replaces_a_file_whole(tmp_path):
    assert json_ready([1, object(), float("inf")]) == [1, None, None]
    path = write_json(tmp_path / "x.json", {"a": 1})
    write_json(path, {"b": torch.arange(3)})
    assert json.loads(path.read_text()) == {"b": [0, 1, 2]}
    assert path.stat().st_mode & 0o777 == 0o644
