"""Run folders that lose nothing: one training at a time, a writable disk, a clean stop.

Lesson 05's ``train`` uses three helpers from here, kept apart so the lesson stays
about training:

- ``claim_run_folder(out, ...)`` checks at start-up that ``out`` is a folder that can be
  written (a test write), takes an exclusive lock on it (a lock file created with
  ``O_EXCL`` holding the pid), removes temporary files a crash left behind, and refuses
  to start a new run over an old one unless asked to.
- ``stop_on_ctrl_c()`` turns Ctrl-C (SIGINT) into a flag that the training loop reads
  between two steps, so a step is never cut in half.
- ``temporary_file(path)`` makes a uniquely named temporary file next to ``path`` for an
  atomic write (``os.replace`` afterwards), and removes it if the write fails.

``write_json(path, data)`` uses the same atomic write for the numbers a lesson's
``run()`` returns (``diffusion-lessons figures`` keeps them in NN_run.json).

Nothing here imports torch: the command line stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from . import CourseError

#: the lock file inside a run folder
LOCK_NAME = "train.lock"
#: temporary files are named .NAME.XXXXXXXX.tmp next to the file NAME they become
TMP_SUFFIX = ".tmp"
#: what a test write at start-up writes: enough to notice a full disk
TEST_WRITE_BYTES = 1 << 20
#: the files and folders a training run writes into its folder
RUN_FILES = ("checkpoint.pt", "snapshots", "samples")


class RunFolderError(CourseError):
    """A run folder cannot be used: not a folder, not writable, full, locked, or it
    already holds a run.
    """


def disk_error(path: Path, err: OSError) -> str:
    """Say in words why writing ``path`` failed."""
    if err.errno == errno.ENOSPC:
        return f"the disk holding {path} is full"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{path} is read-only (no permission to write there)"
    return f"{path} cannot be written ({err.strerror or err})"


@contextlib.contextmanager
def temporary_file(path: str | Path) -> Iterator[tuple[int, Path]]:
    """A new, uniquely named file next to ``path``, as (fd, name); removed again
    unless the caller has moved it into place. Two writers never share one.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX
    )
    tmp = Path(name)
    try:
        yield fd, tmp
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def check_writable(
    folder: Path,
    nbytes: int = TEST_WRITE_BYTES,
    advice: str = "Give a folder name, e.g. --out runs/my-model.",
) -> None:
    """Create ``folder`` if needed and write ``nbytes`` into it (then remove them):
    fail now, with a clear message, rather than after the first hour of training.
    """
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"{folder} is a file, not a folder. {advice}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with temporary_file(folder / "test-write") as (fd, _):
            with os.fdopen(os.dup(fd), "wb") as f:
                f.write(b"\0" * nbytes)
                f.flush()
                os.fsync(f.fileno())
    except FileExistsError as err:  # a parent is a file
        raise RunFolderError(
            f"Cannot create the folder {folder}: {err.filename} is a file. "
            "Choose another --out."
        ) from err
    except OSError as err:
        raise RunFolderError(
            f"Cannot write into {folder}: {disk_error(folder, err)}. "
            "Choose another --out (or free some space)."
        ) from err


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def read_lock(lock: Path) -> tuple[int | None, str]:
    """(pid, host) written in a lock file; pid None when unreadable."""
    try:
        pid, host = (lock.read_text().split("\n") + [""])[:2]
        return int(pid), host
    except (OSError, ValueError):
        return None, ""


@contextlib.contextmanager
def lock_folder(folder: Path) -> Iterator[Path]:
    """Hold ``folder/train.lock`` (created with O_EXCL, so only one process can) for
    the duration. A lock left by a dead process is reported, never taken over.
    """
    lock = folder / LOCK_NAME
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        pid, host = read_lock(lock)
        here = host in ("", socket.gethostname())
        if pid is not None and (not here or pid_alive(pid)):
            raise RunFolderError(
                f"Another training (pid {pid}"
                f"{'' if here else f' on {host}'}) is writing to {folder}. Wait for "
                "it to finish, or train into another --out."
            ) from None
        raise RunFolderError(
            f"{lock} is a stale lock: the training that held it "
            f"({'pid ' + str(pid) if pid else 'unknown pid'}) is no longer running. "
            f"If no training uses {folder}, delete {lock} and run again."
        ) from None
    except OSError as err:
        raise RunFolderError(
            f"Cannot lock {folder}: {disk_error(folder, err)}."
        ) from err
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n{socket.gethostname()}\n")
        yield lock
    finally:
        if read_lock(lock)[0] == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()


