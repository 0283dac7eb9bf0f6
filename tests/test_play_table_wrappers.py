"""FixedWristWrapper: 4-D translation+gripper action, wrist held, bad input named."""

import gymnasium as gym
import numpy as np
import pytest

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.envs.play_table.wrappers import FixedWristWrapper


def test_fixed_wrist_passes_translation_and_gripper_and_zero_rotation():
    env = FixedWristWrapper(gym.make("selfgym/PlayTable-v0", task="open_drawer"))
    assert env.action_space.shape == (4,)
    out = env.action(np.array([0.5, -0.25, 1.0, -1.0], np.float32))
    np.testing.assert_allclose(out, [0.5, -0.25, 1.0, 0.0, 0.0, 0.0, -1.0])
    env.reset(seed=0)
    for _ in range(10):
        obs, *_ = env.step(np.array([0.0, 0.0, 0.0, 1.0], np.float32))
    # proprio[3:6] is the wrist euler (roll about pointing down, pitch, yaw): held at ~0
    assert np.abs(obs[3:6]).max() < 0.05
    with pytest.raises(ValueError, match="shape"):
        env.action(np.zeros(7, np.float32))
    env.close()


def test_fixed_wrist_rejects_joint_control():
    inner = gym.make("selfgym/PlayTable-v0", task="open_drawer", control="joint")
    with pytest.raises(ValueError, match="7-D end-effector"):
        FixedWristWrapper(inner)
    inner.close()
