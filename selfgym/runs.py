"""Run folders and checkpoints.

A run lives in ``logs/<agent>/<env>_<N>/``. Checkpoints are folders written atomically
(a temporary folder, then a rename) holding ``state.pt`` (tensors and plain data only, read
back with ``torch.load(weights_only=True)``, so loading never runs pickled code) and
``meta.json`` with the step count and a SHA-256 of ``state.pt`` to detect corruption.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import yaml

CHECKPOINT_FORMAT = 1
STATE_FILE, META_FILE = "state.pt", "meta.json"
MODEL_DIR, BEST_DIR, CHECKPOINT_DIR = "model", "best_model", "checkpoints"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete or corrupt."""


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
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)


def read_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def write_status(run_dir: Path, state: str, **extra: Any) -> None:
    """``status.json``: running, finished, interrupted or failed, with the step count."""
    data = {"state": state, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
    tmp = run_dir / "status.json.tmp"
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, run_dir / "status.json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(target: Path, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``state`` and ``meta`` into the folder ``target``, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(state, tmp / STATE_FILE)
    meta = {"format": CHECKPOINT_FORMAT, **meta, "sha256": _sha256(tmp / STATE_FILE)}
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
    for f in (tmp / STATE_FILE, tmp / META_FILE):
        with open(f, "rb+") as fh:
            os.fsync(fh.fileno())
    if target.exists():
        old = target.parent / f".old-{target.name}-{os.getpid()}"
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
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
    if verify and meta.get("sha256") and _sha256(state_path) != meta["sha256"]:
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