def remove_stray_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files an earlier crash left in ``folder`` (call it only
    while holding the folder's lock); returns them.
    """
    stray = [
        p
        for sub in (folder, folder / "snapshots")
        if sub.is_dir()
        for p in sub.glob(f".*{TMP_SUFFIX}")
    ]
    for p in stray:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    if stray:
        print(
            f"Removed {len(stray)} temporary file(s) an interrupted save left behind."
        )
    return stray


def clear_run(folder: Path) -> None:
    """Remove a previous run's checkpoint, snapshots and sample grids
    (``--overwrite``).
    """
    for name in RUN_FILES:
        p = folder / name
        if p.is_dir():
            for f in sorted(p.iterdir()):
                if f.is_file():
                    f.unlink()
        elif p.exists():
            p.unlink()


@contextlib.contextmanager
def claim_run_folder(
    folder: str | Path, *, resume: bool = False, overwrite: bool = False
) -> Iterator[Path]:
    """Everything a training run checks before its first step, and the lock it holds
    until its last one.

    A folder that already holds a run (a ``checkpoint.pt``) is refused unless
    ``resume`` (continue it) or ``overwrite`` (delete it and start again) is given.
    """
    folder = Path(folder)
    if resume and overwrite:
        raise RunFolderError("Give either --resume or --overwrite, not both.")
    check_writable(folder)
    with lock_folder(folder):
        remove_stray_temporaries(folder)
        held = (folder / "checkpoint.pt").exists()
        if held and overwrite:
            clear_run(folder)
            print(f"--overwrite: removed the previous run in {folder}.")
        elif held and not resume:
            raise RunFolderError(
                f"{folder} already holds a training run ({folder / 'checkpoint.pt'}). "
                "Continue it with --resume, or start again with a new --out (or "
                "--overwrite, which deletes the old run)."
            )
        yield folder


class StopFlag:
    """Set by Ctrl-C; the training loop checks ``stop.requested`` between steps."""

    def __init__(self) -> None:
        self.requested = False
        self.signal: int | None = None

    def request(self, signum: int = signal.SIGINT, frame=None) -> None:
        if self.requested:
            print("\nStill saving; one moment.", flush=True)
        else:
            print("\nStopping after this step (Ctrl-C) ...", flush=True)
        self.requested, self.signal = True, signum


@contextlib.contextmanager
def stop_on_ctrl_c() -> Iterator[StopFlag]:
    """While inside, Ctrl-C (SIGINT) sets a flag instead of raising in mid-step."""
    stop = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach only the main thread; nothing to install
        return
    old = signal.signal(signal.SIGINT, stop.request)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, old)


# ---------------------------------------------------------------------------
# A lesson's numbers as a JSON file (``diffusion-lessons figures`` writes NN_run.json)
# ---------------------------------------------------------------------------

_SKIP = object()  # what json_ready returns for a value JSON cannot hold


def json_ready(value, *, _top: bool = True):
    """``value`` as plain JSON data: tensors and arrays become (nested) lists, their
    scalars and numpy numbers become Python numbers, NaN and infinities None, paths
    strings, tuples and sets lists, dict keys strings. A value with no JSON form (a
    model, a figure) is left out of its dict, or is None inside a list.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = json_ready(v, _top=False)
            if v is not _SKIP:
                out[str(k)] = v
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [
            None if v is _SKIP else v
            for v in (json_ready(v, _top=False) for v in items)
        ]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_ready(dataclasses.asdict(value), _top=_top)
    tolist = getattr(value, "tolist", None)  # torch tensors, numpy arrays and scalars
    if callable(tolist):
        try:
            return json_ready(tolist(), _top=_top)
        except (TypeError, ValueError, RuntimeError):
            pass
    return None if _top else _SKIP


def write_json(path: str | Path, data) -> Path:
    """Write ``json_ready(data)`` to ``path`` atomically: a temporary file in the same
    folder, then ``os.replace``, so a reader never sees half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_ready(data), indent=1, allow_nan=False) + "\n"
    with temporary_file(path) as (fd, tmp):
        with os.fdopen(os.dup(fd), "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a result file is for all
        os.replace(tmp, path)
    return path
