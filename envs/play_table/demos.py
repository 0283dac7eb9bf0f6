"""Expert demonstrations: the scripted expert solving each of the 18 tasks, written as a log.

    python -m selfgym.envs.play_table.demos --per-task 50 --out expert_demos.npz [--seed 0] [--noise 0.05]
    python -m selfgym.envs.play_table.demos --per-task 50 --out expert_demos_pixels.npz --pixels 64

The format is the play log's (``dataset.py``), one episode per demonstration, plus ``task_ids``
(the index into ``tasks.TASK_NAMES``). Only successful demonstrations are kept; each ends the
step the task's detector fires, with that final state appended (action: hold still), so the
episode's last scene state is the demonstration's goal. The BC baseline of Lynch et al. learns
from these; the play agents never see them.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from selfgym.envs.play_table.dataset import observation_layout, pixel_observation_layout
from selfgym.envs.play_table.env import PlayTableEnv
from selfgym.envs.play_table.primitives import ScriptedExpert
from selfgym.envs.play_table.observation import PROPRIO_DIM
from selfgym.envs.play_table.scene import CONTROL_HZ
from selfgym.envs.play_table.tasks import TASK_NAMES

MAX_DEMO_STEPS = 150
TASK_SEED_STRIDE = 100_000  # demo i of task j is reset with seed + j * stride + attempt: disjoint per task


def demonstrate(env: PlayTableEnv, task: str, seed: int, noise: float, frames: list | None = None,
                image_size: int = 64) -> tuple[np.ndarray, np.ndarray] | None:
    """(obs (T+1, D), actions (T+1, A)) of one successful demonstration from ``reset(seed)``, else None.

    ``frames``: a list that gets the ``image_size`` px camera image of every observation (a pixel log's)."""
    obs, _ = env.reset(seed=seed)
    expert = ScriptedExpert(task, noise=noise, seed=seed)
    observations, actions = [obs], []
    if frames is not None:
        frames.clear()
        frames.append(env.scene.camera_image(image_size))
    for _ in range(MAX_DEMO_STEPS):
        action = expert.act(obs)
        obs, _, terminated, _, info = env.step(action)
        actions.append(action)
        observations.append(obs)
        if frames is not None:
            frames.append(env.scene.camera_image(image_size))
        if info["is_success"]:
            hold = np.zeros_like(action)
            hold[-1] = action[-1]
            return np.asarray(observations, np.float32), np.asarray(actions + [hold], np.float32)
        if terminated:
            return None
    return None


def collect_demos(per_task: int, seed: int = 0, noise: float = 0.05, tasks: tuple[str, ...] = TASK_NAMES,
                  progress: bool = True, pixels: int | None = None) -> dict[str, np.ndarray]:
    """``per_task`` successful demonstrations of each task (failed attempts are skipped; at most 3x, or 10);
    ``pixels``: a pixel log (``obs`` = proprioception, ``images`` = the SIZE px camera)."""
    if per_task < 1:
        raise ValueError(f"--per-task must be >= 1, got {per_task}")
    if pixels is not None and (isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 36):
        raise ValueError(f"--pixels must be a whole number >= 36, got {pixels!r}")
    parts: dict[str, list[np.ndarray]] = {"obs": [], "actions": [], "episode_ids": [], "task_ids": []}
    frames: list | None = [] if pixels else None
    if pixels:
        parts["images"] = []
    episode = 0
    for task_index, task in enumerate(tasks):
        env = PlayTableEnv(task=task)
        kept, attempt = 0, 0
        while kept < per_task and attempt < max(3 * per_task, 10):
            demo = demonstrate(env, task, seed + TASK_SEED_STRIDE * TASK_NAMES.index(task) + attempt, noise,
                               frames, pixels or 64)
            attempt += 1
            if demo is None:
                continue
            obs, actions = demo
            parts["obs"].append(obs)
            parts["actions"].append(actions)
            parts["episode_ids"].append(np.full(len(obs), episode, np.int32))
            parts["task_ids"].append(np.full(len(obs), TASK_NAMES.index(task), np.int32))
            if frames is not None:
                parts["images"].append(np.asarray(frames, np.uint8))
            kept, episode = kept + 1, episode + 1
        env.close()
        if progress:
            print(f"{task}: {kept}/{attempt} demonstrations succeeded", flush=True)
        if kept == 0:
            raise RuntimeError(f"the scripted expert never solved {task} in {attempt} attempts")
    out = {key: np.concatenate(values) for key, values in parts.items()}
    out["scene_states"] = out["obs"][:, PROPRIO_DIM:].copy()
    if pixels:
        out["obs"] = out["obs"][:, :PROPRIO_DIM].copy()
    return out


def save_demos(path: str, per_task: int, seed: int = 0, noise: float = 0.05, progress: bool = True,
               pixels: int | None = None) -> dict:
    """Collect and write the demonstrations; returns the meta written with them."""
    t0 = time.time()
    data = collect_demos(per_task, seed, noise, progress=progress, pixels=pixels)
    meta = {"kind": "expert_demos", "per_task": per_task, "seed": seed, "noise": noise, "control_hz": CONTROL_HZ,
            "steps": len(data["obs"]), "episodes": int(data["episode_ids"][-1]) + 1, "tasks": list(TASK_NAMES),
            "obs_layout": observation_layout() if pixels is None else pixel_observation_layout(pixels)}
    if pixels is not None:
        meta["image_size"] = pixels
    np.savez_compressed(path, meta=json.dumps(meta), **data)
    if progress:
        print(f"wrote {path}: {meta['episodes']} demonstrations, {meta['steps']} steps, {time.time() - t0:.0f} s")
    return meta


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Scripted expert demonstrations of the 18 PlayTable tasks (.npz).")
    ap.add_argument("--per-task", type=int, required=True, help="successful demonstrations per task")
    ap.add_argument("--out", required=True, help="output .npz path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=0.05, help="std of Gaussian action noise on the expert")
    ap.add_argument("--pixels", type=int, default=None, metavar="SIZE",
                    help="write a pixel log for PlayTablePixelsGoal-v0: SIZE px camera images + proprioception")
    args = ap.parse_args(argv)
    save_demos(args.out, args.per_task, args.seed, args.noise, pixels=args.pixels)


if __name__ == "__main__":
    main()
