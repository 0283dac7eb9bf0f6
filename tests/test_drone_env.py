"""DroneRoom: stereo against ground truth, collisions, bad input, seeding, check_env."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.envs.drone.room_env import DroneRoomEnv
from selfgym.envs.drone.stereo import INVALID_DISPARITY, DisparityEstimator, StereoCamera, cue_columns, summarise
from selfgym.envs.drone.textures import TexturelessSceneError

IDS = ["selfgym/DroneRoom-v0", "selfgym/DroneRoomDiscrete-v0"]


@pytest.fixture
def empty_room():
    env = DroneRoomEnv(min_obstacles=0, max_obstacles=0, obs_mode="stereo")
    env.reset(seed=0)
    yield env
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("obs_mode", ["mono_image", "mono_features", "stereo"])
def test_check_env_obs_modes(obs_mode):
    env = gym.make("selfgym/DroneRoom-v0", obs_mode=obs_mode)
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)
    env.close()


# Stated tolerance: the median disparity of the central columns is within 0.4 px + 5 % of the
# true f*B/Z (0.65 px + 5 % for StereoBM) at 0.5-3 m, with >= 80 % of pixels matched (40 % for
# BM). At 64 x 48 px the matchers' sub-pixel estimates lock to whole pixels (measured: SGBM
# reads 2.0 px for a true 1.66 px at 2 m), hence the absolute term.
@pytest.mark.parametrize("mode", ["sgbm", "bm", "fast_from_depth"])
def test_stereo_disparity_matches_depth_on_textured_wall(mode):
    env = DroneRoomEnv(min_obstacles=0, max_obstacles=0, obs_mode="stereo", disparity_mode=mode)
    cam = env.camera
    L = env.room_cfg.half_size
    for seed in range(3):  # three different wall textures
        env.reset(seed=seed)
        for z in (0.5, 0.75, 1.0, 1.5, 2.0, 3.0):
            env.place(L - z, 0.0, 0.0)  # facing the +x wall from z metres
            disp = env._frame["disparity"][:, cue_columns(cam.width, 0.5)]
            ok = disp != INVALID_DISPARITY
            min_valid = 0.4 if mode == "bm" else 0.8  # BM's texture threshold drops more pixels
            assert ok.mean() >= min_valid, (mode, seed, z, ok.mean())
            true = cam.fb / z
            tol = (0.65 if mode == "bm" else 0.4) + 0.05 * true
            assert abs(np.median(disp[ok]) - true) <= tol, (mode, seed, z, np.median(disp[ok]), true)
            assert env._frame["gt_distance"] == pytest.approx(z)
    env.close()


def test_failed_matching_gives_invalid_disparity_not_zero():
    cam = StereoCamera()
    flat = np.full((cam.height, cam.width), 128, np.uint8)
    for mode in ("sgbm", "bm", "fast_from_depth"):
        est = DisparityEstimator(cam, mode)
        disp = est.compute(flat, flat, np.full(flat.shape, 1.0, np.float32), np.random.default_rng(0))
        assert (disp == INVALID_DISPARITY).all(), mode
        summary = summarise(disp)
        assert summary[0] == INVALID_DISPARITY and summary[2] == 0.0


def test_textureless_scene_and_unknown_modes_are_refused():
    with pytest.raises(TexturelessSceneError, match="texture"):
        DroneRoomEnv(texture_contrast=0.0)
    with pytest.raises(TexturelessSceneError, match="textureless"):
        DroneRoomEnv(textures="none")
    with pytest.raises(ValueError, match="obs_mode 'depth'"):
        DroneRoomEnv(obs_mode="depth")
    with pytest.raises(ValueError, match="disparity_mode"):
        DroneRoomEnv(disparity_mode="magic")
    with pytest.raises(TypeError, match="colour"):
        DroneRoomEnv(colour="red")


def test_bad_actions_get_clear_errors():
    env = DroneRoomEnv(obs_mode="stereo")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.array([np.nan, 0.0], np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, np.float32))
    env.close()
    denv = DroneRoomEnv(obs_mode="stereo", discrete=True)
    denv.reset(seed=0)
    with pytest.raises(ValueError, match="0 \\(forward\\) or 1"):
        denv.step(2)
    denv.close()


def test_collision_detected_and_counted(empty_room):
    env = empty_room
    L, r = env.room_cfg.half_size, env.room_cfg.drone_radius
    env.place(L - r - 0.12, 0.0, 0.0)  # 12 cm from touching the +x wall, facing it
    collided = []
    for _ in range(5):  # 5 cm per step at full speed
        _, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0], np.float32))
        collided.append(info["frame"]["collision"])
        if info["frame"]["collision"]:
            assert info["reward_components"]["collision"] == -1.0 and reward < 0
    assert collided[:2] == [False, False] and any(collided[2:])
    assert env.stats.collisions == sum(collided)
    # after a collision the drone is put back somewhere free and flies on
    assert env.room.clearance(*env.pose[:2]) > r


def test_collision_terminates_when_asked():
    env = DroneRoomEnv(obs_mode="stereo", terminate_on_collision=True, min_obstacles=0, max_obstacles=0)
    env.reset(seed=0)
    env.place(env.room_cfg.half_size - 0.28, 0.0, 0.0)
    _, _, terminated, _, info = env.step(np.array([1.0, 0.0], np.float32))
    assert terminated and info["collisions"] == 1.0 and info["is_success"] is False
    env.close()


def test_obstacles_block_and_rays_agree_with_geometry():
    env = DroneRoomEnv(obs_mode="stereo", min_obstacles=6, max_obstacles=6)
    env.reset(seed=4)
    layout = env.room.layout
    assert len(layout.poles) + len(layout.boxes) >= 4
    for cx, cy, rad in layout.poles:
        assert env.room.clearance(cx, cy) < 0  # inside a pole
        assert env.room.ray(cx - 1.0, cy, 0.0) <= 1.0 - rad + 1e-9
    env.close()


def test_seeded_reset_is_reproducible():
    a, b = DroneRoomEnv(), DroneRoomEnv()
    oa, _ = a.reset(seed=7)
    ob, _ = b.reset(seed=7)
    assert np.array_equal(oa["image"], ob["image"]) and np.array_equal(oa["stereo"], ob["stereo"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        act = rng.uniform(-1, 1, 2).astype(np.float32)
        oa, ra, *_ = a.step(act)
        ob, rb, *_ = b.step(act)
        assert ra == rb and np.array_equal(oa["image"], ob["image"])
    oc, _ = a.reset(seed=8)
    assert not np.array_equal(oc["image"], ob["image"])
    a.close()
    b.close()


def test_episode_metrics_in_final_info_and_render():
    env = gym.make("selfgym/DroneRoomDiscrete-v0", flight_time=2.0, render_mode="rgb_array")
    env.reset(seed=1)
    frame = env.render()
    assert frame.ndim == 3 and frame.dtype == np.uint8
    done, info = False, {}
    steps = 0
    while not done:
        _, reward, terminated, truncated, info = env.step(1)  # turning in place never collides
        assert isinstance(reward, float)
        done, steps = terminated or truncated, steps + 1
    assert steps == 20
    assert info["collisions"] == 0.0 and info["is_success"] is True
    assert info["mean_flight_time_between_collisions"] == pytest.approx(2.0)
    assert "gt" in info and math.isfinite(info["gt"]["distance"])
    env.close()


def test_pilot_reports_only_count_for_the_current_frame(empty_room):
    from selfgym.envs.drone.room_env import frame_key

    env = empty_room
    key = env._frame["key"]
    assert env.record_pilot(key, 2.0, 2.8, True, False)
    assert not env.record_pilot(frame_key(np.zeros((48, 64), np.uint8)), 2.0, 2.8, True, True)
    assert env.stats.reports == 1 and env.stats.overrides == 0


@pytest.mark.integration
def test_egl_renderer_matches_geometry():
    """EGL hardware (or Mesa) rendering, when pybullet's EGL plugin loads on this machine."""
    try:
        env = DroneRoomEnv(min_obstacles=0, max_obstacles=0, obs_mode="stereo", renderer="egl")
    except RuntimeError as exc:
        pytest.skip(str(exc))
    env.reset(seed=0)
    for z in (0.5, 1.0, 2.0):
        env.place(env.room_cfg.half_size - z, 0.0, 0.0)
        assert env._frame["gt_disparity"] == pytest.approx(env.camera.fb / z, rel=0.02)
        disp = env._frame["disparity"]
        assert abs(np.median(disp[disp != INVALID_DISPARITY]) - env.camera.fb / z) <= 0.4 + 0.05 * env.camera.fb / z
    env.close()
