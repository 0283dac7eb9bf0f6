"""What the learned intrinsic modules share: flat float inputs, small MLPs, saved torch state.

Kept to one thin base class (``TorchReward``) so each module file reads as its paper: the
networks, the reward and the loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from selfgym.rewards.base import RewardModule, TransitionBatch


def flat_obs(obs: Any, skip_keys: Sequence[str] = ()) -> np.ndarray:
    """(B, ...) array or dict of them -> (B, D) float32; uint8 images are scaled to [0, 1]."""
    if isinstance(obs, dict):
        parts = [flat_obs(obs[k]) for k in sorted(obs) if k not in skip_keys]
        return np.concatenate(parts, axis=1)
    if isinstance(obs, torch.Tensor):
        obs = obs.detach().cpu().numpy()
    arr = np.asarray(obs)
    scale = 1.0 / 255.0 if arr.dtype == np.uint8 else 1.0
    return (arr.reshape(arr.shape[0], -1).astype(np.float32)) * np.float32(scale)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, int(width)), activation()]
        in_dim = int(width)
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class RunningObsNorm:
    """Per-feature running mean/var (RND's observation normalisation), clipped to +-clip."""

    def __init__(self, dim: int, clip: float = 5.0) -> None:
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.var = torch.ones(dim, dtype=torch.float64)
        self.count = 0.0
        self.clip = float(clip)

    def update(self, x: torch.Tensor) -> None:
        x = x.to(torch.float64)
        b_mean, b_var, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        total = self.count + n
        delta = b_mean - self.mean
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + b_var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = (x - self.mean.to(x.dtype)) / torch.sqrt(self.var.to(x.dtype) + 1e-8)
        return out.clamp(-self.clip, self.clip)

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": float(self.count)}

    def load(self, state: dict[str, Any]) -> None:
        self.mean, self.var, self.count = state["mean"].clone(), state["var"].clone(), float(state["count"])


def action_features(actions: Any, space: gym.Space) -> torch.Tensor:
    """Actions as network input: one-hot for Discrete, flat floats otherwise."""
    a = torch.as_tensor(np.asarray(actions))
    if isinstance(space, gym.spaces.Discrete):
        idx = a.reshape(-1).long() - int(space.start)
        if idx.min() < 0 or idx.max() >= space.n:
            raise ValueError(f"action index out of range for Discrete({space.n}): {idx.min().item()}..{idx.max().item()}")
        return nn.functional.one_hot(idx, int(space.n)).float()
    return a.reshape(a.shape[0], -1).float()


def action_dim(space: gym.Space) -> int:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, (gym.spaces.Box, gym.spaces.MultiBinary, gym.spaces.MultiDiscrete)):
        return int(np.prod(space.shape))
    raise TypeError(f"action space {space} is not supported (Discrete, Box, MultiBinary, MultiDiscrete)")


class TorchReward(RewardModule):
    """A learned module: networks built when the spaces are known, one Adam optimiser.

    Subclasses set ``self.nets`` (a ``nn.ModuleDict``) in ``build`` and implement ``compute``
    and ``update``. ``setup`` is called by the SB3 integration; used on its own, a module builds
    itself from the first batch when it can (Box observations, Box actions).
    """

    learned = True
    #: does ``build`` need the action space (ICM)?
    needs_actions = False

    def __init__(self, lr: float = 1e-3, device: str = "cpu", seed: int | None = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lr, self.device, self.seed = float(lr), torch.device(device), seed
        self.obs_dim: int | None = None
        self.action_space: gym.Space | None = None
        self.nets: nn.ModuleDict | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    # -- to override -----------------------------------------------------------------------
    def build(self) -> nn.ModuleDict:
        raise NotImplementedError

    def obs_features(self, obs: Any) -> np.ndarray:
        """The part of an observation the module looks at (DIAYN drops the skill)."""
        return flat_obs(obs)

    # -- shared ----------------------------------------------------------------------------
    def setup(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        sample = observation_space.sample()
        batch1 = {k: np.asarray(v)[None] for k, v in sample.items()} if isinstance(sample, dict) else np.asarray(sample)[None]
        self._build(self.obs_features(batch1).shape[1], action_space)

    def _build(self, obs_dim: int, action_space: gym.Space | None) -> None:
        if self.nets is not None and self.obs_dim == obs_dim:
            return
        self.obs_dim, self.action_space = int(obs_dim), action_space
        with torch.random.fork_rng(devices=[]):
            if self.seed is not None:
                torch.manual_seed(int(self.seed))
            self.nets = self.build().to(self.device)
        params = [p for p in self.nets.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=self.lr)

    def ensure_built(self, batch: TransitionBatch) -> None:
        if self.nets is not None:
            return
        space = None
        if self.needs_actions:
            acts = np.asarray(batch.actions)
            if np.issubdtype(acts.dtype, np.integer):
                raise ValueError(
                    f"reward module {self.name!r} needs the action space for integer actions: "
                    "call module.setup(observation_space, action_space) first (the SB3 integration does)"
                )
            space = gym.spaces.Box(-np.inf, np.inf, acts.reshape(acts.shape[0], -1).shape[1:], np.float32)
        self._build(self.obs_features(batch.obs).shape[1], space)

    def tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    def extra_state(self) -> dict[str, Any]:
        if self.nets is None:
            return {}
        state: dict[str, Any] = {
            "obs_dim": int(self.obs_dim or 0),
            "nets": {k: v.detach().cpu() for k, v in self.nets.state_dict().items()},
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else {},
        }
        if self.action_space is not None:
            state["action_space"] = _space_to_plain(self.action_space)
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if not state:
            return
        space = _space_from_plain(state["action_space"]) if "action_space" in state else self.action_space
        self._build(int(state["obs_dim"]), space)
        assert self.nets is not None and self.optimizer is not None
        self.nets.load_state_dict(state["nets"])
        if state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])


def _space_to_plain(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "discrete", "n": int(space.n), "start": int(space.start)}
    return {"type": "box", "shape": [int(d) for d in space.shape]}


def _space_from_plain(state: dict[str, Any]) -> gym.Space:
    if state["type"] == "discrete":
        return gym.spaces.Discrete(int(state["n"]), start=int(state.get("start", 0)))
    return gym.spaces.Box(-np.inf, np.inf, tuple(state["shape"]), np.float32)
