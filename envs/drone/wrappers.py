"""The RL path: a policy (PPO, ...) that observes the learned monocular estimate.

``MonoEstimateObservation`` wraps a DroneRoom env in ``obs_mode="ssl"`` and replaces its
observation with monocular distance estimates for the left, centre and right of the view.
The estimators (texton kNN by default) learn online from the stereo labels the env provides,
in every env instance, evaluation included: persistent self-supervision, so an RL agent never
sees the stereo cue itself (unless ``include_stereo=True``). Because the estimators keep
learning, ``reset(seed=s)`` reproduces the room and the flight, not the estimates.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from selfgym.envs.drone.monocular import MonocularEstimator
from selfgym.envs.drone.room_env import DroneRoomEnv
from selfgym.envs.drone.stereo import INVALID_DISPARITY, NUM_DISPARITIES

# (first, last) fraction of image columns each estimator looks at, and the stereo summary
# entries that label it: 0 is the central cue, 3..7 the five vertical strips.
REGIONS = {"left": ((0.0, 0.4), (3, 4)), "centre": ((0.25, 0.75), (0,)), "right": ((0.6, 1.0), (6, 7))}


class MonoEstimateObservation(gym.Wrapper):
    def __init__(self, env: gym.Env, learner: str = "knn", include_stereo: bool = False, learn: bool = True,
                 buffer_size: int = 2000, k: int = 5, refit_every: int = 200, seed: int = 0) -> None:
        super().__init__(env)
        space = env.observation_space
        if not (isinstance(space, spaces.Dict) and {"image", "stereo"} <= set(space.spaces)):
            raise ValueError(f"MonoEstimateObservation needs DroneRoom with obs_mode='ssl', got observation space {space}")
        h, w = space["image"].shape[:2]
        self.cols, self.estimators = {}, {}
        for name, ((a, b), _) in REGIONS.items():
            self.cols[name] = slice(int(round(a * w)), int(round(b * w)))
            self.estimators[name] = MonocularEstimator(learner, (h, self.cols[name].stop - self.cols[name].start),
                                                       buffer_size, k, refit_every, seed=seed, roi=1.0)
        self.include_stereo, self.learn = include_stereo, learn
        n = len(REGIONS) + (space["stereo"].shape[0] if include_stereo else 0)
        self.observation_space = spaces.Box(INVALID_DISPARITY, float(NUM_DISPARITIES), (n,), np.float32)

    def _convert(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        image, stereo = obs["image"][:, :, 0], obs["stereo"]
        out = []
        for name, (_, label_idx) in REGIONS.items():
            est = self.estimators[name]
            x = est.inputs(np.ascontiguousarray(image[:, self.cols[name]]))
            value = est.predict(x)  # before learning from this frame
            out.append(value if np.isfinite(value) else INVALID_DISPARITY)
            labels = [float(stereo[i]) for i in label_idx if stereo[i] != INVALID_DISPARITY]
            if self.learn and labels:
                est.add(x, float(np.mean(labels)))
        info.setdefault("frame", {})["mono_estimate"] = out[1]
        vec = np.clip(np.asarray(out, np.float32), INVALID_DISPARITY, NUM_DISPARITIES)
        if self.include_stereo:
            vec = np.concatenate([vec, stereo.astype(np.float32)])
        return vec

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return self._convert(obs, info), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._convert(obs, info), reward, terminated, truncated, info


def make_mono_estimate_env(**kwargs: Any) -> gym.Env:
    """Entry point of ``selfgym/DroneRoomMonoEstimate-v0``: DroneRoom (obs_mode ssl) + the wrapper.
    Wrapper options: learner, include_stereo, learn, buffer_size, k, refit_every."""
    names = ("learner", "include_stereo", "learn", "buffer_size", "k", "refit_every")
    wrap = {k: kwargs.pop(k) for k in names if k in kwargs}
    if kwargs.get("obs_mode", "ssl") != "ssl":
        raise ValueError("DroneRoomMonoEstimate builds its own observation; obs_mode must stay 'ssl', "
                         f"got {kwargs['obs_mode']!r}")
    return MonoEstimateObservation(DroneRoomEnv(**kwargs), **wrap)
