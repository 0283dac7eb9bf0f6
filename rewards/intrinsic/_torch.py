"""What the learned intrinsic modules share: flat float inputs, small MLPs, saved torch state.

Kept to one thin base class (``TorchReward``) so each module file reads as its paper: the
networks, the reward and the loss.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd
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


def in_chunks(fn: Callable[..., torch.Tensor], *rows: torch.Tensor, size: int) -> torch.Tensor:
    """``fn(*rows)`` evaluated ``size`` rows at a time and concatenated, for a ``fn`` whose output
    rows depend only on the same input rows (a network in eval, no batch statistics).

    Why: on CPU a whole rollout's activations (1024 x 32 x 5 x 5 floats in the small CNN) are
    large blocks that glibc maps fresh on every call, and touching those new pages cost RND a
    third of its no-grad forward time; 256-row pieces reuse memory. The values are those of one
    call (rows are independent; the tests check equality on the modules that use this).
    """
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    n = len(rows[0])
    if n <= size:
        return fn(*rows)
    return torch.cat([fn(*(r[start : start + size] for r in rows)) for start in range(0, n, size)])


class RunningObsNorm:
    """Per-feature running mean/var (RND's observation normalisation), clipped to +-clip.

    The moments are SB3's ``RunningMeanStd`` (float64) started from a count of 0, so the first
    batch sets them exactly (RND initialises the statistics from its first observations);
    this class only applies them to tensors and saves them as plain tensors.
    """

    def __init__(self, dim: int, clip: float = 5.0) -> None:
        self.rms = RunningMeanStd(epsilon=0.0, shape=(int(dim),))
        self.clip = float(clip)

    @property
    def count(self) -> float:
        return float(self.rms.count)

    def update(self, x: torch.Tensor) -> None:
        self.rms.update(x.detach().cpu().numpy().astype(np.float64))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.rms.mean, device=x.device).to(x.dtype)
        var = torch.as_tensor(self.rms.var, device=x.device).to(x.dtype)
        return ((x - mean) / torch.sqrt(var + 1e-8)).clamp(-self.clip, self.clip)

    def state(self) -> dict[str, Any]:
        return {"mean": torch.from_numpy(self.rms.mean.copy()), "var": torch.from_numpy(self.rms.var.copy()), "count": self.count}

    def load(self, state: dict[str, Any]) -> None:
        mean = np.asarray(state["mean"].cpu().numpy() if isinstance(state["mean"], torch.Tensor) else state["mean"], dtype=np.float64)
        var = np.asarray(state["var"].cpu().numpy() if isinstance(state["var"], torch.Tensor) else state["var"], dtype=np.float64)
        if mean.shape != self.rms.mean.shape or var.shape != self.rms.var.shape:
            raise ValueError(f"saved observation statistics have shape {mean.shape}; this module normalises {self.rms.mean.shape} features")
        self.rms.mean, self.rms.var, self.rms.count = mean, var, float(state["count"])


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
        self.optimizer = torch.optim.Adam(params, lr=self.lr) if params else None  # RE3's encoder is frozen

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
        assert self.nets is not None
        self.nets.load_state_dict(state["nets"])
        if state.get("optimizer") and self.optimizer is not None:
            self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))  # torch keeps and mutates the given tensors


def _space_to_plain(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "discrete", "n": int(space.n), "start": int(space.start)}
    return {"type": "box", "shape": [int(d) for d in space.shape]}


def _space_from_plain(state: dict[str, Any]) -> gym.Space:
    if state["type"] == "discrete":
        return gym.spaces.Discrete(int(state["n"]), start=int(state.get("start", 0)))
    return gym.spaces.Box(-np.inf, np.inf, tuple(state["shape"]), np.float32)
