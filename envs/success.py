"""``SuccessInfo``: an ``info["is_success"]`` for envs whose reward alone says the task was done.

SB3 logs ``rollout/success_rate`` and selfgym's evaluation reports a success rate from
``info["is_success"]`` at episode ends. MiniGrid (like many sparse-reward tasks) gives a
positive reward only when the goal is reached (1 - 0.9 * steps / max_steps) and sets no such
key, so its success is "the episode terminated with a positive reward"; a time-out is a failure.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym


class SuccessInfo(gym.Wrapper):
    """Sets ``info["is_success"]`` at each episode end: terminated (not truncated) with reward > ``threshold``.

    Args:
        env: the env to wrap (MiniGrid's, or any whose success is a positive final reward).
        threshold: the reward above which a terminal step counts as a success.
    """

    def __init__(self, env: gym.Env, threshold: float = 0.0) -> None:
        super().__init__(env)
        self.threshold = float(threshold)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            info = dict(info)
            info.setdefault("is_success", bool(terminated and float(reward) > self.threshold))
        return obs, reward, terminated, truncated, info
