"""Collect play: the scripted play policy in PlayTable, written to a play log (see dataset.py).

    python -m envs.play_table.collect --hours 0.1 --out play.npz [--seed 0] [--noise 0.15] [--images]
    python -m envs.play_table.collect --hours 0.1 --out play_pixels.npz --pixels 64   # a pixel log

One hour is 108,000 control steps at 30 Hz. Play is one long unsegmented stream; the env is
reset (a new episode id) only when an object leaves the table or a block lies where the hand
cannot reach it (``out_of_reach``). Why the second: nothing in play brings such a block back, and
without the reset the 1 h pilot log had the cube within the hand's reach in only 26% of its steps
(near the reset area 8%), the long block 42%; a human at play puts such a block back.

``--pixels SIZE`` writes a pixel log (``dataset.py``): the camera image of every step, rendered
while playing, with the proprioception as ``obs``. Why render during play rather than re-render
a state log afterwards: the image is exactly what the camera saw at that step (re-rendering
would need the whole arm, finger and desk state put back into a scene outside ``scene.py``,
a second model of the world to trust), the play stream is the same seeded stream as the state
log's (rendering does not touch the physics: same seed, same states; tested), and the cost is
the renders either way (about 20 ms of CPU each with TinyRenderer, against 0.5 ms a step).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from selfgym.envs.play_table import layout as L
from selfgym.envs.play_table.dataset import observation_layout, pixel_observation_layout
from selfgym.envs.play_table.env import PlayTableEnv
from selfgym.envs.play_table.primitives import PlayPolicy
from selfgym.envs.play_table.observation import PROPRIO_DIM, SCENE_KEYS
from selfgym.envs.play_table.scene import CONTROL_HZ


REACH_MARGIN = 0.02  # m: a block centre this far outside the hand's target box is still graspable


def out_of_reach(scene_state: np.ndarray) -> bool:
    """True when a block's centre lies outside the box the hand's target is clipped to (x, y), plus
    ``REACH_MARGIN``: behind or beside the robot, past the far edge of the work area."""
    for key in ("long_pos", "cube_pos"):
        x, y = scene_state[SCENE_KEYS[key]][:2]
        if not (L.EE_LOW[0] - REACH_MARGIN <= x <= L.EE_HIGH[0] + REACH_MARGIN
                and L.EE_LOW[1] - REACH_MARGIN <= y <= L.EE_HIGH[1] + REACH_MARGIN):
            return True
    return False


def collect(hours: float, seed: int = 0, noise: float = 0.15, images: bool = False,
            progress: bool = True, pixels: int | None = None) -> dict[str, np.ndarray]:
    """Play for ``hours``; ``images``: add 84 px renders to a state log; ``pixels``: a pixel log
    (``obs`` = proprioception, ``images`` = the SIZE px camera, the pixel env's observation)."""
    steps = int(round(hours * 3600 * CONTROL_HZ))
    if steps < 1:
        raise ValueError(f"--hours {hours} is less than one control step")
    if pixels is not None and (images or isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 36):
        raise ValueError(f"--pixels must be a whole number >= 36 and not combined with --images, got {pixels!r}")
    with warnings.catch_warnings():  # free play is what a collector wants; the env's warning is for RL runs
        warnings.filterwarnings("ignore", message="PlayTable without a task is free play")
        env = PlayTableEnv(render_mode="rgb_array" if images else None, render_size=84)
    policy = PlayPolicy(noise=noise, seed=seed)
    obs, _ = env.reset(seed=seed)
    out = {"obs": np.zeros((steps, obs.shape[0]), np.float32), "actions": np.zeros((steps, 7), np.float32),
           "episode_ids": np.zeros(steps, np.int32)}
    if images:
        out["images"] = np.zeros((steps, 84, 84, 3), np.uint8)
    if pixels:
        out["images"] = np.zeros((steps, pixels, pixels, 3), np.uint8)
    report_every = 1000 if pixels else 10000  # a rendered step costs ~40x a plain one
    episode, t0 = 0, time.time()
    for t in range(steps):
        action = policy.act(obs)
        out["obs"][t], out["actions"][t], out["episode_ids"][t] = obs, action, episode
        if images:
            out["images"][t] = env.render()
        if pixels:
            out["images"][t] = env.scene.camera_image(pixels)  # PlayTablePixelsGoalEnv's camera
        obs, _, terminated, _, _ = env.step(action)
        if terminated or out_of_reach(obs[PROPRIO_DIM:]):
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
            policy.follower = None
        if progress and (t + 1) % report_every == 0:
            print(f"{t + 1}/{steps} steps, {(t + 1) / (time.time() - t0):.0f} steps/s", flush=True)
    env.close()
    out["scene_states"] = out["obs"][:, PROPRIO_DIM:].copy()
    if pixels:
        out["obs"] = out["obs"][:, :PROPRIO_DIM].copy()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Collect scripted play in PlayTable to an .npz play log.")
    ap.add_argument("--hours", type=float, required=True, help="hours of play at 30 Hz (0.1 = 10,800 steps)")
    ap.add_argument("--out", required=True, help="output .npz path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=0.15, help="std of Gaussian action noise on the primitives")
    ap.add_argument("--images", action="store_true", help="also store 84x84 static-camera images (large)")
    ap.add_argument("--pixels", type=int, default=None, metavar="SIZE",
                    help="write a pixel log for PlayTablePixelsGoal-v0: SIZE px camera images + proprioception")
    args = ap.parse_args(argv)
    save_play(args.out, args.hours, args.seed, args.noise, args.images, pixels=args.pixels)


def save_play(path: str, hours: float, seed: int = 0, noise: float = 0.15, images: bool = False,
              pixels: int | None = None) -> dict:
    """Collect play and write the log with its meta (layout, kind); returns the meta."""
    t0 = time.time()
    data = collect(hours, seed, noise, images, pixels=pixels)
    meta = {"hours": hours, "seed": seed, "noise": noise, "control_hz": CONTROL_HZ,
            "steps": len(data["obs"]), "episodes": int(data["episode_ids"][-1]) + 1,
            "kind": "play", "obs_layout": observation_layout() if pixels is None else pixel_observation_layout(pixels),
            "reset_out_of_reach": True}
    if pixels is not None:
        meta["image_size"] = pixels
    np.savez_compressed(path, meta=json.dumps(meta), **data)
    print(f"wrote {path}: {meta['steps']} steps, {meta['episodes']} episode(s), {time.time() - t0:.0f} s")
    return meta


if __name__ == "__main__":
    main()
