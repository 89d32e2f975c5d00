"""Lesson 05's training loop on N processes with DistributedDataParallel (lesson 10).

Chapter: docs/lessons/10-going-further.md

``torchrun --nproc_per_node N -m diffusion_lessons train ...`` starts N processes; each
reads its rank r (0..N-1) and N from the environment. At every step all of them build
the SAME global batch of B examples (lesson 05's ``batch_indices``) and draw the same t,
eps and label dropout from the same generator; process r keeps rows r B/N .. (r+1) B/N
- 1 and computes the loss of its shard only:

    (10.5)   L_r = (N / B) sum_{i in shard r} lambda_i || eps_i - eps_theta(x_t,i, t_i,
                y_i) ||^2
    (10.6)   g = (1/N) sum_r grad L_r = grad ( (1/B) sum_i lambda_i || ... ||^2 )

DDP's all-reduce computes the mean (10.6) during ``backward``: every process then holds
the gradient of the single-process loss (eq. 5.2, lambda_i from eq. 5.5) on the whole
batch, up to the order of floating-point additions, and takes the same AdamW step. Only
rank 0 keeps the EMA (eq. 5.3) and writes checkpoints, in lesson 05's format; a
checkpoint holds no per-process state, so a run may resume on any number of processes.

Builds on: lesson05_training (the loop's pieces), lesson01_forward_noise (q_sample),
lesson02_schedules (make_schedule), lesson04_unet (UNet), data (load_digits).
"""

from __future__ import annotations

import copy
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from .data import load_digits
from .lesson01_forward_noise import q_sample
from .lesson02_schedules import Schedule, make_schedule
from .lesson04_unet import UNet, count_parameters
from .lesson05_training import (
    TrainConfig,
    batch_indices,
    draw_steps,
    drop_labels,
    ema_snapshot,
    ema_update,
    eps_model,
    fit_to_data,
    learning_rate,
    per_image_loss,
    resolve_device,
    resumable,
    resume_from,
    save_checkpoint,
    training_state,
    use_bf16,
)
from .runs import RunFolderError


def world() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) otherwise."""
    env = os.environ
    return (
        int(env.get("RANK", 0)),
        int(env.get("WORLD_SIZE", 1)),
        int(env.get("LOCAL_RANK", 0)),
    )


def shard(batch_size: int, rank: int, nproc: int) -> slice:
    """Rows of the global batch that process ``rank`` of ``nproc`` computes."""
    if batch_size % nproc:
        raise ValueError(
            f"The batch of {batch_size} does not split into {nproc} equal shards; use "
            f"a --nproc_per_node that divides {batch_size}."
        )
    per = batch_size // nproc
    return slice(rank * per, (rank + 1) * per)


def shard_loss(
    model,
    x0: torch.Tensor,
    labels: torch.Tensor,
    schedule: Schedule,
    rows: slice,
    p_uncond: float = 0.1,
    generator: torch.Generator | None = None,
    min_snr_gamma: float | None = None,
    prediction: str = "eps",
    noise_levels: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Eq. 10.5: lesson 05's loss on the ``rows`` of the global batch x0 (B, C, H, W).

    The random draws are those of ``training_loss`` for the whole batch, in its order,
    so every process consumes the generator identically and sees the noise a single
    process would.
    """
    B = x0.shape[0]
    t = draw_steps(schedule, B, generator, noise_levels)  # (B,) eq. 5.1 or 5.8
    eps = torch.randn(x0.shape, generator=generator)  # (B, C, H, W)
    labels = drop_labels(
        labels.cpu(), p_uncond, model_config(model).num_classes, generator
    )
    dev = x0.device
    t, eps, labels = t[rows].to(dev), eps[rows].to(dev), labels[rows].to(dev)
    xt = q_sample(x0[rows], t, schedule, eps=eps)  # eq. 5.1, shard only
    pred = model(xt, t, labels)  # (B/N, C, H, W): eps, or v
    loss = per_image_loss(pred, x0[rows], eps, t, schedule, min_snr_gamma, prediction)
    return loss.mean()  # eq. 10.5: the mean over the shard


def model_config(model):
    """The UNetConfig inside a plain, DDP-wrapped or compiled model."""
    while not hasattr(model, "config"):
        model = getattr(model, "module", None) or model._orig_mod
    return model.config


