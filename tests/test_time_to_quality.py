"""benchmarks/time_to_quality.py reads a run's EMA snapshots: it must sample them as
lesson 05's ``load_trained`` would, as noise predictors, whatever the run predicted.
"""

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

from diffusion_lessons.lesson04_unet import UNet
from diffusion_lessons.lesson05_training import PRESETS, ema_snapshot, load_trained

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "time_to_quality.py"
spec = importlib.util.spec_from_file_location("time_to_quality", SCRIPT)
time_to_quality = importlib.util.module_from_spec(spec)
spec.loader.exec_module(time_to_quality)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_a_snapshot_is_sampled_as_the_trained_model_is(tmp_path, prediction):
    cfg = dataclasses.replace(PRESETS["tiny"], prediction=prediction)
    torch.manual_seed(0)
    net = UNet(cfg.model).eval()
    path = tmp_path / "ema_000010.pt"
    torch.save(ema_snapshot(net, 10, 1.5, cfg), path)

    model, schedule, state = time_to_quality.load_snapshot(path)
    reference, _, _ = load_trained(path)  # the course's loader, as lessons 06-10 use
    assert state["step"] == 10 and schedule.T == cfg.model.T

    g = torch.Generator().manual_seed(1)
    xt = torch.randn((4, 1, 28, 28), generator=g)
    t, labels = torch.tensor([1, 300, 700, 1000]), torch.tensor([0, 3, 7, 9])
    with torch.no_grad():
        eps = model(xt, t, labels)
        assert torch.equal(eps, reference(xt, t, labels))
        # a v network's raw output is not its noise prediction
        assert torch.equal(eps, net(xt, t, labels)) == (prediction == "eps")
