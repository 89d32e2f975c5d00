"""Time to quality of the ``full`` preset on a GPU.

Run:  python benchmarks/gpu_full.py [--minutes 7] [--every 4000] [--seed 0]
          [--out-dir DIR] [--name gpu_full]

Trains the ``full`` preset on mnist-5k on the GPU, exactly as ``diffusion-lessons
train --preset full --dataset mnist-5k`` does, but with EMA snapshots every
``--every`` steps (the preset saves one every 5,000; snapshots do not change the
weights). At every snapshot it draws 100 digits of each class (DDIM 50 steps, the
course's default sampler settings, sampling seed 0) at several guidance weights and
measures against the 1,000 held-out digits of mnist-5k what
``benchmarks/recipe/quality.py`` measures on the CPU: accuracy (per class too), the
Fréchet classifier distance beside its floor at the same n, and background haze.
Evaluation happens between steps and is not counted in the training time.

Training stops at the preset's last step or after ``--minutes`` of wall-clock time
(the course's own Ctrl-C path: finish the step, save, stop); the EMA weights it stops
with are measured too. Writes ``gpu_full.md`` and ``gpu_full.json`` to ``--out-dir``
(default benchmarks/results/). The project does not need a GPU; this measures what
one buys.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "recipe"))
from quality import frechet_floor_heldout  # noqa: E402

from diffusion_lessons.data import load_digits  # noqa: E402
from diffusion_lessons.lesson02_schedules import make_schedule  # noqa: E402
from diffusion_lessons.lesson04_unet import UNet  # noqa: E402
from diffusion_lessons.lesson05_training import (  # noqa: E402
    PRESETS,
    eps_model,
    load_trained,
    train,
)
from diffusion_lessons.lesson06_sampling import digit_labels, sample  # noqa: E402
from diffusion_lessons.lesson07_classifier import (  # noqa: E402
    background_haze,
    classifier_report,
    feature_stats,
    frechet_distance,
    load_classifier,
)
from diffusion_lessons.lesson09_guidance import RECOMMENDED_W, GuidedModel  # noqa: E402

WEIGHTS = (0.0, 0.25, 0.35, 0.5)  # guidance weights measured at every snapshot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=7.0)
    parser.add_argument("--every", type=int, default=4000)
    parser.add_argument("--preset", default="full", help="a smaller one to try it out")
    parser.add_argument("--steps", type=int, help="default: the preset's")
    parser.add_argument(
        "--seed",
        type=int,
        help="training seed (default: the preset's, 0); a second "
        "seed with --name gpu_full_s1 shows how far one run is from another",
    )
    parser.add_argument("--device", default="cuda", help="cpu only to try it out")
    parser.add_argument("--per-digit", type=int, default=100)
    parser.add_argument("--out-dir", default="benchmarks/results")
    parser.add_argument("--name", default="gpu_full", help="stem of the result files")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_full.py measures a GPU, and PyTorch sees none here.")
    started = time.perf_counter()
    cfg = dataclasses.replace(
        PRESETS[args.preset], dataset="mnist-5k", sample_every=args.every
    )
    if args.steps:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    classifier = load_classifier()
    held_x, _ = load_digits("mnist-5k", "test")  # (1000, 1, 28, 28)
    labels = digit_labels("0123456789", args.per_digit)
    reference = feature_stats(classifier, held_x)
    floor, floor_n = frechet_floor_heldout(
        classifier, load_digits("mnist-5k", "train")[0], reference, len(labels)
    )
    schedule = make_schedule(cfg.schedule, cfg.model.T)
    rows: list[dict] = []

    def evaluate(step: int, model) -> None:
        row = {"step": step, "train_seconds": None, "w": {}}
        for w in WEIGHTS:
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                x = sample(
                    GuidedModel(model, w), schedule, labels, steps=50, generator=g
                )
            x = x.float().cpu()
            rep = classifier_report(classifier, x, labels)
            fd = frechet_distance(*feature_stats(classifier, x), *reference)
            row["w"][f"{w:g}"] = {
                "accuracy": rep["accuracy"],
                "per_class": rep["per_class"],
                "fd": fd,
                "fd_ratio": fd / floor,
                "haze": background_haze(x)["above"],
            }
        rows.append(row)
        rec = row["w"][f"{RECOMMENDED_W:g}"]
        print(
            f"step {step:6d}  {time.perf_counter() - started:6.0f} s wall  w0 "
            f"{row['w']['0']['accuracy']:.1%}  w{RECOMMENDED_W:g} {rec['accuracy']:.1%}"
            f"  FD/floor {rec['fd_ratio']:.2f}  haze {rec['haze']:.1%}",
            flush=True,
        )
        partial = {"floor": floor, "rows": rows}  # kept if the run is cut short
        (out / f"{args.name}_partial.json").write_text(json.dumps(partial, indent=1))

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # a mistake on the GPU shows in seconds, not after the first snapshot
    preflight = UNet(cfg.model).to(args.device).eval()
    evaluate(0, eps_model(preflight, cfg, schedule))
    rows.clear()
    # at the deadline, the course's Ctrl-C path: finish the step, save, stop
    left = 60 * args.minutes - (time.perf_counter() - started)
    timer = threading.Timer(left, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        result = train(cfg, run, device=args.device, callback=evaluate)
        timer.cancel()
        if not rows or rows[-1]["step"] != result["step"]:  # stopped between snapshots
            model, _, _ = load_trained(run / "checkpoint.pt", device=args.device)
            evaluate(result["step"], model)
            rows[-1]["train_seconds"] = result["seconds"]
        for row in rows:  # the loop's own clock: seconds spent in training steps
            snap = run / "snapshots" / f"ema_{row['step']:06d}.pt"
            if snap.exists():
                row["train_seconds"] = torch.load(snap, weights_only=True)["seconds"]
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    report = {
        "gpu": gpu,
        "preset": args.preset,
        "torch": torch.__version__,
        "config": {k: v for k, v in cfg.__dict__.items() if k != "model"},
        "model": dataclasses.asdict(cfg.model),
        "n": len(labels),
        "floor": floor,
        "floor_n": floor_n,
        "real_haze": background_haze(held_x)["above"],
        "steps_done": result["step"],
        "train_seconds": result["seconds"],
        "train_minutes": result["seconds"] / 60,
        "images_per_second": result["images_per_second"],
        "stopped": result["stopped"],
        "recommended_w": RECOMMENDED_W,
        "command": command(sys.argv[1:]),
        "rows": rows,
    }
    report["first_meeting"] = {
        w: next(
            (
                r["step"]
                for r in rows
                if r["w"][w]["accuracy"] >= 0.99 and r["w"][w]["fd"] <= 1.2 * floor
            ),
            None,
        )
        for w in rows[0]["w"]
    }
    (out / f"{args.name}_partial.json").unlink()
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    (out / f"{args.name}.md").write_text(markdown(report))
    print((out / f"{args.name}.md").read_text())


def command(argv: list[str]) -> str:
    """The command line that made a result, without where its files went."""
    kept, skip = [], False
    for a in argv:
        if skip or a == "--out-dir":
            skip = not skip
            continue
        kept.append(a)
    return " ".join(["python benchmarks/gpu_full.py", *kept])


def markdown(r: dict) -> str:
    ws = list(r["rows"][0]["w"])
    head = "| step | training time (s) | " + " | ".join(
        f"w = {w}: accuracy, FD/floor" for w in ws
    )
    lines = [head + " |", "|---:|---:|" + "---:|" * len(ws)]
    for row in r["rows"]:
        cells = [
            f"{row['w'][w]['accuracy']:.1%}, {row['w'][w]['fd'] / r['floor']:.2f}"
            for w in ws
        ]
        lines.append(
            f"| {row['step']:,} | {row['train_seconds']:.0f} | "
            + " | ".join(cells)
            + " |"
        )
    met = ", ".join(
        f"w = {w}: {'step ' + format(s, ',') if s else 'not reached'}"
        for w, s in r["first_meeting"].items()
    )
    last = r["rows"][-1]["w"][f"{r['recommended_w']:g}"]
    worst = min(last["per_class"])
    lines += [
        "",
        f"*Preset `{r['preset']}` ({r['config']['prediction']} prediction) on one "
        f"{r['gpu']} "
        f"(PyTorch {r['torch']}), mnist-5k: {r['steps_done']:,} steps in "
        f"{r['train_seconds']:.0f} s of training ({r['images_per_second']:,.0f} "
        f"images/s; {r['stopped']}; training seed {r['config']['seed']}). "
        f"{r['n']:,} samples per cell (DDIM 50, seed 0), "
        "read by checkpoints/classifier.pt; Fréchet distance to the 1,000 held-out "
        f"digits over its floor at the same n ({r['floor']:.1f}). First snapshot with "
        f"≥ 99 % and FD ≤ 1.2 × floor: {met}. Last snapshot at w = "
        f"{r['recommended_w']:g}: worst class {worst:.0%}, background haze "
        f"{last['haze']:.1%} (real digits {r['real_haze']:.1%}). Made by "
        f"`{r['command']}`.*",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
