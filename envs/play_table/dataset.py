"""Play datasets: a saved play log and its hindsight goal-window sampler (Play-LMP, kappa = 32).

A play log is one ``.npz`` file with aligned arrays over T control steps:
``obs`` (T, 37) float32 (proprioception + scene state, as PlayTable-v0 observes it), ``actions``
(T, 7) float32 (the action taken at that step), ``scene_states`` (T, 22) float32,
``episode_ids`` (T,) int32 (play restarts only when an object left the table), optionally
``images`` (T, H, W, 3) uint8, and ``meta`` (a JSON string).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REQUIRED = ("obs", "actions", "scene_states", "episode_ids")


class PlayDataset:
    """Samples windows tau = (s_k..s_{k+kappa-1}, a_k..a_{k+kappa-1}) with goal s_{k+kappa}.

    Windows never cross an episode boundary. The goal is relabelled in hindsight: whatever the
    scene looked like ``kappa`` steps later.
    """

    def __init__(self, path: str | Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in REQUIRED if k not in data]
            if missing:
                raise ValueError(f"{path}: not a PlayTable play log, missing arrays {missing}")
            self.arrays = {k: data[k] for k in data.files if k != "meta"}
            self.meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
        self.obs, self.actions = self.arrays["obs"], self.arrays["actions"]
        self.scene_states, self.episode_ids = self.arrays["scene_states"], self.arrays["episode_ids"]
        if not len(self.obs) == len(self.actions) == len(self.scene_states) == len(self.episode_ids):
            raise ValueError(f"{path}: arrays have different lengths")

    def __len__(self) -> int:
        return len(self.obs)

    def valid_starts(self, window: int) -> np.ndarray:
        """Start indices k whose window and goal index k + window stay in one episode."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        ids = self.episode_ids
        k = np.arange(max(0, len(ids) - window))
        return k[ids[k] == ids[k + window]]

    def sample_windows(self, batch_size: int, window: int = 32, rng: np.random.Generator | None = None,
                       ) -> dict[str, np.ndarray]:
        """A batch: obs (B, window, D), actions (B, window, A), goal (B, 22), goal_obs (B, D), start (B,)."""
        rng = rng or np.random.default_rng()
        starts = self.valid_starts(window)
        if len(starts) == 0:
            raise ValueError(f"no window of {window} steps fits in this play log ({len(self)} steps)")
        k = rng.choice(starts, size=batch_size)
        idx = k[:, None] + np.arange(window)[None, :]
        return {"obs": self.obs[idx], "actions": self.actions[idx], "goal": self.scene_states[k + window],
                "goal_obs": self.obs[k + window], "start": k}
