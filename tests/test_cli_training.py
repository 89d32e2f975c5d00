"""`diffusion-lessons train` loses nothing: one training per run folder, no silent
overwrite, a test write at start-up, a full disk keeps the last good checkpoint, and
Ctrl-C followed by --resume gives the weights of an uninterrupted run, bit for bit.
"""

import dataclasses
import errno
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffusion_lessons.cli import main
from diffusion_lessons.lesson04_unet import UNetConfig
from diffusion_lessons.lesson05_training import PRESETS, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["train", "--preset", "tiny", "--dataset", "mnist-5k", "--threads", "1"]
MICRO = dataclasses.replace(
    PRESETS["tiny"],
    model=UNetConfig(channels=(8, 16), emb_dim=16, groups=4),
    dataset="mnist-5k",
    steps=12,
    batch_size=16,
    warmup=3,
    checkpoint_every=4,
    sample_every=6,
    threads=1,
)


def run_cli(argv, capsys) -> tuple[int, str]:
    """Exit status and the last line said (stderr first) of ``main(argv)``."""
    try:
        main(argv)
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    out, err = capsys.readouterr()
    lines = (err or out).strip().splitlines()
    return code, lines[-1] if lines else ""


def child_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tensors_equal(a, b, where="") -> None:
    """Every tensor in two nested checkpoint structures is identical (torch.equal)."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            tensors_equal(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            tensors_equal(x, y, f"{where}[{i}]")


# the interrupted training: says when each step computes its loss, so the parent can
# send Ctrl-C in the middle of a step (after t and eps were drawn: the hard case)
CHILD = """
import sys
import diffusion_lessons.lesson05_training as l5
real = l5.training_loss
def reporting(*args, **kwargs):
    loss = real(*args, **kwargs)
    print("@@step", flush=True)
    return loss
l5.training_loss = reporting
from diffusion_lessons.cli import main
main(sys.argv[1:])
"""


def test_ctrl_c_saves_exits_130_and_resume_is_bit_exact(in_tmp, capsys):
    steps, k = 10, random.SystemRandom().randrange(1, 7)  # Ctrl-C in step k
    argv = TINY + ["--steps", str(steps), "--seed", "3"]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *argv, "--out", "cut"],
        cwd=in_tmp,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = 0
    for line in child.stdout:
        seen += line.startswith("@@step")
        if seen == k:
            child.send_signal(signal.SIGINT)
            break
    rest, _ = child.communicate(timeout=120)
    assert child.returncode == 130, f"Ctrl-C at step {k}:\n{rest}"
    assert "Interrupted: saved cut/checkpoint.pt at step" in rest
    stopped_at = load_checkpoint(in_tmp / "cut" / "checkpoint.pt")["step"]
    assert k <= stopped_at < steps, (k, stopped_at)
    assert not (in_tmp / "cut" / "train.lock").exists()

    assert run_cli(TINY[:1] + ["--resume", "--out", "cut"], capsys)[0] == 0
    assert run_cli(argv + ["--out", "straight"], capsys)[0] == 0
    cut = load_checkpoint(in_tmp / "cut" / "checkpoint.pt")
    straight = load_checkpoint(in_tmp / "straight" / "checkpoint.pt")
    assert cut["step"] == straight["step"] == steps
    assert cut["losses"] == straight["losses"], f"Ctrl-C during step {k}"
    for key in ("model", "ema", "optimizer", "rng"):
        tensors_equal(cut[key], straight[key], f"{key} (Ctrl-C during step {k})")


HOLDER = """
import sys, time
from pathlib import Path
from diffusion_lessons.runs import lock_folder
with lock_folder(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_second_training_into_a_busy_folder_is_refused_and_a_stale_lock_reported(
    in_tmp, capsys
):
    (in_tmp / "busy").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "busy"],
        cwd=in_tmp,
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, said = run_cli(TINY + ["--steps", "2", "--out", "busy"], capsys)
        assert code == 1
        assert f"Another training (pid {holder.pid}) is writing to busy" in said
    finally:
        holder.kill()  # dies without removing its lock, like a crash
        holder.wait()
    code, said = run_cli(TINY + ["--steps", "2", "--out", "busy"], capsys)
    assert code == 1 and "stale lock" in said and f"pid {holder.pid}" in said
    assert "delete busy/train.lock" in said
    assert not (in_tmp / "busy" / "checkpoint.pt").exists()


def test_an_existing_run_is_never_replaced_silently(in_tmp, capsys):
    assert run_cli(TINY + ["--steps", "3", "--out", "run"], capsys)[0] == 0
    before = (in_tmp / "run" / "checkpoint.pt").read_bytes()
    code, said = run_cli(TINY + ["--steps", "2", "--out", "run"], capsys)
    assert code == 1 and "already holds a training run" in said
    assert "--resume" in said and "--overwrite" in said and "new --out" in said
    assert (in_tmp / "run" / "checkpoint.pt").read_bytes() == before
    code, _ = run_cli(TINY + ["--resume", "--overwrite", "--out", "run"], capsys)
    assert code == 2
    assert (
        run_cli(TINY + ["--steps", "2", "--overwrite", "--out", "run"], capsys)[0] == 0
    )
    assert load_checkpoint(in_tmp / "run" / "checkpoint.pt")["step"] == 2
    assert sorted(p.name for p in (in_tmp / "run" / "snapshots").iterdir()) == [
        "ema_000002.pt"
    ]


