"""PlayTable: env contracts, bad input, seeding, task detectors with the scripted expert."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.envs.play_table.env import PlayTableEnv, PlayTableGoalEnv
from selfgym.envs.play_table.primitives import PlayPolicy, ScriptedExpert
from selfgym.envs.play_table.observation import PROPRIO_DIM, SCENE_DIM
from selfgym.envs.play_table.tasks import TASK_NAMES, TASKS

IDS = ["selfgym/PlayTable-v0", "selfgym/PlayTablePixels-v0", "selfgym/PlayTableGoal-v0"]
# The scripted expert solves every task on most seeds (benchmarks/results/play_table_expert.json);
# the simulation is deterministic, so "one of three fixed seeds" is a stable, meaningful check.
EXPERT_SEEDS = (0, 1, 2)


@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id):
    kwargs = {} if "Goal" in env_id else {"task": "open_drawer"}
    env = gym.make(env_id, **kwargs).unwrapped
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    env.close()


def test_state_layout_and_info():
    env = PlayTableEnv(task="open_drawer", render_mode="rgb_array", render_size=64)
    obs, info = env.reset(seed=0)
    assert obs.shape == (PROPRIO_DIM + SCENE_DIM,)
    assert info["is_success"] is False
    obs, reward, term, trunc, info = env.step(env.action_space.sample())
    assert isinstance(reward, float)
    assert set(info["reward_components"]) == {"reach", "progress", "success", "safety"}
    assert env.render().shape == (64, 64, 3)
    env.close()


def test_bad_task_name_lists_valid_ones():
    with pytest.raises(ValueError, match="open_drawer.*close_drawer"):
        PlayTableEnv(task="open_drawr")


def test_nan_action_raises_and_out_of_range_is_clipped():
    env = PlayTableEnv(task="open_drawer")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan, 0, 0, 0, 0, 0, 0], np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, np.float32))
    env.reset(seed=1)
    big = [env.step(np.array([50.0, 0, 0, 0, 0, 0, 1]))[0] for _ in range(5)]
    env.reset(seed=1)
    one = [env.step(np.array([1.0, 0, 0, 0, 0, 0, 1]))[0] for _ in range(5)]
    np.testing.assert_allclose(big[-1], one[-1], atol=1e-6)
    assert np.all(np.isfinite(big[-1]))
    env.close()


def test_same_seed_same_episode():
    env = PlayTableEnv(task=None)
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=7)
        env.action_space.seed(3)
        traj = [obs]
        for _ in range(40):
            traj.append(env.step(env.action_space.sample())[0])
        runs.append(np.stack(traj))
    np.testing.assert_array_equal(runs[0], runs[1])
    other, _ = env.reset(seed=8)
    assert not np.array_equal(other, runs[0][0])
    env.close()
    fresh = PlayTableEnv(task=None)  # a new instance (an evaluation env) replays the same episode
    obs, _ = fresh.reset(seed=7)
    fresh.action_space.seed(3)
    traj = [obs] + [fresh.step(fresh.action_space.sample())[0] for _ in range(40)]
    np.testing.assert_array_equal(np.stack(traj), runs[0])
    fresh.close()


def test_goal_env_compute_reward_is_vectorised():
    env = PlayTableGoalEnv(reward_type="sparse")
    obs, info = env.reset(seed=0)
    assert not np.allclose(obs["achieved_goal"], obs["desired_goal"])
    batch_a = np.stack([obs["achieved_goal"], obs["desired_goal"]])
    batch_d = np.stack([obs["desired_goal"], obs["desired_goal"]])
    np.testing.assert_array_equal(env.compute_reward(batch_a, batch_d, [{}, {}]), [-1.0, 0.0])
    env.close()
    dense = PlayTableGoalEnv()  # the step reward is compute_reward's value (HER relabels consistently)
    obs, _ = dense.reset(seed=0)
    obs, reward, *_ , info = dense.step(dense.action_space.sample())
    assert reward == pytest.approx(float(dense.compute_reward(obs["achieved_goal"], obs["desired_goal"], info)), abs=1e-5)
    dense.close()


def test_all_detectors_false_at_reset():
    env = PlayTableEnv()
    for name, task in TASKS.items():
        env.task = task
        for seed in range(3):
            obs, info = env.reset(seed=seed)
            assert not info["is_success"], name
    assert len(TASK_NAMES) == 18
    env.close()


@pytest.mark.parametrize("task", TASK_NAMES)
def test_expert_solves_task(task):
    env = PlayTableEnv(task=task)
    solved = False
    for seed in EXPERT_SEEDS:
        obs, info = env.reset(seed=seed)
        assert not info["is_success"]
        expert = ScriptedExpert(task)
        expert.reset(obs)
        for _ in range(150):
            obs, _, _, _, info = env.step(expert.act(obs))
            if info["is_success"]:
                solved = True
                break
        if solved:
            break
    assert solved, f"scripted expert failed {task} on seeds {EXPERT_SEEDS}"
    env.close()


def test_play_policy_changes_the_scene():
    env = PlayTableEnv()
    obs, _ = env.reset(seed=0)
    policy = PlayPolicy(seed=0)
    start = obs[PROPRIO_DIM:].copy()
    for _ in range(300):
        obs, *_ = env.step(policy.act(obs))
    assert np.abs(obs[PROPRIO_DIM:] - start).max() > 0.03
    env.close()


@pytest.mark.slow
def test_objects_stay_in_scene_under_long_random_rollouts():
    env = PlayTableEnv()
    for seed in range(3):
        env.reset(seed=seed)
        env.action_space.seed(seed)
        for _ in range(3000):
            _, _, term, _, info = env.step(env.action_space.sample())
            assert not info["object_off_table"]
            assert not term
    env.close()


def test_objects_stay_in_scene_short():
    env = PlayTableEnv()
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(500):
        _, _, term, _, info = env.step(env.action_space.sample())
        assert not info["object_off_table"]
    env.close()


def test_joint_control_reaches_joint_targets():
    env = PlayTableEnv(task="open_drawer", control="joint")
    obs, _ = env.reset(seed=0)
    assert env.action_space.shape == (8,)
    target = np.array([0.1, -0.2, 0.0, -0.6, 0.0, 0.5, 0.2, 1.0], np.float32)  # normalised targets
    for _ in range(60):
        obs, *_ = env.step(target)
    from selfgym.envs.play_table.scene import ARM_HIGH, ARM_LOW
    want = ARM_LOW + (target[:7] + 1) * 0.5 * (ARM_HIGH - ARM_LOW)
    np.testing.assert_allclose(obs[7:14], want, atol=0.05)
    env.close()


def test_wrong_kwargs_are_named():
    with pytest.raises(ValueError, match="obs_mode"):
        PlayTableEnv(obs_mode="rgb")
    with pytest.raises(ValueError, match="renderer"):
        PlayTableEnv(renderer="opengl")


def test_terminate_on_success_ends_the_episode_and_pays_only_for_finishing():
    env = PlayTableEnv(task="open_drawer", terminate_on_success=True)
    obs, _ = env.reset(seed=0)
    expert = ScriptedExpert("open_drawer")
    expert.reset(obs)
    rewards = []
    for _ in range(150):
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        rewards.append(reward)
        if terminated:
            break
    assert terminated and info["is_success"]
    # every unsolved step is worth <= 0, the finishing step > 0: finishing sooner always pays
    assert max(rewards[:-1]) <= 0.0 < rewards[-1]
    env.close()


def test_terminate_on_success_needs_a_task():
    with pytest.raises(ValueError, match="terminate_on_success needs a task"):
        PlayTableEnv(task=None, terminate_on_success=True)
    with pytest.raises(ValueError, match="terminate_on_success needs a task"):
        PlayTableGoalEnv(terminate_on_success=True)
    for bad in ("maybe", float("nan")):
        with pytest.raises(ValueError, match="terminate_on_success must be true or false"):
            PlayTableEnv(task="open_drawer", terminate_on_success=bad)


def test_drawer_pushed_past_its_limit_is_put_back():
    from selfgym.envs.play_table import layout as L
    from selfgym.envs.play_table.scene import DRAWER, SLIDE_SLACK

    env = PlayTableEnv(task="close_drawer")
    env.reset(seed=0)
    env.scene.pb.resetJointState(env.scene.desk, DRAWER, 0.30)  # what a solver blow-up left behind
    obs, *_ = env.step(np.zeros(7, np.float32))
    assert obs[PROPRIO_DIM] <= L.DRAWER_RANGE[1] + SLIDE_SLACK
    env.close()
