"""A small sparse-reward task for the exploration benchmark: reach the far corner of a grid.

The agent starts in the corner (0, 0) of an ``size x size`` room and gets reward 1 only on
reaching the opposite corner, which ends the episode; after 60 steps (``max_episode_steps``) the
episode is truncated. The observation is the position scaled to [0, 1]^2 (no one-hot: the bonus modules
must generalise over coordinates). With the defaults (15 x 15, 60 steps) a random walk reaches
the goal in about 3 of 10,000 episodes, so a policy that does not explore sees no reward.

Registered as ``selfgym/SparseGrid-v0`` and ``selfgym/SparseGridShuffled-v0`` (per-cell action
permutation, one-hot cell observation; see ``SparseGridEnv``); the exploration benchmark uses them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

MOVES = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]])


class SparseGridEnv(gym.Env):
    """``shuffle_actions``: each cell maps the 4 actions to the 4 moves by its own fixed random
    permutation (as in bsuite's DeepSea), so a policy that merely drifts in one direction does
    a random walk; reaching the goal takes a policy that learned where it has been.
    ``one_hot``: the observation is the one-hot cell index instead of the scaled position."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, size: int = 15, shuffle_actions: bool = False, one_hot: bool = False,
                 render_mode: str | None = None) -> None:
        self.size, self.render_mode, self.one_hot = int(size), render_mode, bool(one_hot)
        dim = self.size * self.size if self.one_hot else 2
        self.observation_space = gym.spaces.Box(0.0, 1.0, (dim,), np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self.pos = np.zeros(2, dtype=np.int64)
        rng = np.random.default_rng(12345)  # the task's fixed layout, not the episode's seed
        perms = [rng.permutation(4) if shuffle_actions else np.arange(4) for _ in range(self.size * self.size)]
        self.action_map = np.array(perms).reshape(self.size, self.size, 4)

    def _obs(self) -> np.ndarray:
        if self.one_hot:
            out = np.zeros(self.size * self.size, np.float32)
            out[self.pos[1] * self.size + self.pos[0]] = 1.0
            return out
        return (self.pos / (self.size - 1)).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.pos = np.zeros(2, dtype=np.int64)
        return self._obs(), {}

    def step(self, action: int):
        move = self.action_map[self.pos[0], self.pos[1], int(action)]
        self.pos = np.clip(self.pos + MOVES[move], 0, self.size - 1)
        success = bool(np.all(self.pos == self.size - 1))
        return self._obs(), float(success), success, False, {"is_success": success}

    def render(self) -> np.ndarray:
        img = np.full((self.size, self.size, 3), 255, np.uint8)
        img[-1, -1] = (0, 200, 0)
        img[self.pos[1], self.pos[0]] = (200, 0, 0)
        return np.kron(img, np.ones((8, 8, 1), np.uint8))

