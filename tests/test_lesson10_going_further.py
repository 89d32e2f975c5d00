"""Going further (lesson 10): diffusers' schedulers drive our U-Net and reproduce lesson
06's samplers; the training loop on 2 processes (gloo) equals one process and resumes on
any number of processes.
"""

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffusion_lessons.distributed import free_port, shard, shard_loss, spawn_local
from diffusion_lessons.lesson02_schedules import make_schedule
from diffusion_lessons.lesson04_unet import UNet, UNetConfig
from diffusion_lessons.lesson05_training import (
    PRESETS,
    load_checkpoint,
    train,
    training_loss,
)
from diffusion_lessons.lesson06_sampling import sample, sampling_timesteps
from diffusion_lessons.lesson09_guidance import GuidedModel, guided_eps
from diffusion_lessons.lesson10_going_further import (
    course_sample,
    course_t,
    diffusers_guidance,
    guidance_scale,
    guidance_weight,
)

# diffusers' Euler scheduler calls np.array on a tensor (its own code, harmless)
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"
)
ROOT = Path(__file__).resolve().parents[1]
MICRO = UNetConfig(channels=(8, 16), emb_dim=16, groups=4, T=100)
LABELS = torch.tensor([0, 3, 5, 7, 9, 10])  # 10 is ∅


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return UNet(MICRO).eval()


def needs_diffusers():
    return pytest.importorskip(
        "diffusers",
        reason="diffusers is an optional extra: pip install -e '.[diffusers]'",
    )


# ---------------------------------------------------------------------------
# Conventions (no diffusers needed)
# ---------------------------------------------------------------------------


@given(w=st.floats(-1, 20), seed=st.integers(0, 2**31))
def test_guidance_scale_is_one_plus_w(w, seed):
    """Eq. 10.3: diffusers' combination with s = 1 + w is lesson 09's eq. 9.1."""
    assert guidance_weight(guidance_scale(w)) == pytest.approx(w)
    torch.manual_seed(seed)
    net = UNet(MICRO).eval()
    xt, t, y = (
        torch.randn(3, 1, 28, 28),
        torch.tensor([1, 50, 100]),
        torch.tensor([1, 2, 3]),
    )
    with torch.no_grad():
        ours = guided_eps(net, xt, t, y, w)
        cond, uncond = net(xt, t, y), net(xt, t, torch.full_like(y, 10))
    theirs = diffusers_guidance(cond, uncond, guidance_scale(w))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * (1 + abs(w)))


@given(k=st.integers(0, 10_000))
def test_timestep_k_is_our_t_minus_one(k):
    assert course_t(k) == k + 1 and course_t(torch.tensor(k)) == k + 1
    assert course_t(float(k)) == k + 1


def test_fractional_timesteps_are_refused():
    with pytest.raises(ValueError, match="trailing"):
        course_t(10.5)


@pytest.mark.parametrize("steps", [1, 7, 100])
def test_course_sample_on_lesson06_steps_is_lesson06(model, steps):
    """course_sample is lesson 06's sampler: bit for bit, on its own timesteps."""
    sch = make_schedule("cosine", MICRO.T)
    ts = sampling_timesteps(MICRO.T, steps)
    for eta in (0.0, 1.0):
        ours = course_sample(
            model, sch, LABELS, ts, eta=eta, generator=torch.Generator().manual_seed(2)
        )
        ref = sample(
            model,
            sch,
            LABELS,
            steps=steps,
            eta=eta,
            t_min=1,  # the whole chain, as sampling_timesteps gives it
            precision="fp32",
            generator=torch.Generator().manual_seed(2),
        )
        assert torch.equal(ours, ref)


