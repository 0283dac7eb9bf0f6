"""Play datasets: a saved play log and its hindsight goal-window sampler (Play-LMP, kappa = 32).

A play log is one ``.npz`` file with aligned arrays over T control steps:
``obs`` (T, 37) float32 (proprioception + scene state, as PlayTable-v0 observes it), ``actions``
(T, 7) float32 (the action taken at that step), ``scene_states`` (T, 22) float32,
``episode_ids`` (T,) int32 (play restarts only when an object left the table), optionally
``images`` (T, H, W, 3) uint8, and ``meta`` (a JSON string whose ``obs_layout`` names what each
observation float is, see ``observation_layout``). Expert demonstrations (``demos.py``) use the
same format, one episode per demonstration, plus ``task_ids``.

A *pixel* log (``collect --pixels SIZE``, ``demos --pixels SIZE``) is what
PlayTablePixelsGoal-v0 observes: ``obs`` (T, 15) is the proprioception only, ``images``
(T, SIZE, SIZE, 3) uint8 the static camera at each step, and its ``obs_layout`` is
``pixel_observation_layout(SIZE)``; ``scene_states`` stay (for the held-out leak check), no
agent reads them. The layouts differ, so a state agent refuses a pixel log and vice versa.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from selfgym.envs.play_table.observation import PROPRIO_KEYS, SCENE_KEYS

REQUIRED = ("obs", "actions", "scene_states", "episode_ids")


def _part(keys: dict[str, slice]) -> str:
    return ",".join(f"{name}:{sl.stop - sl.start}" for name, sl in keys.items())


def observation_layout() -> str:
    """What a PlayTable state observation holds, in order (``name:size``), proprioception | scene.

    Every log records it, so a learner can refuse a log whose floats mean something else than
    the env's (a moved key keeps the size but breaks a policy silently).
    """
    return f"{_part(PROPRIO_KEYS)}|{_part(SCENE_KEYS)}"


def pixel_observation_layout(image_size: int) -> str:
    """What a PlayTable pixel observation holds: the static camera's RGB image | proprioception."""
    return f"image:{image_size}x{image_size}x3|{_part(PROPRIO_KEYS)}"


class PlayDataset:
    """Samples windows tau = (s_k..s_{k+kappa-1}, a_k..a_{k+kappa-1}) with goal s_{k+kappa}.

    Windows never cross an episode boundary. The goal is relabelled in hindsight: whatever the
    scene looked like ``kappa`` steps later.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"play log {path} not found")
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in REQUIRED if k not in data]
                if missing:
                    raise ValueError(f"{path}: not a PlayTable play log, missing arrays {missing}")
                self.arrays = {k: data[k] for k in data.files if k != "meta"}
                self.meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
        except (OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, ValueError) as exc:
            if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
                raise
            raise ValueError(f"{path}: not a readable .npz play log ({type(exc).__name__}: {exc})") from exc
        self.path = path
        self.obs, self.actions = self.arrays["obs"], self.arrays["actions"]
        self.scene_states, self.episode_ids = self.arrays["scene_states"], self.arrays["episode_ids"]
        if not len(self.obs) == len(self.actions) == len(self.scene_states) == len(self.episode_ids):
            raise ValueError(f"{path}: arrays have different lengths")
        self.images: np.ndarray | None = self.arrays.get("images")
        if self.images is not None and len(self.images) != len(self.obs):
            raise ValueError(f"{path}: {len(self.images)} images for {len(self.obs)} steps")

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def layout(self) -> str | None:
        """The log's ``observation_layout()`` as recorded when it was collected (None: not recorded)."""
        return self.meta.get("obs_layout")

    def valid_starts(self, window: int, goal_at_episode_end: bool = False) -> np.ndarray:
        """Start indices k whose window (and goal index k + window, for hindsight goals) stay in one episode."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        ids, reach = self.episode_ids, window - 1 if goal_at_episode_end else window
        k = np.arange(max(0, len(ids) - reach))
        return k[ids[k] == ids[k + reach]]

    def episode_last_index(self) -> np.ndarray:
        """For every step, the index of its episode's last step (a demonstration's goal); computed once."""
        if getattr(self, "_last_index", None) is None:
            ids = self.episode_ids
            ends = np.flatnonzero(np.r_[ids[1:] != ids[:-1], True])
            self._last_index = ends[np.searchsorted(ends, np.arange(len(ids)))]
        return self._last_index

    def sample_windows(self, batch_size: int, window: int = 32, rng: np.random.Generator | None = None,
                       goal_at_episode_end: bool = False, goal_horizon: int | None = None,
                       images: bool = False) -> dict[str, np.ndarray]:
        """A batch: obs (B, window, D), actions (B, window, A), goal (B, 22), goal_obs (B, D), start (B,);
        with ``images`` also images (B, window, H, W, 3) and goal_images (B, H, W, 3) uint8.

        The goal is the state ``window`` steps after the start (hindsight relabelling of play), or
        with ``goal_at_episode_end`` the last state of the window's episode (a demonstration's goal).
        With ``goal_horizon`` (>= window) it is the state a uniform ``window`` to ``goal_horizon``
        steps after the start, never past the episode's end: a test goal can lie further away than
        one window (a task from the start pose takes 26-100 steps), and a policy that only saw goals
        exactly ``window`` steps ahead has never seen the far-away goal with the hand still far away.
        """
        rng = rng or np.random.default_rng()
        if goal_horizon is not None and (isinstance(goal_horizon, bool) or not isinstance(goal_horizon, (int, np.integer))
                                         or goal_horizon < window):
            raise ValueError(f"goal_horizon must be a whole number >= window ({window}), got {goal_horizon!r}")
        starts = self.valid_starts(window, goal_at_episode_end)
        if len(starts) == 0:
            raise ValueError(f"no window of {window} steps fits in this play log ({len(self)} steps)")
        k = rng.choice(starts, size=batch_size)
        idx = k[:, None] + np.arange(window)[None, :]
        if goal_at_episode_end:
            goal_index = self.episode_last_index()[k]
        elif goal_horizon is not None and goal_horizon > window:
            ahead = k + window + rng.integers(0, goal_horizon - window + 1, size=batch_size)
            goal_index = np.minimum(ahead, self.episode_last_index()[k])
        else:
            goal_index = k + window
        batch = {"obs": self.obs[idx], "actions": self.actions[idx], "goal": self.scene_states[goal_index],
                 "goal_obs": self.obs[goal_index], "start": k}
        if images:
            if self.images is None:
                raise ValueError(f"{self.path} holds no images (layout {self.layout}); collect a pixel log with --pixels")
            batch["images"], batch["goal_images"] = self.images[idx], self.images[goal_index]
        return batch