def test_resume_refuses_a_changed_configuration_but_not_more_steps(in_tmp, capsys):
    assert run_cli(TINY + ["--steps", "2", "--out", "run"], capsys)[0] == 0
    for option, stored, given in (
        ("--seed", "seed=0", "seed=5"),
        ("--dataset", "dataset='mnist-5k'", "dataset='fashion-mnist'"),
        ("--lr", "lr=0.003", "lr=0.1"),
        ("--prediction", "prediction='eps'", "prediction='v'"),
        ("--preset", "ema_decay=0.99", "ema_decay=0.995"),
    ):
        value = given.split("=")[1].strip("'")
        value = "small" if option == "--preset" else value
        code, said = run_cli(
            ["train", "--resume", option, value, "--out", "run"], capsys
        )
        assert code == 1, option
        assert f"trained with {stored}" in said or stored in said.split("asks")[0]
        assert given in said.split("asks for")[1], said
    assert load_checkpoint(in_tmp / "run" / "checkpoint.pt")["step"] == 2
    code, _ = run_cli(
        ["train", "--resume", "--steps", "3", "--threads", "1", "--out", "run"], capsys
    )
    assert code == 0 and load_checkpoint(in_tmp / "run" / "checkpoint.pt")["step"] == 3


def test_out_that_cannot_be_written_fails_before_the_first_step(
    in_tmp, capsys, monkeypatch
):
    (in_tmp / "afile").write_text("not a folder")
    code, said = run_cli(TINY + ["--steps", "2", "--out", "afile"], capsys)
    assert code == 1 and "afile is a file, not a folder" in said

    import diffusion_lessons.runs as runs

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as m:
        m.setattr(runs.tempfile, "mkstemp", read_only)
        code, said = run_cli(TINY + ["--steps", "2", "--out", "ro"], capsys)
    assert code == 1 and "Cannot write into ro: ro is read-only" in said

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(runs.os, "fsync", full)
        code, said = run_cli(TINY + ["--steps", "2", "--out", "full"], capsys)
    assert code == 1 and "the disk holding full is full" in said
    for name in ("ro", "full"):
        assert not (in_tmp / name / "checkpoint.pt").exists()
        assert not list((in_tmp / name).glob(".*")), "the test write left a file"


def test_full_disk_mid_run_keeps_the_last_good_checkpoint(
    tmp_path, capsys, monkeypatch
):
    import diffusion_lessons.lesson05_training as l5

    real_save, calls = torch.save, {"n": 0}

    def save_until_the_disk_is_full(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the snapshot at step 6: half written, then ENOSPC
            f.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(l5.torch, "save", save_until_the_disk_is_full)
    result = train(MICRO, tmp_path, progress=False)
    assert result["stopped"].startswith("could not save step 6") and result["step"] == 6
    said = capsys.readouterr().out.strip().splitlines()[-1]
    assert "the disk holding" in said and "is full" in said
    assert f"4 steps are saved in {tmp_path / 'checkpoint.pt'}" in said
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert not (tmp_path / "train.lock").exists()


def test_full_disk_mid_run_exits_1_from_the_command(in_tmp, capsys, monkeypatch):
    import diffusion_lessons.lesson05_training as l5

    real_save = torch.save

    def snapshot_fails(obj, f, *args, **kwargs):
        if "optimizer" not in obj:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(l5.torch, "save", snapshot_fails)
    code, said = run_cli(TINY + ["--steps", "2", "--out", "run"], capsys)
    assert code == 1
    assert said.startswith("Stopped: could not save step 2")
    assert "2 steps are saved in run/checkpoint.pt" in said


def test_stray_temporary_files_are_removed_on_the_next_start(tmp_path, capsys):
    train(dataclasses.replace(MICRO, steps=4), tmp_path, progress=False)
    stray = tmp_path / ".checkpoint.pt.k3j5x9.tmp"
    stray.write_bytes(b"half a checkpoint")
    train(dataclasses.replace(MICRO, steps=8), tmp_path, resume=True, progress=False)
    assert not stray.exists()
    assert "Removed 1 temporary file(s)" in capsys.readouterr().out


def test_two_writers_never_share_a_temporary_file(tmp_path):
    from diffusion_lessons.runs import temporary_file

    with temporary_file(tmp_path / "checkpoint.pt") as (_, a):
        with temporary_file(tmp_path / "checkpoint.pt") as (_, b):
            assert a != b and a.parent == b.parent == tmp_path
            assert a.name.startswith(".checkpoint.pt.") and a.suffix == ".tmp"
    assert not a.exists() and not b.exists()


def test_export_refuses_an_existing_file_without_force(tmp_path, capsys):
    train(dataclasses.replace(MICRO, steps=2), tmp_path / "run", progress=False)
    ckpt = str(tmp_path / "run" / "checkpoint.pt")
    before = Path(ckpt).read_bytes()
    code, said = run_cli(["export", ckpt, ckpt], capsys)
    assert code == 1 and "already exists (it is the run's own checkpoint" in said
    assert "--force" in said and Path(ckpt).read_bytes() == before
    other = tmp_path / "mine.pt"
    other.write_bytes(b"precious")
    code, said = run_cli(["export", ckpt, str(other)], capsys)
    assert code == 1 and other.read_bytes() == b"precious"
    assert run_cli(["export", ckpt, str(other), "--force"], capsys)[0] == 0
    assert load_checkpoint(other)["step"] == 2


def test_prediction_option_trains_v_and_offers_what_lesson_05_can_train(in_tmp, capsys):
    from diffusion_lessons.lesson05_training import PREDICTIONS

    code, _ = run_cli(
        TINY + ["--steps", "2", "--prediction", "v", "--out", "v"], capsys
    )
    assert code == 0
    assert (
        load_checkpoint(in_tmp / "v" / "checkpoint.pt")["config"]["prediction"] == "v"
    )
    code, said = run_cli(TINY + ["--prediction", "x0", "--out", "x"], capsys)
    assert code == 2 and "invalid choice: 'x0'" in said
    for choice in PREDICTIONS:
        assert f"'{choice}'" in said