# ---------------------------------------------------------------------------
# diffusers drives our model
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cosine", "linear"])
@pytest.mark.parametrize("steps", [5, 10, 20, 100])
def test_diffusers_ddim_reproduces_lesson06(model, name, steps):
    """Same timesteps, same noise, float32: DDIM (eta = 0) agrees to ~1e-5. The rest
    is float32 rounding: diffusers keeps alpha_bar as a float32 cumulative product,
    we keep float64 (test below)."""
    needs_diffusers()
    from diffusion_lessons.lesson10_going_further import (
        diffusers_sample,
        make_scheduler,
    )

    sch = make_schedule(name, MICRO.T)
    ddim = make_scheduler("ddim", sch)
    for w in (0.0, 2.0):
        theirs, nfe = diffusers_sample(
            model,
            sch,
            LABELS,
            ddim,
            steps,
            w=w,
            precision="fp32",
            generator=torch.Generator().manual_seed(1),
        )
        ts = [course_t(k) for k in ddim.timesteps]
        assert nfe == steps and ts[0] == MICRO.T and ts == sorted(ts, reverse=True)
        ours = course_sample(
            GuidedModel(model, w),
            sch,
            LABELS,
            ts,
            generator=torch.Generator().manual_seed(1),
        )
        assert (theirs - ours).abs().max() < 2e-5


@pytest.mark.parametrize("name", ["cosine", "linear"])
def test_diffusers_v_prediction_agrees_with_eps_from_v(model, name):
    """Read the network's output as v (chapter 05, eq. 5.6): diffusers' DDIM told
    ``prediction_type="v_prediction"`` and our DDIM on lesson 05's ``EpsFromV`` (eq.
    5.7) take the same steps to the same images, with and without guidance (eq. 5.7 is
    affine in v, so mixing v's mixes the eps's); the rest is diffusers' float32
    alpha_bar, as for eps. Read as eps, the same output gives other images."""
    diffusers = needs_diffusers()
    from diffusion_lessons.lesson05_training import EpsFromV
    from diffusion_lessons.lesson10_going_further import (
        diffusers_sample,
        make_scheduler,
    )

    sch = make_schedule(name, MICRO.T)
    as_eps = make_scheduler("ddim", sch)
    as_v = diffusers.DDIMScheduler.from_config(
        as_eps.config, prediction_type="v_prediction"
    )
    for w in (0.0, 2.0):
        theirs, eps_reading = (
            diffusers_sample(
                model, sch, LABELS, scheduler, 10, w=w, precision="fp32",
                generator=torch.Generator().manual_seed(1),
            )[0]
            for scheduler in (as_v, as_eps)
        )  # fmt: skip
        ours = course_sample(
            GuidedModel(EpsFromV(model, sch), w),
            sch,
            LABELS,
            [course_t(k) for k in as_v.timesteps],
            generator=torch.Generator().manual_seed(1),
        )
        diff = (theirs - ours).abs()
        assert diff.mean() < 5e-5 and diff.max() < 2e-4
        assert (theirs - eps_reading).abs().mean() > 1e-2


def test_ddim_difference_is_only_float32_rounding(model):
    """With float64 noise levels and a float64 network the two DDIMs agree to 1e-10:
    the update is the same algebra (eqs. 6.1-6.3 with eps recomputed from the clip)."""
    needs_diffusers()
    from diffusion_lessons.lesson10_going_further import (
        diffusers_sample,
        make_scheduler,
    )

    sch = make_schedule("cosine", MICRO.T)
    net = UNet(MICRO).double().eval()

    class Float64(torch.nn.Module):  # feeds float64 images to the float64 network
        def __init__(self):
            super().__init__()
            self.net, self.config = net, net.config

        def forward(self, xt, t, y):
            return self.net(xt.double(), t, y)

    ddim = make_scheduler("ddim", sch)
    ddim.alphas_cumprod = sch.alpha_bar[1:]  # eq. 10.1 in float64
    ddim.final_alpha_cumprod = sch.alpha_bar[0]  # eq. 10.2
    theirs, _ = diffusers_sample(
        Float64(),
        sch,
        LABELS,
        ddim,
        10,
        precision="fp32",
        generator=torch.Generator().manual_seed(1),
    )
    ts = [course_t(k) for k in ddim.timesteps]
    ours = course_sample(
        Float64(), sch, LABELS, ts, generator=torch.Generator().manual_seed(1)
    )
    assert theirs.dtype == torch.float64 and (theirs - ours).abs().max() < 1e-10


