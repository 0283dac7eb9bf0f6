"""Every registered id against Gymnasium's and SB3's env checkers, and copied or pickled.

The lists below name exactly the ids that cannot pass SB3's checker, or whose copies do not
continue the original's episode, and why; the tests fail when an entry stops being true, so
the lists (and the README's interoperability section, which quotes them) stay accurate.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.envs import registered_ids

#: id -> (the exception SB3's check_env raises on ``gym.make(id)``, why)
SB3_CHECK_FAILS = {
    "selfgym/TextReasoning-v0": (TypeError, "its spaces are Text: SB3 supports no Text space, and its checker's NaN "
                                            "test (np.isnan) cannot take strings"),
    "selfgym/CookingWorld-v0": (TypeError, "its observations are Text, as TextReasoning-v0's"),
    "selfgym/PlayTableGoal-v0": (AttributeError, "gym.make wraps it in TimeLimit, and SB3's checker calls "
                                                 "env.compute_reward, which Gymnasium 1.x wrappers no longer forward; the "
                                                 "unwrapped env passes, and HER works (it calls env_method, which does)"),
    "selfgym/PlayTablePixelsGoal-v0": (AttributeError, "as PlayTableGoal-v0"),
}
#: ids whose copies pickle but share the original's simulation, so they do not continue its episode
COPY_SHARES_SIMULATION = {
    "selfgym/PlayTable-v0": "pybullet_utils' BulletClient pickles its client id: the copy drives the original's physics",
    "selfgym/PlayTablePixels-v0": "as PlayTable-v0",
    "selfgym/PlayTableGoal-v0": "as PlayTable-v0",
    "selfgym/PlayTablePixelsGoal-v0": "as PlayTable-v0",
}
IDS = registered_ids()


def test_the_lists_name_registered_ids() -> None:
    assert set(SB3_CHECK_FAILS) <= set(IDS) and set(COPY_SHARES_SIMULATION) <= set(IDS)


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_check_env_passes_without_warnings(env_id: str) -> None:
    env = gym.make(env_id)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a checker warning (e.g. no render_fps) fails the test
            gymnasium_check_env(env.unwrapped)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_check_env(env_id: str) -> None:
    env = gym.make(env_id)
    try:
        if env_id in SB3_CHECK_FAILS:
            error, _ = SB3_CHECK_FAILS[env_id]
            with pytest.raises(error):
                sb3_check_env(env, warn=False)
        else:
            sb3_check_env(env, warn=True)
        if env_id in ("selfgym/PlayTableGoal-v0", "selfgym/PlayTablePixelsGoal-v0"):
            sb3_check_env(env.unwrapped, warn=True)
    finally:
        env.close()


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("env_id", IDS)
def test_a_copied_or_pickled_env_continues_the_episode(env_id: str) -> None:
    env = gym.make(env_id)
    env.reset(seed=1)
    env.action_space.seed(0)
    env.step(env.action_space.sample())
    copies = [copy.deepcopy(env), pickle.loads(cloudpickle.dumps(env))]
    try:
        action = env.action_space.sample()
        expected = env.step(action)
        for other in copies:
            obs, reward, terminated, truncated, _ = other.step(action)
            continues = _same(obs, expected[0]) and reward == expected[1] and (terminated, truncated) == expected[2:4]
            assert continues == (env_id not in COPY_SHARES_SIMULATION), env_id
    finally:
        for e in (*copies, env):
            e.close()


def test_drone_room_copy_has_its_own_simulation() -> None:
    env = gym.make("selfgym/DroneRoom-v0")
    env.reset(seed=2)
    twin = copy.deepcopy(env)
    assert twin.unwrapped.client != env.unwrapped.client and twin.unwrapped.matcher.matcher is not None
    twin.close()  # closing the copy leaves the original running
    action = np.array([0.5, 0.0], np.float32)
    assert env.step(action)[0]["image"].shape == (48, 64, 1)
    env.close()
