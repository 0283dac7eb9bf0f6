"""Any Stable-Baselines3 algorithm as a selfgym agent, with pickle-free checkpoints."""

from __future__ import annotations

import copy
import inspect
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecEnv

from selfgym.agents.base import TrainingHooks
from selfgym.config import resolve_value
from selfgym.registry import reject_unknown
from selfgym.rewards.sb3 import attach

# Constructor arguments the trainer sets itself; users cannot pass them as hyperparameters.
_MANAGED = {"env", "device", "seed", "verbose", "tensorboard_log", "_init_setup_model"}
# learn() arguments accepted as hyperparameters.
_LEARN_KEYS = {"log_interval"}


def valid_hyperparams(algo_class: type[BaseAlgorithm]) -> list[str]:
    params = inspect.signature(algo_class.__init__).parameters
    return sorted((set(params) - _MANAGED - {"self", "args", "kwargs"}) | _LEARN_KEYS)


def default_policy(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Dict):
        return "MultiInputPolicy"
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8:
        return "CnnPolicy"
    return "MlpPolicy"


class _HooksCallback(BaseCallback):
    def __init__(self, hooks: TrainingHooks) -> None:
        super().__init__()
        self.hooks = hooks

    def _on_step(self) -> bool:
        return bool(self.hooks.on_step(self.model.num_timesteps))