@pytest.mark.parametrize("name", ["cosine", "linear"])
def test_diffusers_ddpm_reproduces_lesson06(model, name):
    """All T steps, eta = 1, the same z at every step. The mean is the posterior-mean
    form in diffusers and the DDIM form in lesson 06 (equal algebra, eq. 6.4); two
    float32 roundings of the same number differ by ~1e-7 per step, and 100 noisy steps
    carry that to ~1e-5 (linear: 3e-5 mean, 7e-5 largest pixel)."""
    needs_diffusers()
    from diffusion_lessons.lesson10_going_further import (
        diffusers_sample,
        make_scheduler,
    )

    sch = make_schedule(name, MICRO.T)
    theirs, nfe = diffusers_sample(
        model,
        sch,
        LABELS,
        make_scheduler("ddpm", sch),
        MICRO.T,
        precision="fp32",
        generator=torch.Generator().manual_seed(1),
    )
    ours = sample(
        model,
        sch,
        LABELS,
        sampler="ddpm",
        precision="fp32",
        generator=torch.Generator().manual_seed(1),
    )
    diff = (theirs - ours).abs()
    assert nfe == MICRO.T and diff.mean() < 5e-5 and diff.max() < 2e-4


@pytest.mark.parametrize("name", ["cosine", "linear"])
@pytest.mark.parametrize("steps", [5, 10, 20])
def test_diffusers_dpm_solver_reproduces_lesson06(model, name, steps):
    """diffusers' DPM-Solver++(2M) and lesson 06's ``dpm++2m`` take the same
    steps to the same images. "trailing" spacing is lesson 06's chain ending at
    t_min = T / steps; the rest is float32 rounding of alpha_bar in diffusers."""
    needs_diffusers()
    from diffusion_lessons.lesson10_going_further import (
        diffusers_sample,
        make_scheduler,
    )

    sch = make_schedule(name, MICRO.T)
    for w in (0.0, 2.0):
        theirs, nfe = diffusers_sample(
            model,
            sch,
            LABELS,
            make_scheduler("dpm++", sch),
            steps,
            w=w,
            precision="fp32",
            generator=torch.Generator().manual_seed(1),
        )
        ours, ddim = (
            sample(
                GuidedModel(model, w),
                sch,
                LABELS,
                sampler=sampler,
                steps=steps,
                t_min=MICRO.T // steps,
                precision="fp32",
                generator=torch.Generator().manual_seed(1),
            )
            for sampler in ("dpm++2m", "ddim")
        )
        assert nfe == steps
        assert (theirs - ours).abs().max() < 1e-4
        assert (theirs - ddim).abs().max() > 1e-3  # the second order does something


@pytest.mark.parametrize("name,nfe", [("dpm++", 10), ("euler", 10), ("heun", 19)])
def test_ode_solvers_run_on_whole_steps(model, name, nfe):
    """Euler, Heun and DPM-Solver++ drive the U-Net on integer steps from t = T, count
    their evaluations, and end in [-1, 1]; the same seed gives the same images."""
    needs_diffusers()
    from diffusion_lessons.lesson10_going_further import (
        diffusers_sample,
        make_scheduler,
    )

    sch = make_schedule("cosine", MICRO.T)
    runs = [
        diffusers_sample(
            model,
            sch,
            LABELS,
            make_scheduler(name, sch),
            10,
            w=0.5,
            generator=torch.Generator().manual_seed(4),
        )
        for _ in range(2)
    ]
    (a, n), (b, _) = runs
    assert n == nfe and torch.equal(a, b)
    assert a.shape == (6, 1, 28, 28) and a.abs().max() <= 1 and a.std() > 0.05


