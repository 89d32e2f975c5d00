import dataclasses
import json
import sys

import torch

from diffusion_lessons.lesson04_unet import UNetConfig
from diffusion_lessons.lesson05_training import PRESETS, load_trained, train
from diffusion_lessons.lesson06_sampling import digit_labels, sample

name = sys.argv[1]
overrides = json.loads(sys.argv[2])
if "model" in overrides:
    overrides["model"] = UNetConfig(
        **{**overrides["model"], "channels": tuple(overrides["model"]["channels"])}
    )
cfg = dataclasses.replace(
    PRESETS["small"],
    dataset="mnist-5k",
    threads=1,
    checkpoint_every=10**6,
    sample_every=10**6,
    **overrides,
)
r = train(cfg, f"runs/recipe/{name}", progress=False)
m, s, _ = load_trained(f"runs/recipe/{name}/checkpoint.pt")
cls = torch.load("runs/recipe/cls.pt", weights_only=False)
labels = digit_labels("0123456789", 30)
x = sample(m, s, labels, steps=50, generator=torch.Generator().manual_seed(0))
acc = (cls(x).argmax(1) == labels).float().mean().item()
print(
    json.dumps(
        {
            "name": name,
            "acc": acc,
            "loss": sum(r["losses"][-200:]) / 200,
            "ips": r["images_per_second"],
            "sec": r["seconds"],
        }
    ),
    flush=True,
)
