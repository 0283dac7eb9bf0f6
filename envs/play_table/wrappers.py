"""Optional action wrappers for PlayTable (used from hyperparams via ``env_wrapper``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class FixedWristWrapper(gym.ActionWrapper):
    """Hold the wrist orientation: the agent sends (dx, dy, dz, gripper); droll/dpitch/dyaw are 0.

    Why: with ``control="ee"`` the three rotation actions integrate, so an untrained policy's
    arbitrary mean on them drives the gripper to its tilt/yaw limits and spoils tasks that only
    need translation (drawer, door, buttons). The task, reward and success detector are unchanged.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        inner = env.action_space
        if not (isinstance(inner, spaces.Box) and inner.shape == (7,)):
            raise ValueError(f"FixedWristWrapper needs PlayTable's 7-D end-effector action (control='ee'), got {inner}")
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)

    def action(self, action: np.ndarray) -> np.ndarray:
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (4,):
            raise ValueError(f"FixedWristWrapper: action must have shape (4,), got {action.shape}")
        return np.concatenate([action[:3], np.zeros(3, np.float32), action[3:]])