def train_distributed(
    cfg: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    device: str = "auto",
    callback=None,
    progress: bool = True,
    compile: bool | None = None,
    until: int | None = None,
) -> dict:
    """Lesson 05's ``train`` on every process that torchrun started (same arguments).

    ``compile``: wrap the model in ``torch.compile`` (default: the environment variable
    DIFFUSION_LESSONS_COMPILE=1). ``until``: stop (with a checkpoint) at this step, to
    continue later with ``resume``. Returns what ``train`` returns, on every rank.
    """
    rank, nproc, local = world()
    if (Path(out) / "checkpoint.pt").exists() and not resume:  # every rank refuses
        raise RunFolderError(
            f"{out} already holds a training run. Continue it with --resume, or start "
            "again with a new --out."
        )
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if dev.type == "cuda" else "gloo", timeout=timedelta(minutes=10)
        )
    rows = shard(cfg.batch_size, rank, nproc)
    torch.set_num_threads(
        max(1, cfg.threads // max(1, nproc)) if dev.type == "cpu" else cfg.threads
    )
    out, ckpt = Path(out), Path(out) / "checkpoint.pt"
    x0_all, labels_all = load_digits(cfg.dataset, split="train")
    cfg = fit_to_data(cfg, x0_all)
    x0_all = x0_all.to(dev)
    schedule = make_schedule(cfg.schedule, cfg.model.T)
    torch.manual_seed(cfg.seed)
    model = UNet(cfg.model).to(dev)
    ema = copy.deepcopy(model).requires_grad_(False) if rank == 0 else None
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    gen = torch.Generator().manual_seed(cfg.seed)  # the same on every process
    step, losses, seconds = 0, [], 0.0
    if resume:  # every process reads the one checkpoint, checked as in lesson 05
        state = resumable(ckpt, cfg)
        # only rank 0 keeps an EMA; the others load it into a copy they then drop
        keep = ema if ema is not None else copy.deepcopy(model)
        resume_from(state, ckpt, cfg, model, keep, opt, gen)
        step, losses, seconds = state["step"], list(state["losses"]), state["seconds"]
        if rank == 0:
            print(f"Resuming {ckpt} at step {step}/{cfg.steps} on {nproc} processes.")
    net = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if (
        compile
        if compile is not None
        else os.environ.get("DIFFUSION_LESSONS_COMPILE") == "1"
    ):
        net = torch.compile(net)
    bf16 = use_bf16(cfg.precision, dev)
    if rank == 0:
        print(
            f"Training {count_parameters(model):,} parameters on {nproc} processes "
            f"({dist.get_backend()}, {dev.type}), batch {cfg.batch_size} = {nproc} x "
            f"{cfg.batch_size // nproc}, {'bf16 autocast' if bf16 else 'fp32'}."
        )

    def snapshot() -> dict:  # lesson 05's checkpoint, plus the number of processes
        state = training_state(model, ema, opt, gen, step, losses, seconds, cfg)
        return {**state, "processes": nproc}

    stopped, last = "finished", min(cfg.steps, until or cfg.steps)
    try:
        while step < last:
            tick = time.perf_counter()
            idx = batch_indices(step, len(x0_all), cfg.batch_size, cfg.seed)
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, cfg)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                loss = shard_loss(
                    net,
                    x0_all[idx.to(dev)],
                    labels_all[idx],
                    schedule,
                    rows,
                    cfg.p_uncond,
                    gen,
                    cfg.min_snr_gamma,
                    cfg.prediction,
                    cfg.noise_levels,
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages the gradients here (eq. 10.6)
            mean_loss = loss.detach().float().clone()
            dist.all_reduce(mean_loss)  # for the log: the whole batch's loss
            mean_loss = mean_loss.item() / nproc
            if not torch.isfinite(torch.tensor(mean_loss)):
                stopped = f"loss became {mean_loss} at step {step}"
                break
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if rank == 0:  # short EMA memory early on, as in lesson 05
                ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
            step += 1
            seconds += time.perf_counter() - tick
            losses.append(mean_loss)
            if rank == 0:
                if progress and (step % 50 == 0 or step == cfg.steps):
                    print(f"step {step}/{cfg.steps}  loss {mean_loss:.4f}", flush=True)
                if step % cfg.checkpoint_every == 0 or step in (last, cfg.steps):
                    save_checkpoint(ckpt, snapshot())
                if step % cfg.sample_every == 0 or step == cfg.steps:
                    save_checkpoint(
                        out / "snapshots" / f"ema_{step:06d}.pt",
                        ema_snapshot(ema, step, seconds, cfg),
                    )
                    if callback is not None:
                        callback(step, eps_model(ema.eval(), cfg, schedule))
    except KeyboardInterrupt:
        stopped = "interrupted"
        if rank == 0:
            print(
                f"\nInterrupted; the last checkpoint in {ckpt} is kept: add --resume."
            )
    finally:
        if stopped == "finished" and step == last:  # not after an error: no deadlock
            dist.barrier()  # no process leaves before rank 0 has written
        dist.destroy_process_group()
    ips = step * cfg.batch_size / seconds if seconds else 0.0
    if rank == 0:
        print(
            f"{step} steps in {seconds:.0f} s ({ips:.0f} images/s on {nproc} processes)"
        )
    return {
        "losses": losses,
        "step": step,
        "seconds": seconds,
        "images_per_second": ips,
        "stopped": stopped,
    }


# ---------------------------------------------------------------------------
# Starting N processes without torchrun (tests, the lesson's run, notebooks)
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, nproc: int, port: int, cfg, out, resume, until) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(nproc),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    train_distributed(
        cfg, out, resume=resume, device="cpu", progress=False, until=until
    )


def spawn_local(
    nproc: int,
    cfg: TrainConfig,
    out: str | Path,
    resume: bool = False,
    until: int | None = None,
) -> None:
    """Train ``cfg`` on ``nproc`` local CPU processes (gloo), as torchrun would."""
    import torch.multiprocessing as mp

    mp.spawn(
        _worker, args=(nproc, free_port(), cfg, str(out), resume, until), nprocs=nproc
    )
