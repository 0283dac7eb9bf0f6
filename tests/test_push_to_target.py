"""PlayTable's downstream task push_to_target: start, detector, rewards, marker, scripted expert."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from selfgym.envs.play_table import layout as L
from selfgym.envs.play_table import tasks as T
from selfgym.envs.play_table.env import PlayTableEnv
from selfgym.envs.play_table.observation import PROPRIO_DIM, SCENE_DIM, SCENE_KEYS
from selfgym.envs.play_table.primitives import ScriptedExpert


def _scene_with_cube_at(x: float, y: float, z: float = T.CUBE_Z) -> np.ndarray:
    s = np.zeros(SCENE_DIM, np.float32)
    s[SCENE_KEYS["cube_pos"]] = [x, y, z]
    return s


def test_detector_and_progress_on_hand_made_states():
    task = T.get_task("push_to_target")
    tx, ty = L.TARGET_XY
    start = _scene_with_cube_at(tx + 0.12, ty)
    assert task.success(start, _scene_with_cube_at(tx + 0.04, ty))
    assert not task.success(start, _scene_with_cube_at(tx + 0.06, ty))  # outside the 5 cm disc
    assert not task.success(start, _scene_with_cube_at(tx, ty, T.CUBE_Z + 0.05))  # held above it, not in it
    assert task.progress(start, start) == 0.0
    assert task.progress(start, _scene_with_cube_at(tx + 0.085, ty)) == pytest.approx(0.5, abs=1e-5)
    assert task.progress(start, _scene_with_cube_at(tx, ty)) == 1.0
    behind = task.target(start)  # the hand pushes from the far side of the cube
    assert behind[0] == pytest.approx(tx + 0.18, abs=1e-5) and behind[1] == pytest.approx(ty, abs=1e-5)


def test_it_is_a_downstream_task_outside_the_play_suite():
    assert "push_to_target" not in T.TASK_NAMES and len(T.TASK_NAMES) == 18
    with pytest.raises(ValueError, match="push_to_target"):
        T.get_task("push_to_targett")


def test_env_contracts_start_and_marker():
    env = PlayTableEnv(task="push_to_target")
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        scene = obs[PROPRIO_DIM:]
        assert not info["is_success"] and T.cube_to_target(scene) >= T.START_RADII[0] - 0.005
        assert np.linalg.norm(scene[SCENE_KEYS["long_pos"]][:2] - scene[SCENE_KEYS["cube_pos"]][:2]) > 0.1
        assert set(info["reward_components"]) == {"safety", "reach", "progress", "success"}
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(again, obs)  # seeded starts reproduce
    visual = env.scene.pb.getVisualShapeData(env.scene.marker_body)[0]
    assert visual[3][0] == pytest.approx(0.001) and visual[3][1] == pytest.approx(L.TARGET_RADIUS)  # the disc
    assert not hasattr(PlayTableEnv(task="open_drawer").scene, "marker_body")  # other tasks: scene unchanged
    env.close()


def test_scripted_expert_solves_it_and_the_sparse_reward_pays_only_success():
    env = PlayTableEnv(task="push_to_target", reward_type="sparse")
    solved = False
    for seed in (0, 1, 2):
        obs, _ = env.reset(seed=seed)
        expert = ScriptedExpert("push_to_target")
        for _ in range(150):
            obs, reward, _, _, info = env.step(expert.act(obs))
            assert reward == (0.0 if info["is_success"] else -1.0)
            if info["is_success"]:
                solved = True
                break
        if solved:
            break
    assert solved, "the scripted expert failed push_to_target on seeds 0, 1, 2"
    assert T.cube_to_target(obs[PROPRIO_DIM:]) < L.TARGET_RADIUS
    env.close()


def test_dense_reward_is_shaped_by_reach_and_progress():
    env = PlayTableEnv(task="push_to_target")
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(7, np.float32))
    c = info["reward_components"]
    assert reward == pytest.approx(c["reach"] + c["progress"] + c["success"] + 0.1 * c["safety"])
    assert c["reach"] < -0.05 and c["progress"] == 0.0
    env.close()
