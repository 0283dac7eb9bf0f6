"""Run folders and checkpoints.

A run lives in ``logs/<agent>/<env>_<N>/``. Checkpoints are folders written atomically
(a temporary folder, then a rename) holding ``state.pt`` (tensors and plain data only, read
back with ``torch.load(weights_only=True)``, so loading never runs pickled code) and
``meta.json`` with the step count and a SHA-256 of ``state.pt`` to detect corruption.

Every other file of a run goes through ``atomic_output``/``atomic_write``: written beside its
target under a ``.tmp-`` name, fsynced, then ``os.replace``d, so a kill or a full disk leaves
the old file or the new one, never a torn one. Leftover ``.tmp-``/``.old-`` entries of a killed
writer are removed by ``remove_stale_temporaries`` when the run is resumed. One trainer writes
a run at a time: ``RunLock`` holds an OS file lock (``FileLock``, also the default model cache's) on
``trainer.lock`` for the whole training.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

CHECKPOINT_FORMAT = 1
STATE_FILE, META_FILE = "state.pt", "meta.json"
MODEL_DIR, BEST_DIR, CHECKPOINT_DIR = "model", "best_model", "checkpoints"


LOCK_FILE = "trainer.lock"
_STALE = re.compile(r"\.(tmp|old)-.+")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete or corrupt."""


class LockHeldError(RuntimeError):
    """Another live process holds a ``FileLock``; ``holder`` is its pid as it wrote it."""

    def __init__(self, path: Path, holder: str, message: str | None = None) -> None:
        super().__init__(message or f"{path} is held by process {holder}")
        self.path, self.holder = path, holder


class RunLockedError(LockHeldError):
    """Another live process is training this run."""


# -- atomic files ---------------------------------------------------------------------------


