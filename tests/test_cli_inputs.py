"""`diffusion-lessons` under bad input: one clear line and exit status 1 (2 for a bad
option), never a traceback and never a silently wrong file; fast help; and the table of
docs/cli-errors.md, which this file checks against the real commands.
"""

import ast
import dataclasses
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import diffusion_lessons.cli as cli
from diffusion_lessons.cli import build_parser, main
from diffusion_lessons.lesson04_unet import UNetConfig
from diffusion_lessons.lesson05_training import PRESETS, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "cli-errors.md"
MICRO = dataclasses.replace(
    PRESETS["tiny"],
    model=UNetConfig(channels=(8, 16), emb_dim=16, groups=4),
    dataset="mnist-5k",
    steps=2,
    batch_size=8,
    warmup=1,
    threads=1,
)


def run_cli(argv, capsys) -> tuple[int, str]:
    """Exit status and the last line said (stderr first) of ``main(argv)``."""
    try:
        main(argv)
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
        if isinstance(exit.code, str):
            print(exit.code, file=sys.stderr)  # what Python prints for it
    out, err = capsys.readouterr()
    lines = (err or out).strip().splitlines()
    return code, lines[-1] if lines else ""


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Path:
    """A 2-step checkpoint of a very small model: fast to sample from."""
    folder = tmp_path_factory.mktemp("micro")
    train(MICRO, folder, progress=False)
    return folder / "checkpoint.pt"


def write_samples(path, images, labels) -> str:
    np.savez(path, images=np.asarray(images), labels=np.asarray(labels))
    return str(path)


# ---------------------------------------------------------------------------
# The command itself: fast help, --version, lazy imports, no import cycle
# ---------------------------------------------------------------------------

HEAVY = ("torch", "matplotlib", "open_clip", "numpy", "hypothesis")


