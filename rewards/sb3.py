"""Reward modules inside Stable-Baselines3, which holds one scalar reward.

``attach(venv, modules, algo_class)`` is the one entry point the trainer calls. It returns the
VecEnv to give the algorithm and the SB3 callbacks that keep learned modules current:

* Non-learned streams (``task``, ``component:*``, SimHash counts, user functions) are computed
  per step by ``RewardStreamsVecEnv``; their weighted sum is the reward SB3 stores, and each
  stream's value goes to ``info["reward_components"][name]``.
* Learned streams (RND, ICM, DIAYN, ...) are computed in batch where the algorithm uses them:
  - on-policy (PPO, A2C): at rollout end over the whole rollout, added to
    ``rollout_buffer.rewards``, then returns and GAE advantages are recomputed, so the bonus
    enters *before* GAE (not added to the advantages afterwards, as rllte's SB3 recipe does);
    the module then learns from the rollout;
  - off-policy (SAC, TD3, DQN, HER): when a batch is sampled from the replay buffer, so the
    bonus is the module's current one; the buffer keeps only the non-learned part, and the
    module learns from the sampled batch.
* If no env stream (``task`` or ``component:*``) is given, the env reward is kept as the stream
  ``task``, so ``--reward rnd`` means "task + RND". Give ``task:coef=0`` to drop it.

Every stream is logged as ``reward/<name>`` (mean per transition, unweighted), its weight as
``reward/<name>_weight`` and a learned module's metrics as ``reward/<name>/<metric>``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from selfgym.rewards.base import RewardModule, TransitionBatch
from selfgym.rewards.env_rewards import ComponentReward, TaskReward


class RewardStreamsVecEnv(VecEnvWrapper):
    """Replaces the env reward by ``sum_i weight_i(t) * stream_i`` over the non-learned streams.

    Calls ``watch`` on every module each step. While ``recording`` it also keeps each step's
    transition so learned streams can be computed over the rollout in one batch.
    """

    def __init__(self, venv: VecEnv, modules: list[RewardModule]) -> None:
        super().__init__(venv)
        if not modules:
            raise ValueError("RewardStreamsVecEnv needs at least one reward module")
        names = [m.name for m in modules]
        if len(set(names)) != len(names):
            raise ValueError(f"reward streams need distinct names, got {names}; pass name=... to tell them apart")
        self.modules = modules
        self.step_modules = [m for m in modules if not m.learned]
        self.batch_modules = [m for m in modules if m.learned]
        self.num_timesteps = 0
        self.recording = False
        self.recorded: list[TransitionBatch] = []
        self._last_obs: Any = None
        self._actions: np.ndarray | None = None
        self.stream_sums = {m.name: 0.0 for m in self.step_modules}
        self.stream_count = 0

    def reset(self) -> Any:
        self._last_obs = self.venv.reset()
        return self._last_obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        obs, env_rewards, dones, infos = self.venv.step_wait()
        if self._last_obs is None:
            raise RuntimeError("RewardStreamsVecEnv.step() before reset()")
        next_obs = _with_terminal_obs(obs, dones, infos)  # the true s' of finished episodes
        batch = TransitionBatch(_copy(self._last_obs), np.array(self._actions), next_obs,
                                np.asarray(env_rewards, dtype=np.float32).copy(), np.asarray(dones).copy(),
                                list(infos), n_envs=self.num_envs)
        for module in self.modules:
            module.watch(batch)
        total = np.zeros(self.num_envs, dtype=np.float32)
        for module in self.step_modules:
            stream = module(batch)
            total += module.weight(self.num_timesteps) * stream
            self.stream_sums[module.name] += float(stream.sum())
            for info, value in zip(infos, stream):
                info.setdefault("reward_components", {})[module.name] = float(value)
        if self.recording:
            self.recorded.append(batch)
        self.stream_count += self.num_envs
        self.num_timesteps += self.num_envs
        self._last_obs = obs
        return obs, total, dones, infos

    def pop_recorded(self) -> TransitionBatch:
        """The recorded steps as one time-major batch (index = t * n_envs + env)."""
        steps, self.recorded = self.recorded, []
        if not steps:
            raise RuntimeError("no transitions were recorded for this rollout")
        return concat_batches(steps, n_envs=self.num_envs)

    def pop_stream_means(self) -> dict[str, float]:
        count = max(self.stream_count, 1)
        means = {name: s / count for name, s in self.stream_sums.items()}
        self.stream_sums = dict.fromkeys(self.stream_sums, 0.0)
        self.stream_count = 0
        return means


def _copy(obs: Any) -> Any:
    return {k: np.array(v) for k, v in obs.items()} if isinstance(obs, dict) else np.array(obs)


def _with_terminal_obs(obs: Any, dones: np.ndarray, infos: list[dict[str, Any]]) -> Any:
    out = _copy(obs)
    for i in np.flatnonzero(dones):
        terminal = infos[i].get("terminal_observation")
        if terminal is None:
            continue
        if isinstance(out, dict):
            for k in out:
                out[k][i] = terminal[k]
        else:
            out[i] = terminal
    return out


def concat_batches(batches: list[TransitionBatch], n_envs: int | None = None) -> TransitionBatch:
    def cat(xs: list[Any]) -> Any:
        if isinstance(xs[0], dict):
            return {k: np.concatenate([x[k] for x in xs]) for k in xs[0]}
        return np.concatenate(xs)

    infos = [info for b in batches for info in (b.infos or [{}] * len(b))]
    extras = {k: np.concatenate([b.extras[k] for b in batches]) for k in batches[0].extras}
    return TransitionBatch(cat([b.obs for b in batches]), cat([b.actions for b in batches]),
                           cat([b.next_obs for b in batches]), cat([b.rewards for b in batches]),
                           cat([b.dones for b in batches]), infos, extras, n_envs=n_envs)


class RewardStreamsCallback(BaseCallback):
    """Logs streams; for learned modules, computes and learns at the right place (see module doc)."""

    def __init__(self, wrapper: RewardStreamsVecEnv, algo_class: type) -> None:
        super().__init__()
        self.wrapper = wrapper
        self.on_policy = issubclass(algo_class, OnPolicyAlgorithm)
        self.off_policy = issubclass(algo_class, OffPolicyAlgorithm)
        if wrapper.batch_modules and not (self.on_policy or self.off_policy):
            raise TypeError(f"learned reward modules need an on- or off-policy SB3 algorithm, not {algo_class.__name__}")
        self.last_streams: dict[str, np.ndarray] = {}  # learned streams of the last rollout, (T, n_envs)
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)
        self._metrics: dict[str, list[float]] = defaultdict(list)

    def _on_training_start(self) -> None:
        # The wrapper's step counter drives the per-step weights; a resumed model starts from
        # its checkpoint's step count, and the schedules must go on from there, not from 0.
        self.wrapper.num_timesteps = int(self.model.num_timesteps)
        if self.off_policy and self.wrapper.batch_modules:
            self._patch_replay_buffer()

    def _on_rollout_start(self) -> None:
        if self.on_policy and self.wrapper.batch_modules:
            self.wrapper.recorded = []
            self.wrapper.recording = True

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.on_policy and self.wrapper.batch_modules:
            self.wrapper.recording = False
            self._add_learned_before_gae()
        self._log()

    # -- on-policy -------------------------------------------------------------------------
    def _add_learned_before_gae(self) -> None:
        buffer: RolloutBuffer = self.locals["rollout_buffer"]
        batch = self.wrapper.pop_recorded()
        n_steps, n_envs = buffer.rewards.shape
        if len(batch) != n_steps * n_envs:
            raise RuntimeError(f"recorded {len(batch)} transitions for a rollout of {n_steps}x{n_envs}")
        for module in self.wrapper.batch_modules:
            stream = module(batch).reshape(n_steps, n_envs)
            self.last_streams[module.name] = stream
            buffer.rewards += module.weight(self.num_timesteps) * stream
            self._accumulate(module.name, stream)
        # SB3 computed GAE just before on_rollout_end; redo it with the learned streams included.
        buffer.compute_returns_and_advantage(last_values=self.locals["values"], dones=self.locals["dones"])
        for module in self.wrapper.batch_modules:
            self._record_metrics(module, module.update(batch))

    # -- off-policy ------------------------------------------------------------------------
    def _patch_replay_buffer(self) -> None:
        buffer = self.model.replay_buffer
        if getattr(buffer, "_selfgym_rewards", False):
            return
        sample = buffer.sample

        def sample_with_learned_rewards(batch_size: int, env: Any = None) -> Any:
            data = sample(batch_size, env=env)
            if getattr(data, "discounts", None) is not None:
                raise TypeError("learned reward modules cannot be added to n-step returns; use n_steps=1")
            batch = TransitionBatch(_to_numpy(data.observations), _to_numpy(data.actions),
                                    _to_numpy(data.next_observations), _to_numpy(data.rewards).reshape(-1),
                                    _to_numpy(data.dones).reshape(-1), None)
            rewards = data.rewards.clone()
            for module in self.wrapper.batch_modules:
                stream = module(batch)
                self._accumulate(module.name, stream)
                weighted = module.weight(self.model.num_timesteps) * stream
                rewards += torch.as_tensor(weighted, dtype=rewards.dtype, device=rewards.device).reshape(rewards.shape)
                self._record_metrics(module, module.update(batch))
            return data._replace(rewards=rewards)

        buffer.sample = sample_with_learned_rewards
        buffer._selfgym_rewards = True

    # -- logging ---------------------------------------------------------------------------
    def _accumulate(self, name: str, stream: np.ndarray) -> None:
        self._sums[name] += float(np.sum(stream))
        self._counts[name] += int(np.size(stream))

    def _record_metrics(self, module: RewardModule, metrics: dict[str, float]) -> None:
        for key, value in (metrics or {}).items():
            self._metrics[f"reward/{module.name}/{key}"].append(float(value))

    def _log(self) -> None:
        for name, value in self.wrapper.pop_stream_means().items():
            self.logger.record(f"reward/{name}", value)
        for name, total in self._sums.items():
            if self._counts[name]:
                self.logger.record(f"reward/{name}", total / self._counts[name])
        for key, values in self._metrics.items():
            if values:
                self.logger.record(key, float(np.mean(values)))
        for module in self.wrapper.modules:
            self.logger.record(f"reward/{module.name}_weight", module.weight(self.num_timesteps))
        self._sums.clear()
        self._counts.clear()
        self._metrics.clear()


def _to_numpy(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: v.detach().cpu().numpy() for k, v in x.items()}
    return x.detach().cpu().numpy()


def attach(venv: VecEnv, modules: list[RewardModule], algo_class: type, *,
           keep_task: bool | None = None) -> tuple[VecEnv, list[BaseCallback]]:
    """Wrap ``venv`` so ``algo_class`` trains on the weighted streams; returns (venv, callbacks).

    ``keep_task=None`` adds the env reward as stream ``task`` unless an env stream is given.
    """
    if not modules:
        return venv, []
    modules = list(modules)
    has_env_stream = any(isinstance(m, (TaskReward, ComponentReward)) for m in modules)
    if keep_task or (keep_task is None and not has_env_stream):
        if "task" in {m.name for m in modules}:
            raise ValueError("a reward stream is already named 'task'; pass keep_task=False or rename it")
        modules.insert(0, TaskReward())
    for module in modules:
        module.setup(venv.observation_space, venv.action_space)
    wrapper = RewardStreamsVecEnv(venv, modules)
    return wrapper, [RewardStreamsCallback(wrapper, algo_class)]