@pytest.mark.parametrize("steps", [5, 20])
def test_euler_is_ddim_without_the_clip(model, steps):
    """One Euler step in x = x_t / sqrt(alpha_bar_t) is eq. 6.3 with eta = 0 (section
    10.6); EulerDiscreteScheduler has no clipping, so it is lesson 06's DDIM with
    clip_x0=False. Its first draw is scaled by sigma_T, not sqrt(1 + sigma_T^2): a
    relative difference of 1 / (2 sigma_T^2), negligible for the cosine schedule and
    not for a schedule that ends with little noise (linear at T = 100)."""
    needs_diffusers()
    from diffusion_lessons.lesson10_going_further import (
        diffusers_sample,
        make_scheduler,
    )

    sch = make_schedule("cosine", MICRO.T)  # sigma_T ~ 1e4
    euler = make_scheduler("euler", sch)
    theirs, _ = diffusers_sample(
        model,
        sch,
        LABELS,
        euler,
        steps,
        precision="fp32",
        generator=torch.Generator().manual_seed(5),
    )
    ours = course_sample(
        model,
        sch,
        LABELS,
        [course_t(k) for k in euler.timesteps],
        clip_x0=False,
        generator=torch.Generator().manual_seed(5),
    )
    diff = (theirs - ours).abs()
    assert diff.mean() < 1e-5 and diff.max() < 1e-3


def test_unknown_scheduler_is_one_clear_line():
    needs_diffusers()
    from diffusion_lessons.lesson10_going_further import make_scheduler

    with pytest.raises(ValueError, match="choose one of"):
        make_scheduler("lms", make_schedule("cosine", 10))


# ---------------------------------------------------------------------------
# Many processes: DistributedDataParallel on gloo
# ---------------------------------------------------------------------------


@given(
    B=st.integers(1, 16),
    nproc=st.integers(1, 4),
    seed=st.integers(0, 2**31),
    prediction=st.sampled_from(["eps", "v"]),
    levels=st.one_of(st.none(), st.tuples(st.floats(-3.0, 2.0), st.floats(0.1, 3.0))),
)
def test_shards_average_to_the_single_process_loss(B, nproc, seed, prediction, levels):
    """Eqs. 10.5-10.6: the mean of the shard losses is lesson 05's training loss on the
    batch, for either target and either draw of t, and every shard consumes the
    generator as one process would."""

    B *= nproc
    sch = make_schedule("cosine", MICRO.T)
    torch.manual_seed(seed % 1000)
    net = UNet(MICRO).eval()
    x0, y = torch.rand(B, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (B,))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        full = training_loss(net, x0, y, sch, 0.3, g, 5.0, prediction, levels)
        parts = []
        for r in range(nproc):
            gr = torch.Generator().manual_seed(seed)
            rows = shard(B, r, nproc)
            parts.append(
                shard_loss(net, x0, y, sch, rows, 0.3, gr, 5.0, prediction, levels)
            )
            assert torch.equal(gr.get_state(), g.get_state())
    torch.testing.assert_close(torch.stack(parts).mean(), full, rtol=1e-5, atol=1e-6)


def test_batch_that_does_not_split_is_one_clear_line():
    with pytest.raises(ValueError, match="does not split into 3 equal shards"):
        shard(64, 0, 3)


def tiny(steps: int, **kw):
    return dataclasses.replace(
        PRESETS["tiny"],
        dataset="mnist-5k",
        steps=steps,
        warmup=2,
        precision="fp32",
        threads=1,
        sample_every=2,
        checkpoint_every=2,
        **kw,
    )


def close(a: dict, b: dict, atol: float = 2e-5) -> bool:
    return all(torch.allclose(a[k], b[k], atol=atol, rtol=1e-4) for k in a)


def stop_at_4(step, ema):  # a real Ctrl-C: lesson 05's loop saves and stops
    if step == 4:
        os.kill(os.getpid(), signal.SIGINT)