def _to_tensors(obj: Any) -> Any:
    """Arrays -> tensors, recursively, so torch.load(weights_only=True) can read them back."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {k: _to_tensors(v) for k, v in obj.items()}
    return obj


class SB3Agent:
    """Holds ``self.model``, an SB3 algorithm built from plain-data hyperparameters."""

    def __init__(
        self,
        algo_class: type[BaseAlgorithm],
        env: VecEnv,
        *,
        device: str = "auto",
        seed: int | None = None,
        logger: Logger | None = None,
        reward_modules: list | None = None,
        **hyperparams: Any,
    ) -> None:
        reject_unknown(algo_class.__name__, hyperparams, valid_hyperparams(algo_class), what="hyperparameter(s) ")
        self.log_interval = hyperparams.pop("log_interval", None)
        kwargs = {k: resolve_value(k, v) for k, v in hyperparams.items()}
        kwargs.setdefault("policy", default_policy(env.observation_space))
        self.reward_callbacks: list[BaseCallback] = []
        if reward_modules:
            env, self.reward_callbacks = attach(env, list(reward_modules), algo_class)
        self.reward_modules = list(reward_modules or [])
        if device == "cuda" and get_device("cuda").type != "cuda":
            raise RuntimeError("--device cuda was asked for but torch sees no CUDA device")
        self.model = algo_class(env=env, device=device, seed=seed, verbose=0, **kwargs)
        if logger is not None:
            self.model.set_logger(logger)

    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    def learn(self, total_timesteps: int, hooks: TrainingHooks) -> None:
        remaining = int(total_timesteps) - self.num_timesteps
        if remaining <= 0:
            return
        callback = CallbackList([*self.reward_callbacks, _HooksCallback(hooks)])
        log_interval = self.log_interval or (4 if isinstance(self.model, OffPolicyAlgorithm) else 1)
        self.model.learn(remaining, callback=callback, log_interval=log_interval, reset_num_timesteps=False)

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False):
        return self.model.predict(observation, state=state, episode_start=episode_start, deterministic=deterministic)

    # -- checkpoints ------------------------------------------------------------------------
    # SB3's own ``save`` pickles the whole algorithm object; a run folder holds plain tensors
    # instead, so this adapter reads and writes the few private members a resumed run needs.
    # They are all named here (``_COUNTERS``, ``_BUFFER_FIELDS``, ``_get_torch_save_params``,
    # ``_stats_window_size``: the length of the episode-statistics window)
    # and nowhere else in selfgym; tests/test_sb3_roundtrip.py checks them per algorithm.
    def state_dict(self, include_buffers: bool = True) -> dict[str, Any]:
        model = self.model
        _, variable_names = model._get_torch_save_params()  # tensors outside state dicts (SAC's log_ent_coef)
        state: dict[str, Any] = {
            "params": model.get_parameters(),
            "variables": {name: _getattr_path(model, name).detach().cpu() for name in variable_names},
            "counters": {"num_timesteps": int(model.num_timesteps),
                         **{key: int(getattr(model, attr)) for key, attr in _COUNTERS.items() if hasattr(model, attr)}},
        }
        if include_buffers and model.ep_info_buffer is not None:  # the window rollout/ep_rew_mean is logged over
            state["episodes"] = {"info": [{k: float(v) for k, v in e.items()} for e in model.ep_info_buffer],
                                 "success": [bool(x) for x in model.ep_success_buffer]}
        buffer = getattr(model, "replay_buffer", None)
        if include_buffers and isinstance(buffer, ReplayBuffer):
            state["replay_buffer"] = _buffer_state(buffer)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        model = self.model
        # a copy: torch's Optimizer.load_state_dict keeps the given tensors as its state and
        # updates them in place, which would change ``state`` (and any other run loaded from it)
        model.set_parameters(copy.deepcopy(state["params"]), exact_match=True, device=model.device)
        for name, value in state.get("variables", {}).items():
            with torch.no_grad():
                _getattr_path(model, name).copy_(value.to(model.device))
        counters = state.get("counters", {})
        model.num_timesteps = int(counters.get("num_timesteps", 0))
        for key, attr in _COUNTERS.items():
            if hasattr(model, attr):
                setattr(model, attr, int(counters.get(key, 0)))
        if "episodes" in state:  # kept by learn(reset_num_timesteps=False)
            window = model._stats_window_size
            model.ep_info_buffer = deque(({k: v for k, v in e.items()} for e in state["episodes"]["info"]), maxlen=window)
            model.ep_success_buffer = deque(state["episodes"]["success"], maxlen=window)
        if "replay_buffer" in state and isinstance(getattr(model, "replay_buffer", None), ReplayBuffer):
            _load_buffer_state(model.replay_buffer, state["replay_buffer"])


#: SB3 private counters a resumed run needs, saved under the key on the left (the checkpoint
#: format since the first release): ``_n_updates`` (TD3/DDPG's policy delay, TQC, logging),
#: ``_episode_num`` (logging), ``_n_calls`` (DQN/QR-DQN: the target network's update period).
_COUNTERS = {"n_updates": "_n_updates", "episode_num": "_episode_num", "n_calls": "_n_calls"}

#: The arrays of SB3's replay buffers: ``ReplayBuffer``/``DictReplayBuffer`` (dicts of arrays for
#: Dict spaces; ``next_observations`` is None with ``optimize_memory_usage``) and
#: ``HerReplayBuffer``'s episode bookkeeping (``ep_start``, ``ep_length``, ``_current_ep_start``).
_BUFFER_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts", "ep_start", "ep_length")
_BUFFER_SCALARS = ("_current_ep_start",)


def _getattr_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _buffer_state(buffer: ReplayBuffer) -> dict[str, Any]:
    """Arrays and counters of a (Dict/HER) replay buffer, up to the filled size.

    A buffer class holding arrays this adapter does not know is refused rather than saved
    without them (a resumed run would silently differ).
    """
    unknown = sorted(k for k, v in vars(buffer).items() if k not in _BUFFER_FIELDS and _per_transition(v, buffer.buffer_size))
    if unknown:
        raise NotImplementedError(f"{type(buffer).__name__} holds arrays selfgym does not checkpoint: {', '.join(unknown)}")
    size = buffer.buffer_size if buffer.full else buffer.pos
    out: dict[str, Any] = {"pos": int(buffer.pos), "full": bool(buffer.full), "arrays": {}, "scalars": {}}
    for key in _BUFFER_FIELDS:
        value = getattr(buffer, key, None)
        if isinstance(value, dict):
            out["arrays"][key] = {k: _to_tensors(v[:size]) for k, v in value.items()}
        elif isinstance(value, np.ndarray):
            out["arrays"][key] = _to_tensors(value[:size])
    for key in _BUFFER_SCALARS:
        if isinstance(getattr(buffer, key, None), np.ndarray):
            out["scalars"][key] = _to_tensors(getattr(buffer, key))
    return out


def _per_transition(value: Any, size: int) -> bool:
    """An array (or dict of arrays) with one row per buffer slot."""
    if isinstance(value, dict):
        return bool(value) and all(isinstance(v, np.ndarray) and v.shape[:1] == (size,) for v in value.values())
    return isinstance(value, np.ndarray) and value.shape[:1] == (size,)


def _load_buffer_state(buffer: ReplayBuffer, state: dict[str, Any]) -> None:
    for key, value in state["arrays"].items():
        target = getattr(buffer, key)
        if isinstance(value, dict):
            for k, v in value.items():
                target[k][: len(v)] = v.numpy()
        else:
            target[: len(value)] = value.numpy()
    for key, value in state.get("scalars", {}).items():
        setattr(buffer, key, value.numpy().copy())
    buffer.pos, buffer.full = int(state["pos"]), bool(state["full"])