def imports_after(argv: list[str]) -> tuple[set[str], float, str]:
    """The heavy top-level modules a fresh Python loads for ``main(argv)``, its wall
    time, and what it printed.
    """
    code = (
        "import sys\nfrom diffusion_lessons.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('@@', ' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.perf_counter() - start
    loaded = done.stdout.rsplit("@@", 1)[1].split()
    return {m for m in loaded if m in HEAVY}, seconds, done.stdout


def test_help_version_and_list_load_nothing_heavy_and_answer_within_a_second():
    for argv in (["--help"], ["--version"], ["list"], ["train", "--help"]):
        heavy, seconds, said = imports_after(argv)
        assert not heavy, f"{argv} imported {heavy}"
        assert seconds < 1.0, f"{argv} took {seconds:.2f} s"
    assert "diffusion-lessons 0.1.0" in imports_after(["--version"])[2]


def test_each_subcommand_imports_only_what_it_uses():
    heavy, _, said = imports_after(["check", "--help"])
    assert "open_clip" not in heavy and "matplotlib" not in heavy
    assert "RUNS the Python code" in " ".join(said.split())


def test_cli_and_tour_do_not_import_each_other():
    for name, other in (("cli", "tour"), ("tour", "cli")):
        tree = ast.parse((ROOT / "diffusion_lessons" / f"{name}.py").read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert not any(
            getattr(n, "module", None) == other or any(a.name == other for a in n.names)
            for n in top
        ), f"{name}.py imports {other}"


def test_every_option_says_its_default():
    parser = build_parser("all")
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    missing = []
    for name, sub in subparsers.items():
        for action in sub._actions:
            if not action.option_strings or action.dest in ("help",):
                continue
            if action.help == "==SUPPRESS==" or action.required:
                continue
            if "default" not in (action.help or ""):
                missing.append(f"{name} {action.option_strings[0]}")
    assert not missing, f"options whose help does not say the default: {missing}"


def test_train_and_check_help_say_what_they_do_to_files_and_code(capsys):
    for argv in (["train", "--help"], ["check", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
    text = " ".join(capsys.readouterr().out.split())
    assert "already holds a run is never replaced silently" in text
    assert "--resume continues it" in text and "--overwrite deletes it" in text
    assert "--lr LR peak learning rate" in text  # the option the NaN guard names
    assert "RUNS the Python code in FILE" in text


def test_debug_shows_the_traceback(tmp_path, capsys):
    code, said = run_cli(
        ["sample", "--checkpoint", "nope.pt", "--out", "s.png"], capsys
    )
    assert code == 1 and said.startswith("error: No checkpoint at nope.pt")
    from diffusion_lessons.lesson05_training import CheckpointError

    with pytest.raises(CheckpointError):
        main(["--debug", "sample", "--checkpoint", "nope.pt", "--out", "s.png"])
    with pytest.raises(CheckpointError):
        main(["sample", "--checkpoint", "nope.pt", "--out", "s.png", "--debug"])


# ---------------------------------------------------------------------------
# sample: checked before any work, batched, the shipped model from anywhere
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value, says",
    [
        ("--guidance", "nan", "--guidance: must be a finite number"),
        ("--guidance", "inf", "--guidance: must be a finite number"),
        ("--eta", "nan", "--eta: must be a finite number"),
        ("--eta", "5", "--eta: must lie in [0, 1]"),
        ("--eta", "-0.5", "--eta: must lie in [0, 1]"),
        ("--per-digit", "0", "--per-digit: must be a whole number >= 1"),
        ("--per-digit", "-1", "--per-digit: must be a whole number >= 1"),
        ("--digits", "12a", "--digits: must be digits 0-9 only"),
        ("--digits", "", "--digits: must be digits 0-9 only"),
        ("--steps", "0", "--steps: must be a whole number >= 1"),
        ("--t-min", "0", "--t-min: must be a whole number >= 1"),
        ("--seed", "-3", "--seed: must be a whole number >= 0"),
    ],
)
def test_sample_refuses_bad_values_before_sampling(
    option, value, says, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(cli, "SHIPPED", tmp_path / "never-loaded.pt")
    out = tmp_path / "s.png"
    code, said = run_cli(["sample", option, value, "--out", str(out)], capsys)
    assert code == 2 and says in said
    assert not out.exists()


def test_sample_checks_steps_against_T_and_the_output_before_sampling(
    micro, tmp_path, capsys, monkeypatch
):
    import diffusion_lessons.lesson06_sampling as l6

    monkeypatch.setattr(l6, "sample", lambda *a, **k: pytest.fail("sampled"))
    base = ["sample", "--checkpoint", str(micro), "--guidance", "0"]
    code, said = run_cli(base + ["--steps", "5000", "--out", "s.npz"], capsys)
    assert code == 2 and "--steps: must lie in 1..901 (T = 1000 of" in said
    assert "less the 99 below the default --t-min 100" in said
    code, said = run_cli(
        base + ["--steps", "5000", "--t-min", "1", "--out", "s.npz"], capsys
    )
    assert code == 2 and "--steps: must lie in 1..1000 (T of" in said
    code, said = run_cli(base + ["--t-min", "1001", "--out", "s.npz"], capsys)
    assert code == 2 and "--t-min: must lie in 1..1000" in said
    # the default --steps (25) against the 21 levels from t = 980 up to T
    code, said = run_cli(base + ["--t-min", "980", "--out", "s.npz"], capsys)
    assert code == 2 and "--steps: must lie in 1..21 (T = 1000 of" in said
    code, said = run_cli(base + ["--out", str(tmp_path / "s.jpg")], capsys)
    assert code == 2 and "must end in .png (a grid) or .npz (arrays)" in said
    (tmp_path / "afile").write_text("")
    code, said = run_cli(base + ["--out", str(tmp_path / "afile" / "s.npz")], capsys)
    assert code == 1 and "afile is a file" in said
    code, said = run_cli(base + ["--per-digit", "100000", "--out", "s.npz"], capsys)
    assert code == 2 and "1,000,000 samples; one .npz file holds at most 100,000" in (
        said
    )


def test_large_requests_are_drawn_in_bounded_batches(micro, tmp_path, monkeypatch):
    import diffusion_lessons.lesson06_sampling as l6

    real, sizes = l6.sample, []

    def spy(model, schedule, labels, **kwargs):
        sizes.append(len(labels))
        assert kwargs["t_min"] == 300  # the option reaches the sampler
        return real(model, schedule, labels, **kwargs)

    monkeypatch.setattr(l6, "sample", spy)
    monkeypatch.setattr(cli, "SAMPLE_BATCH", 4)
    out = tmp_path / "s.npz"
    main(["sample", "--checkpoint", str(micro), "--digits", "07", "--per-digit", "5"]
         + ["--steps", "2", "--t-min", "300", "--guidance", "0"]
         + ["--out", str(out)])  # fmt: skip
    assert sizes == [4, 4, 2]
    data = np.load(out)
    assert data["images"].shape == (10, 28, 28)
    assert data["labels"].tolist() == [0] * 5 + [7] * 5


def test_sample_finds_the_shipped_model_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["sample", "--per-digit", "1", "--steps", "2", "--guidance", "0"]
         + ["--out", "s.npz"])  # fmt: skip
    assert np.load(tmp_path / "s.npz")["images"].shape == (10, 28, 28)
    assert "small.pt" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# evaluate: samples files checked, JSON without NaN
# ---------------------------------------------------------------------------


def test_evaluate_json_has_null_for_digits_never_asked_for(tmp_path, capsys):
    from diffusion_lessons.data import load_digits

    images, labels = load_digits("mnist-5k", "test", limit=40)
    keep = labels < 5
    from diffusion_lessons.lesson06_sampling import save_samples

    save_samples(tmp_path / "s.npz", images[keep], labels[keep])
    code, _ = run_cli(
        ["evaluate", "--samples", str(tmp_path / "s.npz"), "--clip", "none"]
        + ["--json", str(tmp_path / "r.json")],
        capsys,
    )
    assert code == 0

    def no_nan(name):
        raise AssertionError(f"{name} in JSON")

    report = json.loads((tmp_path / "r.json").read_text(), parse_constant=no_nan)
    assert report["per_class"][5:] == [None] * 5
    assert all(isinstance(a, float) for a in report["per_class"][:5])


# ---------------------------------------------------------------------------
# The dataset probe never hangs
# ---------------------------------------------------------------------------


def test_auto_dataset_gives_up_on_a_silent_network_within_seconds(
    tmp_path, monkeypatch, capsys
):
    from diffusion_lessons import data

    released = threading.Event()

    def silent(*args, **kwargs):  # a network that drops every packet
        released.wait(60)
        raise OSError(errno.ETIMEDOUT, "timed out")

    monkeypatch.setattr(socket, "create_connection", silent)
    monkeypatch.delenv("DIFFUSION_LESSONS_OFFLINE", raising=False)
    start = time.perf_counter()
    try:
        name = data.resolve_name("auto", root=tmp_path)
    finally:
        released.set()
    seconds = time.perf_counter() - start
    assert name == "mnist-5k" and seconds < data.PROBE_SECONDS + 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "at most 3 s" in lines[0]
    assert "using the offline digits" in lines[1]


# ---------------------------------------------------------------------------
# The table of docs/cli-errors.md: every row is run here and must match
# ---------------------------------------------------------------------------


def make_files(micro: Path, capsys) -> None:
    """The files the table's commands use, in the current folder."""
    assert run_cli(
        ["train", "--preset", "tiny", "--dataset", "mnist-5k", "--steps", "2"]
        + ["--threads", "1", "--out", "runs/done"],
        capsys,
    )[0] == 0  # fmt: skip
    Path("notes.txt").write_text("my notes")
    for name, pid in (("busy", os.getpid()), ("crashed", dead_pid())):
        Path("runs", name).mkdir(parents=True)
        Path("runs", name, "train.lock").write_text(f"{pid}\n{socket.gethostname()}\n")
    state = load_checkpoint(micro)
    config = {**state["config"], "model": {**state["config"]["model"]}}
    config["model"]["channels"] = [16, 32]
    torch.save({**state, "config": config}, "mismatched.pt")
    torch.save({k: v for k, v in state.items() if k != "ema"}, "no-ema.pt")
    labels = np.arange(4) % 10
    write_samples("big.npz", np.zeros((4, 32, 32), np.float32), labels)
    write_samples("rgb.npz", np.zeros((4, 28, 28, 3), np.float32), labels)
    write_samples("nchw.npz", np.zeros((4, 1, 28, 28), np.float32), labels)
    write_samples("nan.npz", np.full((4, 28, 28), np.nan, np.float32), labels)
    write_samples("minus.npz", np.zeros((4, 28, 28), np.float32), labels - 1)
    write_samples("ten.npz", np.zeros((4, 28, 28), np.float32), labels + 7)


def dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def ctrl_c_in_step(n):
    """Patch the loss so that a real SIGINT arrives in the middle of step n."""
    import diffusion_lessons.lesson05_training as l5

    real, calls = l5.training_loss, {"n": 0}

    def loss(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    return l5, "training_loss", loss


def nan_in_step(n):
    import diffusion_lessons.lesson05_training as l5

    real, calls = l5.training_loss, {"n": 0}

    def loss(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls["n"] == n else value

    return l5, "training_loss", loss


def disk_full_at_start():
    import diffusion_lessons.runs as runs

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    return runs.os, "fsync", fsync


def read_only():
    import diffusion_lessons.runs as runs

    def mkstemp(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")

    return runs.tempfile, "mkstemp", mkstemp


def disk_full_after_first_checkpoint():
    import diffusion_lessons.lesson05_training as l5

    real = torch.save

    def save(obj, f, *args, **kwargs):
        if "optimizer" not in obj:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *args, **kwargs)

    return l5.torch, "save", save


TRAIN = "train --preset tiny --dataset mnist-5k --threads 1"
#: (situation, command after `diffusion-lessons`, patch or None)
CASES = [
    ("the folder holds a run", f"{TRAIN} --steps 2 --out runs/done", None),
    ("resume with another seed", "train --resume --seed 5 --out runs/done", None),
    (
        "resume with another dataset",
        "train --resume --dataset fashion-mnist --out runs/done",
        None,
    ),
    ("zero training steps", "train --resume --steps 0 --out runs/done", None),
    ("both ways at once", "train --resume --overwrite --out runs/done", None),
    ("no CPU threads", "train --threads 0 --out runs/new", None),
    ("an unknown preset", "train --preset huge --out runs/new", None),
    ("--out is a file", f"{TRAIN} --out notes.txt", None),
    ("another training uses the folder", f"{TRAIN} --out runs/busy", None),
    ("a crashed training left its lock", f"{TRAIN} --out runs/crashed", None),
    ("the disk is read-only", f"{TRAIN} --out runs/new", read_only),
    ("the disk is full", f"{TRAIN} --out runs/new", disk_full_at_start),
    (
        "the disk fills during training",
        f"{TRAIN} --steps 2 --out runs/filling",
        disk_full_after_first_checkpoint,
    ),
    (
        "Ctrl-C during step 2",
        f"{TRAIN} --steps 4 --out runs/ctrl-c",
        lambda: ctrl_c_in_step(2),
    ),
    (
        "the loss becomes NaN",
        f"{TRAIN} --steps 4 --out runs/nan",
        lambda: nan_in_step(3),
    ),
    (
        "export onto the run's own checkpoint",
        "export runs/done/checkpoint.pt runs/done/checkpoint.pt",
        None,
    ),
    ("guidance is not a number", "sample --guidance nan --out s.npz", None),
    ("guidance is infinite", "sample --guidance inf --out s.npz", None),
    ("eta outside [0, 1]", "sample --eta 5 --out s.npz", None),
    ("no samples asked for", "sample --per-digit 0 --out s.png", None),
    ("not only digits", "sample --digits 12a --out s.png", None),
    ("no sampling steps", "sample --steps 0 --out s.png", None),
    ("more steps than T", "sample --steps 5000 --out s.png", None),
    ("an unknown file type", "sample --out s.jpg", None),
    ("a million samples", "sample --per-digit 100000 --out s.npz", None),
    ("no such checkpoint", "sample --checkpoint nope.pt --out s.png", None),
    (
        "the classifier as a generator",
        "sample --checkpoint checkpoints/classifier.pt --out s.png",
        None,
    ),
    (
        "config does not match the weights",
        "sample --checkpoint mismatched.pt --out s.png",
        None,
    ),
    ("no EMA weights", "sample --checkpoint no-ema.pt --out s.png", None),
    (
        "a generator as the classifier",
        "evaluate --samples ten.npz --classifier checkpoints/small.pt",
        None,
    ),
    ("32x32 samples", "evaluate --samples big.npz --clip none", None),
    ("3-channel samples", "evaluate --samples rgb.npz --clip none", None),
    ("(N, 1, 28, 28) samples", "evaluate --samples nchw.npz --clip none", None),
    ("NaN pixels", "evaluate --samples nan.npz --clip none", None),
    ("label -1", "evaluate --samples minus.npz --clip none", None),
    ("label 10", "evaluate --samples ten.npz --clip none", None),
    ("no samples per digit", "evaluate --per-digit 0", None),
    ("a lesson that does not exist", "run 99", None),
]

BEGIN, END = "<!-- cli-errors:begin -->", "<!-- cli-errors:end -->"


def table_row(situation: str, command: str, code: int, said: str) -> str:
    said = re.sub(r"pid \d+", "pid 12345", said).replace("|", "\\|")
    return f"| {situation} | `diffusion-lessons {command}` | {code} | {said} |"


def test_error_table_matches_the_commands(micro, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_files(micro, capsys)
    os.symlink(ROOT / "checkpoints", tmp_path / "checkpoints")
    rows = [
        "| situation | you type | exit status | the last line it prints |",
        "|---|---|---|---|",
    ]
    for situation, command, patch in CASES:
        with monkeypatch.context() as m:
            if patch is not None:
                m.setattr(*patch())
            code, said = run_cli(command.split(), capsys)
        said = said.replace(f"{ROOT}/", "").replace(f"{tmp_path}/", "")
        assert code in (1, 2, 130) and said, (command, code, said)
        assert "Traceback" not in said and "elete it" not in said, said
        rows.append(table_row(situation, command, code, said))
    table = "\n".join(rows)
    page = PAGE.read_text()
    head, rest = page.split(BEGIN)
    _, tail = rest.split(END)
    if os.environ.get("UPDATE_CLI_ERRORS") == "1":
        PAGE.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    assert rest.split(END)[0].strip() == table, (
        "docs/cli-errors.md differs from what the commands say; rerun this test with "
        "UPDATE_CLI_ERRORS=1 to rewrite its table, and read the diff"
    )
