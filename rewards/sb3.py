"""Reward modules inside Stable-Baselines3: streams summed into the scalar reward SB3 holds.

``attach(venv, modules, algo_class)`` is the one entry point the trainer calls. It returns the
VecEnv to give the algorithm and the SB3 callbacks that keep learned modules current.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from rewards.base import RewardModule, TransitionBatch


class RewardStreamsVecEnv(VecEnvWrapper):
    """Replaces the env reward by ``sum_i weight_i(t) * stream_i``, per step, over all envs.

    Each stream's value is kept in ``info["reward_components"][name]`` (unweighted) so the
    monitor, the logs and stream-aware agents can see it.
    """

    def __init__(self, venv: VecEnv, modules: list[RewardModule]) -> None:
        super().__init__(venv)
        if not modules:
            raise ValueError("RewardStreamsVecEnv needs at least one reward module")
        names = [m.name for m in modules]
        if len(set(names)) != len(names):
            raise ValueError(f"reward streams need distinct names, got {names}; pass name=... to tell them apart")
        self.modules = modules
        self.num_timesteps = 0
        self._last_obs: Any = None
        self._actions: np.ndarray | None = None
        self.stream_sums = {m.name: 0.0 for m in modules}
        self.stream_count = 0

    def reset(self) -> Any:
        self._last_obs = self.venv.reset()
        return self._last_obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        obs, env_rewards, dones, infos = self.venv.step_wait()
        # The true next observation of a finished episode is in terminal_observation.
        next_obs = _with_terminal_obs(obs, dones, infos)
        batch = TransitionBatch(self._last_obs, self._actions, next_obs, env_rewards, dones, list(infos))
        total = np.zeros(self.num_envs, dtype=np.float32)
        for module in self.modules:
            stream = module(batch)
            total += module.weight(self.num_timesteps) * stream
            self.stream_sums[module.name] += float(stream.sum())
            for info, value in zip(infos, stream):
                info.setdefault("reward_components", {})[module.name] = float(value)
        for module in self.modules:
            if module.learned:
                module.update(batch)
        self.stream_count += self.num_envs
        self.num_timesteps += self.num_envs
        self._last_obs = obs
        return obs, total, dones, infos

    def pop_stream_means(self) -> dict[str, float]:
        count = max(self.stream_count, 1)
        means = {name: s / count for name, s in self.stream_sums.items()}
        self.stream_sums = dict.fromkeys(self.stream_sums, 0.0)
        self.stream_count = 0
        return means


def _with_terminal_obs(obs: Any, dones: np.ndarray, infos: list[dict[str, Any]]) -> Any:
    if not np.any(dones):
        return obs
    if isinstance(obs, dict):
        out = {k: v.copy() for k, v in obs.items()}
        for i in np.flatnonzero(dones):
            for k in out:
                out[k][i] = infos[i]["terminal_observation"][k]
        return out
    out = obs.copy()
    for i in np.flatnonzero(dones):
        out[i] = infos[i]["terminal_observation"]
    return out


class StreamLoggerCallback(BaseCallback):
    """Logs each stream's mean per step as ``reward/<name>`` at every rollout end."""

    def __init__(self, wrapper: RewardStreamsVecEnv) -> None:
        super().__init__()
        self.wrapper = wrapper

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        for name, value in self.wrapper.pop_stream_means().items():
            self.logger.record(f"reward/{name}", value)
        for module in self.wrapper.modules:
            self.logger.record(f"reward/{module.name}_weight", module.weight(self.num_timesteps))


def attach(venv: VecEnv, modules: list[RewardModule], algo_class: type) -> tuple[VecEnv, list[BaseCallback]]:
    """Wrap ``venv`` so ``algo_class`` trains on the weighted streams; returns (venv, callbacks)."""
    if not modules:
        return venv, []
    wrapper = RewardStreamsVecEnv(venv, modules)
    return wrapper, [StreamLoggerCallback(wrapper)]
