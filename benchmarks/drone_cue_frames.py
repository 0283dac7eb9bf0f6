"""Record DroneRoom frames once, for offline cue searches (benchmarks/drone_cue_search.py).

The flight is the agent's stereo flight plan (drone_encoder_roc.stereo_flight: forward; turn on an
obstacle and 5 steps more); a new room (layout and textures) at each reset, every ``flight_time`` s.
Per frame with a valid stereo cue: the left image, the stereo summary (cue, p90, valid fraction,
5 strips), the true corridor disparity (``gt``: all pixels; ``gt_valid``: the pixels where stereo
gave a disparity, the ones its cue averages), the room's index in the flight, the step within the room,
and per room the pool indices of the textures on its 14 surfaces (4 walls, floor, ceiling, poles, boxes);
per file the texture generator's version (``texture_generator``; absent in recordings before version 2).
For motion cues (looming, benchmarks/drone_cue_search.py): the previous step's left image (``prev_images``,
kept whether or not that frame had a valid stereo cue; zeros for a room's first frame), whether the previous
action was a forward move (``prev_forward``) and whether it collided (``prev_collision``: the safety pilot
then put the drone elsewhere, so the two images are unrelated); absent in recordings before 2026-11-30 20:00.
With ``--history K`` (K > 1) also the last K images (``history_images``, (n, K, H, W), one step back first)
and whether each of those steps was a forward move without collision in the same room (``history_forward``):
looming over several steps.

    python benchmarks/drone_cue_frames.py --seeds 0 1 2 3 4 --train-frames 6000 --test-frames 2400
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from selfgym.envs.drone.room_env import DroneRoomEnv
from selfgym.envs.drone.stereo import INVALID_DISPARITY, cue_columns
from selfgym.envs.drone.textures import GENERATOR_VERSION, texture_files

TAU_GT, TAU_STOP = 2.8, 5.0  # the agent's obstacle_disparity and stop_disparity (hyperparams/persistent_ssl.yml)


def record(split: str, seed: int, n: int, flight_time: float, disparity_mode: str = "sgbm",
           n_textures: int = 12, history: int = 1) -> dict[str, np.ndarray]:
    """``n`` frames of stereo flight in rooms of ``split``, with room and texture ids (and, for ``history``
    > 1, the last ``history`` images and moves)."""
    if history < 1:
        raise ValueError(f"history must be >= 1 step, got {history}")
    env = DroneRoomEnv(texture_split=split, disparity_mode=disparity_mode, flight_time=flight_time, n_textures=n_textures)
    pool = [p.name for p in texture_files(env.room_cfg.n_textures, env.room_cfg.texture_contrast)]
    depth: list[np.ndarray] = []
    compute = env.matcher.compute

    def keep_depth(left, right, dep=None, rng=None):  # the left depth buffer the env computes disparity with
        depth[:] = [dep]
        return compute(left, right, dep, rng)

    env.matcher.compute = keep_depth
    cols = cue_columns(env.camera.width, env.cue_roi)
    obs, info = env.reset(seed=seed)
    room, step, hold = 0, 0, 0
    out_valid: list[float] = []
    rooms_tex = [[pool.index(p.name) for p in env.room.shown_textures]]
    out: dict[str, list] = {k: [] for k in ("images", "stereo", "gt", "room", "step", "prev_images", "prev_forward",
                                            "prev_collision")}
    prev_image, prev_forward, prev_collision = np.zeros_like(obs["image"][:, :, 0]), False, False
    blank = np.zeros_like(prev_image)
    past: list[np.ndarray] = [blank] * history  # one step back first
    past_fwd: list[bool] = [False] * history  # that step was a forward move, no collision, same room
    hist_images: list[np.ndarray] = []
    hist_fwd: list[list[bool]] = []
    while len(out["images"]) < n:
        stereo = obs["stereo"]
        cue = float(stereo[0])
        if cue >= 0:
            out["images"].append(obs["image"][:, :, 0].copy())
            out["stereo"].append(stereo.copy())
            out["gt"].append(info["gt"]["disparity"])
            out["room"].append(room)
            out["step"].append(step)
            out["prev_images"].append(prev_image)
            out["prev_forward"].append(prev_forward)
            out["prev_collision"].append(prev_collision)
            if history > 1:
                hist_images.append(np.stack(past))
                hist_fwd.append(list(past_fwd))
            disp = env._frame["disparity"][:, cols]
            true = env.camera.fb / np.maximum(depth[0][:, cols], 1e-3)
            out_valid.append(float(true[disp != INVALID_DISPARITY].mean()))
        obstacle = cue < 0 or cue > TAU_GT or max(cue, float(stereo[3:].max())) > TAU_STOP
        hold = 5 if obstacle else max(hold - 1, 0)
        prev_image, prev_forward = obs["image"][:, :, 0].copy(), not (obstacle or hold > 0)
        obs, _, _, truncated, info = env.step(np.array([1.0, 0.0] if prev_forward else [-1.0, 1.0], np.float32))
        prev_collision = bool(info["frame"]["collision"])
        past, past_fwd = [prev_image] + past[:-1], [prev_forward and not prev_collision] + past_fwd[:-1]
        step += 1
        if truncated:
            obs, info = env.reset()
            room, step = room + 1, 0
            prev_image, prev_forward, prev_collision = np.zeros_like(prev_image), False, False
            past, past_fwd = [blank] * history, [False] * history
            rooms_tex.append([pool.index(p.name) for p in env.room.shown_textures])
    env.close()
    stereo = np.array(out["stereo"], np.float32)
    extra = ({"history_images": np.array(hist_images, np.uint8), "history_forward": np.array(hist_fwd, bool)}
             if history > 1 else {})
    return {**extra, "images": np.array(out["images"], np.uint8), "stereo": stereo, "cue": stereo[:, 0],
            "gt": np.array(out["gt"], np.float32), "room": np.array(out["room"], np.int32),
            "step": np.array(out["step"], np.int32), "room_textures": np.array(rooms_tex, np.int16),
            "gt_valid": np.array(out_valid, np.float32), "prev_images": np.array(out["prev_images"], np.uint8),
            "prev_forward": np.array(out["prev_forward"], bool), "prev_collision": np.array(out["prev_collision"], bool)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--train-frames", type=int, default=6000)
    ap.add_argument("--test-frames", type=int, default=2400)
    ap.add_argument("--flight-time", type=float, default=60.0, help="seconds per room (the env's default)")
    ap.add_argument("--out-dir", default="/tmp/drone_frames")
    ap.add_argument("--splits", nargs="+", default=["train", "test"], choices=["train", "test"])
    ap.add_argument("--history", type=int, default=1,
                    help="images kept per frame (> 1: history_images, for looming over several steps)")
    ap.add_argument("--single-texture", action="store_true",
                    help="instead: rooms with one texture (n_textures=1, the default job's setting), files single_seed<s>.npz")
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        runs = [r for r in (("train", args.train_frames, seed), ("test", args.test_frames, 10_000 + seed)) if r[0] in args.splits]
        for split, n, env_seed in [("all", args.train_frames, seed)] if args.single_texture else runs:
            t0, c0 = time.time(), time.process_time()
            rec = record(split, env_seed, n, args.flight_time, n_textures=1 if args.single_texture else 12, history=args.history)
            path = out / f"{'single' if args.single_texture else split}_seed{seed}.npz"
            np.savez_compressed(path, **rec, flight_time=args.flight_time, env_seed=env_seed, texture_generator=GENERATOR_VERSION)
            print(f"{path}: {n} frames, {rec['room'][-1] + 1} rooms, positives {(rec['cue'] > TAU_GT).mean():.3f}, "
                  f"{time.time() - t0:.0f} s wall, {time.process_time() - c0:.0f} CPU-s, load {os.getloadavg()[0]:.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
