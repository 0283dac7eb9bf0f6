"""PlayTable streams read off the state observation, for skill discovery in free play.

Free play reports only ``safety`` in ``info["reward_components"]``: its ``reach`` needs a task
(the task's target). SLIM's reach term (Emukpere et al. 2024: end effector to object, so that
skills touch things) is computed here from the observation instead, so it works in free play
and on the skill-conditioned layout (``[state, one_hot(z)]``: the state comes first).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from selfgym.envs.play_table.observation import PROPRIO_DIM, PROPRIO_KEYS, SCENE_DIM, SCENE_KEYS
from selfgym.rewards.base import RewardModule, TransitionBatch

_EE = PROPRIO_KEYS["ee_pos"]
_OBJECTS = tuple(slice(PROPRIO_DIM + SCENE_KEYS[k].start, PROPRIO_DIM + SCENE_KEYS[k].stop) for k in ("long_pos", "cube_pos"))


def object_positions(obs: np.ndarray) -> np.ndarray:
    """(B, 2, 3) positions of the long block and the cube from (B, >= 37) state observations."""
    return np.stack([obs[:, s] for s in _OBJECTS], axis=1)


def hand(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, 3) end-effector positions and (B,) gripper widths (0 closed .. 0.08 m open)."""
    return obs[:, _EE], obs[:, PROPRIO_KEYS["gripper_width"]].reshape(-1)


class ObjectReach(RewardModule):
    """``-min_i |ee - object_i|`` (metres) after the step: the nearer block pulls the hand.

    Args:
        max_distance: distances are clipped here, so a block knocked far away does not dominate.
    """

    def __init__(self, max_distance: float = 0.5, **kwargs: Any) -> None:
        kwargs.setdefault("name", "object_reach")
        super().__init__(**kwargs)
        if not max_distance > 0:
            raise ValueError(f"reward module {self.name!r}: max_distance must be > 0, got {max_distance}")
        self.max_distance = float(max_distance)

    def setup(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        shape = getattr(observation_space, "shape", None)
        if not isinstance(observation_space, gym.spaces.Box) or len(shape) != 1 or shape[0] < PROPRIO_DIM + SCENE_DIM:
            raise ValueError(f"reward module {self.name!r} reads PlayTable's state observation "
                             f"({PROPRIO_DIM + SCENE_DIM} floats first), got {observation_space}")

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        obs = np.asarray(batch.next_obs, np.float32).reshape(len(batch), -1)
        distance = np.linalg.norm(object_positions(obs) - obs[:, None, _EE], axis=-1).min(axis=1)
        return -np.minimum(distance, self.max_distance)
