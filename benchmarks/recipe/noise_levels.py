"""Noise levels: which steps t training draws, uniform or log-normal in sigma(t).

Karras et al. 2022 (EDM) draw the noise level of each training image from a log-normal,
ln sigma ~ N(P_mean, P_std^2) with P_mean = -1.2, P_std = 1.2, and weight the loss so
that the network's own output has unit weight. In lesson 02's terms an image at step t
has sigma(t) = sqrt((1 - alpha_bar_t) / alpha_bar_t) (x_t / sqrt(alpha_bar_t) = x0 +
sigma eps), so a drawn sigma becomes the first step whose sigma(t) reaches it: lesson
05's ``draw_steps`` (eq. 5.8), ``TrainConfig.noise_levels``. EDM's preconditioning with
sigma_data = 1 is lesson 05's v-prediction (eq. 5.6), and its weight is then the plain
v loss: the lever is '{"prediction": "v", "min_snr_gamma": null, "noise_levels":
"edm"}'. (EDM's sigma_data = 0.5 would need another output scaling; not measured.)

The same log-normal with other numbers moves the draws between EDM's and uniform t, or
beyond uniform towards high noise, with the recipe's loss kept:
'"noise_levels": {"p_mean": -0.4, "p_std": 1.4}' (median t about 370; uniform: 500,
EDM's: 180) or {"p_mean": 0.4, "p_std": 1.4} (median about 620; the small preset's).

Run:  .venv/bin/python benchmarks/recipe/noise_levels.py
writes these facts for the log-normals measured (benchmarks/results/recipe/
noise_levels.json): median t and the share of draws below t = 100 and above t = 500,
from 10^6 draws on the small preset's schedule.
"""

from __future__ import annotations

import torch

from diffusion_lessons.lesson05_training import draw_steps

P_MEAN, P_STD = -1.2, 1.2


#: the log-normals measured (lognormal_v.md, edm_v.md) by name
MEASURED = {
    "edm": (P_MEAN, P_STD),
    "lower-t": (-0.4, 1.4),
    "higher-t": (0.4, 1.4),
}


def facts(schedule, n: int = 10**6) -> dict:
    """Median t and shares below t = 100 / above t = 500: uniform and MEASURED."""
    g = torch.Generator().manual_seed(0)
    draws = {"uniform": draw_steps(schedule, n, g)}
    for name, (p_mean, p_std) in MEASURED.items():
        draws[name] = draw_steps(schedule, n, g, (p_mean, p_std))
    return {
        name: {
            "median_t": int(t.median()),
            "below_100": float((t < 100).double().mean()),
            "above_500": float((t > 500).double().mean()),
        }
        for name, t in draws.items()
    }


if __name__ == "__main__":
    import json
    from pathlib import Path

    from diffusion_lessons.lesson02_schedules import make_schedule
    from diffusion_lessons.lesson05_training import PRESETS

    cfg = PRESETS["small"]
    out = (
        Path(__file__).resolve().parents[1] / "results" / "recipe" / "noise_levels.json"
    )
    out.write_text(
        json.dumps(facts(make_schedule(cfg.schedule, cfg.model.T)), indent=1)
    )
    print(out.read_text())