def test_two_processes_equal_one_and_resume_on_either(tmp_path):
    """A 2-process gloo run equals the 1-process run (same global batch) up to
    reduction order; stopped at step 4, it resumes on 1 process, and vice versa."""
    one = train(tiny(6), tmp_path / "one", progress=False)
    spawn_local(2, tiny(6), tmp_path / "two")
    a = load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "two" / "checkpoint.pt")
    assert b["step"] == 6 and b["processes"] == 2
    torch.testing.assert_close(b["losses"], one["losses"], rtol=1e-5, atol=1e-6)
    assert close(a["model"], b["model"]) and close(a["ema"], b["ema"])
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "two").iterdir())

    # 2 processes for 4 steps, then 1 process to 6 ...
    spawn_local(2, tiny(6), tmp_path / "2then1", until=4)
    assert load_checkpoint(tmp_path / "2then1" / "checkpoint.pt")["step"] == 4
    train(tiny(6), tmp_path / "2then1", resume=True, progress=False)
    # ... and 1 process for 4 steps, then 2 processes to 6
    train(tiny(6), tmp_path / "1then2", progress=False, callback=stop_at_4)
    spawn_local(2, tiny(6), tmp_path / "1then2", resume=True)
    for run in ("2then1", "1then2"):
        c = load_checkpoint(tmp_path / run / "checkpoint.pt")
        assert c["step"] == 6 and close(a["model"], c["model"]), run
        torch.testing.assert_close(c["losses"], one["losses"], rtol=1e-5, atol=1e-6)


def test_torchrun_cli_trains_on_two_processes(tmp_path):
    """The documented command, on CPU: torchrun --nproc_per_node 2 -m diffusion_lessons
    train; rank 0 alone writes the checkpoint."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        "-m",
        "diffusion_lessons",
        "train",
        "--preset",
        "tiny",
        "--dataset",
        "mnist-5k",
        "--steps",
        "3",
        "--threads",
        "2",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "run"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("Training") == 1 and "2 processes" in done.stdout
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 3 and state["processes"] == 2


# ---------------------------------------------------------------------------
# The exercise's properties (diffusion_lessons/properties/lesson10.py)
# ---------------------------------------------------------------------------


def test_exercise_properties_hold_for_the_course_and_catch_the_bugs():
    pytest.importorskip(
        "diffusion_lessons.properties._common",
        reason="the grader's property package (diffusion_lessons/properties) is absent",
    )
    import types

    from diffusion_lessons import lesson10_going_further as course
    from diffusion_lessons.properties import lesson10

    impl = types.SimpleNamespace(**{f: getattr(course, f) for f in lesson10.FUNCTIONS})
    for p in lesson10.PROPERTIES:
        p.fn(impl)
    bugs = {
        "steps_shift_by_one": {"course_t": lambda k: int(k)},
        "scale_is_one_plus_w": {"guidance_scale": lambda w: w},
        "guidance_matches_lesson08": {
            "diffusers_guidance": lambda c, u, s: c + s * (u - c)
        },
        "shards_partition_the_batch": {
            "shard": lambda B, r, n: slice(r * (B // n), (r + 1) * (B // n) + 1)
        },
        "uneven_batch_refused": {"shard": lambda B, r, n: slice(r, B, n)},
    }
    by_name = {p.name: p for p in lesson10.PROPERTIES}
    for name, replace in bugs.items():
        with pytest.raises(AssertionError):
            by_name[name].fn(types.SimpleNamespace(**{**vars(impl), **replace}))


def test_distributed_run_refuses_a_folder_that_holds_a_run(tmp_path):
    """As lesson 05's loop does: no silent overwrite of an earlier run."""
    from diffusion_lessons.distributed import train_distributed
    from diffusion_lessons.runs import RunFolderError

    (tmp_path / "checkpoint.pt").write_bytes(b"an earlier run")
    with pytest.raises(RunFolderError, match="--resume"):
        train_distributed(tiny(2), tmp_path)
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"an earlier run"