def _fsync_path(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk, so a rename never publishes unwritten data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success fsync it and rename it over ``path``.

    The temporary name keeps the suffix (libraries such as imageio pick the format from it).
    On any error, including a full disk, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # the rename itself durable; not every filesystem allows it
        _fsync_path(path.parent)


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Replace ``path`` by ``data`` atomically (see ``atomic_output``)."""
    with atomic_output(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)


def remove_stale_temporaries(folder: Path) -> list[str]:
    """Remove the ``.tmp-``/``.old-`` leftovers of a killed writer in ``folder``; return their names.

    A kill between the two renames of ``save_checkpoint`` leaves ``.old-<name>-<pid>`` (the
    previous, complete version) and no ``<name>``: that version is put back first. Only call
    this while holding the run's lock: a live writer's temporaries look the same.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    for old in folder.iterdir():
        match = re.fullmatch(r"\.old-(.+)-\d+", old.name)
        if match and not (folder / match.group(1)).exists():
            os.replace(old, folder / match.group(1))
    removed = []
    for entry in folder.iterdir():
        if _STALE.fullmatch(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry.name)
    return sorted(removed)


# -- one trainer per run --------------------------------------------------------------------


class FileLock:
    """An exclusive ``flock`` on one file: one trainer per run, one builder of a cache.

    The OS releases it when the process exits or is killed, so a crash never leaves a stale
    lock; the file holds the owner's pid (written in place: it is a note, not data), which a
    refused or waiting process reports.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, wait: bool = False) -> "FileLock":
        """Take the lock; when another process holds it, raise ``LockHeldError`` naming that
        process, or with ``wait`` block until it lets go."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockHeldError(self.path, holder) from None
        except BaseException:  # Ctrl-C while waiting
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunLock(FileLock):
    """The trainer's ``FileLock`` on ``<run>/trainer.lock``, held for the whole run; a second
    trainer is refused with ``RunLockedError`` (it never waits)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(Path(run_dir) / LOCK_FILE)

    def acquire(self, wait: bool = False) -> "RunLock":
        if wait:
            raise ValueError("RunLock never waits: a second trainer on a run is refused, not queued")
        try:
            super().acquire()
        except LockHeldError as exc:
            raise RunLockedError(self.path, exc.holder,
                                 f"{self.path.parent} is being trained by process {exc.holder} (it holds {self.path}); "
                                 "wait for it to finish, or stop it, before resuming") from None
        return self


def env_folder_name(env_id: str) -> str:
    return env_id.replace("/", "-")


def new_run_dir(log_folder: str | Path, agent: str, env_id: str) -> Path:
    """``<log_folder>/<agent>/<env>_<N>`` with N one more than the largest existing (rl-zoo3)."""
    parent = Path(log_folder) / agent.replace(":", "-").replace("/", "-")
    parent.mkdir(parents=True, exist_ok=True)
    prefix = env_folder_name(env_id)
    while True:
        ids = [int(m.group(1)) for p in parent.iterdir() if (m := re.fullmatch(re.escape(prefix) + r"_(\d+)", p.name))]
        run = parent / f"{prefix}_{max(ids, default=0) + 1}"
        try:
            run.mkdir()
            return run
        except FileExistsError:  # another process took this id; try the next
            continue


def find_run(log_folder: str | Path, agent: str, env_id: str, exp_id: int = 0) -> Path:
    """The run with id ``exp_id``; 0 means the latest."""
    parent = Path(log_folder) / agent.replace(":", "-").replace("/", "-")
    prefix = env_folder_name(env_id)
    runs = {}
    if parent.is_dir():
        for p in parent.iterdir():
            if m := re.fullmatch(re.escape(prefix) + r"_(\d+)", p.name):
                runs[int(m.group(1))] = p
    if not runs:
        raise FileNotFoundError(f"no runs of agent {agent!r} on {env_id!r} under {parent}")
    if exp_id == 0:
        return runs[max(runs)]
    if exp_id not in runs:
        raise FileNotFoundError(f"no run {prefix}_{exp_id} under {parent}; found ids {sorted(runs)}")
    return runs[exp_id]


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, yaml.safe_dump(data, sort_keys=False))


def read_yaml(path: Path) -> dict[str, Any]:
    """A run's YAML mapping; a broken or non-mapping file is a ValueError naming it."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping, got {type(data).__name__}")
    return data or {}


def write_status(run_dir: Path, state: str, **extra: Any) -> None:
    """``status.json``: running, finished, interrupted or failed, with the step count."""
    data = {"state": state, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
    atomic_write(Path(run_dir) / "status.json", json.dumps(data, indent=1))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (checkpoints, datasets)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(target: Path, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``state`` and ``meta`` into the folder ``target``, atomically.

    On any error (a full disk) the temporary folder is removed and ``target`` is untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        with open(tmp / STATE_FILE, "wb") as f:  # closed even when torch.save fails: a full disk gets its space back
            torch.save(state, f)
        meta = {"format": CHECKPOINT_FORMAT, **meta, "sha256": sha256_file(tmp / STATE_FILE)}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
        for f in (tmp / STATE_FILE, tmp / META_FILE):
            _fsync_path(f)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        old = target.parent / f".old-{target.name}-{os.getpid()}"
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
    with contextlib.suppress(OSError):
        _fsync_path(target.parent)
    return target


def read_meta(folder: Path) -> dict[str, Any]:
    meta_path = folder / META_FILE
    if not meta_path.exists():
        raise CheckpointError(f"{folder} is not a checkpoint: it has no {META_FILE}")
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {folder} is corrupt: {META_FILE} is not valid JSON ({exc})") from exc


def load_checkpoint(folder: Path, verify: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, meta) of a checkpoint folder; a clear CheckpointError if anything is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint {folder} does not exist")
    meta = read_meta(folder)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {folder} has format {meta.get('format')!r}; this selfgym reads {CHECKPOINT_FORMAT}")
    state_path = folder / STATE_FILE
    if not state_path.exists():
        raise CheckpointError(f"checkpoint {folder} is incomplete: {STATE_FILE} is missing")
    if verify and meta.get("sha256") and sha256_file(state_path) != meta["sha256"]:
        raise CheckpointError(f"checkpoint {folder} is corrupt: {STATE_FILE} does not match the checksum in {META_FILE}")
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {folder} could not be read safely: {exc}") from exc
    return state, meta


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(steps, folder) of the run's periodic checkpoints, oldest first; temporaries skipped."""
    root = Path(run_dir) / CHECKPOINT_DIR
    found = []
    if root.is_dir():
        for p in root.iterdir():
            if m := re.fullmatch(r"step_(\d+)", p.name):
                found.append((int(m.group(1)), p))
    return sorted(found)


def checkpoint_dir(run_dir: Path, steps: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{steps:010d}"


def latest_valid_checkpoint(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """Newest checkpoint that loads and verifies; older ones are tried if the newest is corrupt."""
    errors = []
    for _, folder in reversed(list_checkpoints(run_dir)):
        try:
            state, meta = load_checkpoint(folder)
            return state, meta, folder
        except CheckpointError as exc:
            errors.append(str(exc))
    detail = ("; ".join(errors)) if errors else "no checkpoints were written yet"
    raise CheckpointError(f"cannot resume {run_dir}: no valid checkpoint ({detail})")


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    if keep <= 0:
        return
    for _, folder in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(folder, ignore_errors=True)


def model_folder(run_dir: Path, load_best: bool = False, checkpoint: int | None = None) -> Path:
    """Which saved weights ``evaluate.py`` should load from a run."""
    run_dir = Path(run_dir)
    if checkpoint is not None:
        folder = checkpoint_dir(run_dir, checkpoint)
        if not folder.exists():
            have = [s for s, _ in list_checkpoints(run_dir)]
            raise CheckpointError(f"no checkpoint at step {checkpoint} in {run_dir}; available steps: {have or 'none'}")
        return folder
    if load_best:
        if not (run_dir / BEST_DIR).exists():
            raise CheckpointError(f"{run_dir} has no {BEST_DIR}/ (best models are saved when --eval-freq > 0)")
        return run_dir / BEST_DIR
    if (run_dir / MODEL_DIR).exists():
        return run_dir / MODEL_DIR
    ckpts = list_checkpoints(run_dir)
    if ckpts:
        return ckpts[-1][1]
    raise CheckpointError(f"{run_dir} holds no model and no checkpoint: training did not save anything yet")
