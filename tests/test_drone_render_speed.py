"""The speed work on DroneRoom's renders and step must not change what the drone sees: seeded
frames against a recording made before it, the stereo summary against the plain numpy version
it replaced, and parked obstacles (hidden from the renderer) out of every view.

The recording depends on the renderer (pybullet's TinyRenderer) and, for disparity, on OpenCV's
SGBM: its parts are skipped, with the reason, where those versions differ from the recording's."""

from __future__ import annotations

import json
import zlib
from importlib.metadata import version
from pathlib import Path

import cv2
import numpy as np
import pybullet as p
import pytest

from selfgym.envs.drone.room_env import DroneRoomEnv
from selfgym.envs.drone.scene import PARKED
from selfgym.envs.drone.stereo import INVALID_DISPARITY, N_STRIPS, SUMMARY_NAMES, cue_columns, summarise
from selfgym.envs.drone.textures import GENERATOR_VERSION

RECORDING = json.loads((Path(__file__).parent / "data" / "drone_frames.json").read_text())


def crc(a: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(a).tobytes())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seeded_frames_match_the_recording(seed):
    if version("pybullet") != RECORDING["pybullet"]:
        pytest.skip(f"frames recorded with pybullet {RECORDING['pybullet']}, this is {version('pybullet')}")
    assert RECORDING["texture_generator"] == GENERATOR_VERSION, "textures changed since the recording: re-record it"
    same_matcher = cv2.__version__ == RECORDING["opencv"]
    env = DroneRoomEnv()
    env.reset(seed=seed)
    rng = np.random.default_rng(100 + seed)
    for t, (left_crc, right_crc, depth_crc, disp_crc, stereo) in enumerate(RECORDING["frames"][str(seed)]):
        if t:
            env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        x, y, yaw = env.pose
        left, right, depth = env.camera.render(env.client, x, y, env.z, yaw, env.renderer, "render")
        assert np.array_equal(left, env._frame["left"])
        assert [crc(left), crc(right), crc(depth)] == [left_crc, right_crc, depth_crc], (seed, t)
        if same_matcher:
            assert crc(env._frame["disparity"]) == disp_crc, (seed, t)
            assert [float(v) for v in env._frame["stereo"]] == stereo, (seed, t)  # exactly
    env.close()


def summarise_before(disp: np.ndarray, roi: float = 0.5, min_valid: float = 0.05) -> np.ndarray:
    """``stereo.summarise`` as it was before the speed work (array arithmetic, np.partition)."""
    valid = disp != INVALID_DISPARITY
    out = np.full(len(SUMMARY_NAMES), INVALID_DISPARITY, dtype=np.float32)
    col_sum = np.where(valid, disp, 0.0).sum(0)
    col_n = valid.sum(0)
    rows, width = disp.shape
    cols = cue_columns(width, roi)
    n = col_n[cols].sum()
    if n > 0 and n >= min_valid * rows * (cols.stop - cols.start):
        out[0] = col_sum[cols].sum() / n
    total = col_n.sum()
    out[2] = total / disp.size
    if total > 0 and out[2] >= min_valid:
        v = disp[valid]
        k = int(0.9 * (len(v) - 1))
        out[1] = np.partition(v, k)[k]
    edges = np.linspace(0, width, N_STRIPS + 1).astype(int)
    s_sum, s_n = np.add.reduceat(col_sum, edges[:-1]), np.add.reduceat(col_n, edges[:-1])
    ok = (s_n > 0) & (s_n >= min_valid * rows * np.diff(edges))
    out[3:] = np.where(ok, s_sum / np.maximum(s_n, 1), INVALID_DISPARITY)
    return out


@pytest.mark.parametrize("shape", [(48, 64), (12, 16), (30, 50)])
def test_summarise_equals_the_array_version_it_replaced(shape):
    rng = np.random.default_rng(sum(shape))
    cases = 0
    for valid_fraction in (0.0, 0.004, 0.03, 0.05, 0.06, 0.3, 1.0):
        for on_grid in (True, False):  # matchers give 1/16 px steps; anything else takes the other path
            disp = rng.uniform(0.0, 15.99, shape).astype(np.float32)
            if on_grid:
                disp = np.floor(disp * 16.0) / 16.0
            disp[rng.random(shape) >= valid_fraction] = INVALID_DISPARITY
            if valid_fraction == 0.3:
                disp[:, : shape[1] // 5] = INVALID_DISPARITY  # a strip with no valid pixel
            for roi in (0.5, 0.3):
                got, want = summarise(disp, roi), summarise_before(disp, roi)
                assert got.dtype == np.float32
                assert np.array_equal(got, want), (valid_fraction, on_grid, roi, got, want)
                cases += 1
    assert cases == 28


def test_parked_obstacles_are_hidden_and_out_of_view():
    """Obstacles are made before the room's surfaces (TinyRenderer draws in that order and
    depth-tests before shading) and parked ones are transparent (skipped); showing the parked
    ones again changes no pixel."""
    env = DroneRoomEnv(min_obstacles=1, max_obstacles=3)
    room, c = env.room, env.client
    assert max(room.poles + room.boxes) < min(room.surfaces)
    checked = 0
    for seed in range(4):
        env.reset(seed=seed)
        obstacles = room.poles + room.boxes
        parked = [b for b in obstacles if p.getBasePositionAndOrientation(b, physicsClientId=c)[0] == PARKED]
        assert 0 < len(parked) < len(obstacles)
        alpha = {b: p.getVisualShapeData(b, physicsClientId=c)[0][7][3] for b in obstacles}
        assert all(alpha[b] == (0.0 if b in parked else 1.0) for b in obstacles)
        x, y, yaw = env.pose
        for turn in np.linspace(0, 2 * np.pi, 4, endpoint=False):
            hidden = env.camera.render(c, x, y, env.z, yaw + turn, env.renderer, "render")
            for b in parked:
                p.changeVisualShape(b, -1, rgbaColor=[1, 1, 1, 1], physicsClientId=c)
            shown = env.camera.render(c, x, y, env.z, yaw + turn, env.renderer, "render")
            for b in parked:
                p.changeVisualShape(b, -1, rgbaColor=[1, 1, 1, 0], physicsClientId=c)
            assert all(np.array_equal(a, b) for a, b in zip(hidden, shown))
            checked += 1
    assert checked == 16
    env.close()
