"""Count-based exploration with SimHash (Tang et al., 2017, "#Exploration").

States are hashed to k-bit codes ``sign(A g(s) + b)`` with a fixed random A; the bonus is
``1 / sqrt(n(code))``, so it falls as a region of state space is visited and distinct states
(different codes) keep separate counts.

The paper's SimHash uses hyperplanes through the origin (b = 0), which only measures the
angle of g(s): fine for images, but on a low-dimensional state it merges whole rays. With
``offsets=True`` (default) each hyperplane gets a random offset, so k lines cut a 2-D state
space into about k^2/2 cells rather than 2k sectors. ``g`` rescales bounded observation
spaces to [-1, 1] (``setup`` reads the bounds).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from selfgym.rewards.base import RewardModule, TransitionBatch
from selfgym.rewards.intrinsic._torch import flat_obs


class SimHashCount(RewardModule):
    """Count bonus ``1 / sqrt(n(phi(s')))``; counts grow in ``watch`` (each fresh env step).

    Args:
        k: bits per code (at most 63).
        offsets: random hyperplane offsets (see module docstring); False is the paper's SimHash.
        seed: seed of the random projection.
    """

    def __init__(self, k: int = 32, offsets: bool = True, seed: int | None = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 1 <= k <= 63:
            raise ValueError(f"reward module {self.name!r}: k must be in 1..63, got {k}")
        self.k, self.offsets, self.seed = int(k), bool(offsets), seed
        self.projection: np.ndarray | None = None
        self.bias: np.ndarray | None = None
        self.low: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.counts: dict[int, int] = {}
        self._powers = (1 << np.arange(self.k, dtype=np.int64)).astype(np.int64)

    def setup(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        if isinstance(observation_space, gym.spaces.Box) and np.all(np.isfinite(observation_space.low)) \
                and np.all(np.isfinite(observation_space.high)) and observation_space.dtype != np.uint8:
            self.low = observation_space.low.astype(np.float32).ravel()
            self.scale = np.maximum(observation_space.high.astype(np.float32).ravel() - self.low, 1e-8)

    def _features(self, obs: Any) -> np.ndarray:
        x = flat_obs(obs)
        if self.low is not None and self.scale is not None and x.shape[1] == self.low.shape[0]:
            x = 2.0 * (x - self.low) / self.scale - 1.0
        if self.projection is None:
            rng = np.random.default_rng(self.seed)
            a = rng.standard_normal((x.shape[1], self.k)).astype(np.float32)
            self.projection = a / np.linalg.norm(a, axis=0, keepdims=True)
            self.bias = (rng.uniform(-1.0, 1.0, self.k) if self.offsets else np.zeros(self.k)).astype(np.float32)
        return x

    def codes(self, obs: Any) -> np.ndarray:
        """The k-bit code of each state, as int64."""
        x = self._features(obs)
        assert self.projection is not None and self.bias is not None
        bits = (x @ self.projection + self.bias) > 0
        return bits.astype(np.int64) @ self._powers

    def watch(self, batch: TransitionBatch) -> None:
        for code in self.codes(batch.next_obs).tolist():
            self.counts[code] = self.counts.get(code, 0) + 1

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        n = np.array([self.counts.get(c, 0) for c in self.codes(batch.next_obs).tolist()], dtype=np.float32)
        return 1.0 / np.sqrt(np.maximum(n, 1.0))

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        return {"distinct_codes": float(len(self.counts))}

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "codes": torch.tensor(list(self.counts.keys()), dtype=torch.int64),
            "counts": torch.tensor(list(self.counts.values()), dtype=torch.int64),
        }
        if self.projection is not None and self.bias is not None:
            state["projection"], state["bias"] = torch.from_numpy(self.projection), torch.from_numpy(self.bias)
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "projection" in state:
            self.projection, self.bias = state["projection"].numpy().copy(), state["bias"].numpy().copy()
        if "codes" in state:
            self.counts = dict(zip(state["codes"].tolist(), state["counts"].tolist()))
