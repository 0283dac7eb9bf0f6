"""METRA (Park, Rybkin, Levine, ICLR 2024): skills that travel far, in temporal distance.

An encoder phi maps a state to the skill space; a transition earns
``r = (phi(s') - phi(s)) . z``, so a skill z is rewarded for moving phi along z. Unbounded,
phi would stretch without limit; METRA bounds it by the temporal distance: one env step
may move phi by at most 1, ``||phi(s) - phi(s')||_2 <= 1`` on every visited transition. phi
maximises ``E[(phi(s') - phi(s)) . z]`` under that constraint, made a Lagrangian with a
multiplier lambda >= 0 found by dual gradient descent (METRA's form: lambda = exp(log_lambda),
penalty ``min(slack, 1 - ||phi(s') - phi(s)||^2)``, log_lambda stepped on ``log_lambda * penalty``).
Maximising the reward then means covering states that are many steps apart, in different
directions for different z.

Why METRA rather than LSD (Park et al. 2022, spectral-normalised phi, ``||phi(s) - phi(s')||
<= ||s - s'||``): LSD's bound is Euclidean in whatever features phi reads, so with PlayTable's
mixed units (metres, quaternions, joint angles, button states) the skills it favours depend on
an arbitrary scaling; a 1 cm cube push and a quaternion flip cost alike only by accident.
METRA's bound counts env steps, which means the same thing for every feature, and it is
enforced only where the policy goes (the sampled transitions), not as a global Lipschitz
constant. With ``obs_slice=objects`` phi reads only the blocks, so reward needs the blocks to
move: distance-maximising skills that interact with objects.

Skills are read as SLIM lays them out: the observation ends with the skill vector (or has a
``"skill"`` key). ``skill_type="continuous"``: z is used as given (SLIM draws z ~ N(0, I), METRA's
``unit_length=0``). ``"categorical"``: z is one-hot, and the reward uses METRA's zero-centred
one-hot ``(z - 1/d) * d / (d - 1)``, so one skill's gain along its axis is others' loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.intrinsic._torch import TorchReward, flat_obs, mlp
from selfgym.rewards.intrinsic.state_slice import check_fits, feature_indices

SKILL_KEY = "skill"
SKILL_TYPES = ("categorical", "continuous")


class METRA(TorchReward):
    """Reward ``(phi(s') - phi(s)) . z`` from a phi trained under ``||phi(s') - phi(s)|| <= 1``.

    Args:
        skill_dim: size of z (SLIM passes its own ``skill_dim``).
        skill_type: ``"categorical"`` (one-hot z, zero-centred in the reward) or ``"continuous"``.
        hidden: phi's hidden widths.
        epochs, batch_size: passes over each batch ``update`` gets, and the minibatch size.
        dual_init: the multiplier's starting value (METRA: 30).
        dual_lr: Adam step size of log lambda (phi uses ``lr``); faster than phi's so that the
            constraint is met within the short runs SLIM makes on 2 CPU cores.
        slack: the penalty ``min(slack, 1 - ||dphi||^2)`` saturates at ``slack`` (METRA: 1e-3), so
            satisfied transitions push lambda down only slowly.
        obs_slice: the features phi reads: ``[start, stop]`` or PlayTable names (``objects``).
    """

    def __init__(self, skill_dim: int = 8, skill_type: str = "categorical", hidden: Sequence[int] = (128, 128),
                 epochs: int = 1, batch_size: int = 256, dual_init: float = 30.0, dual_lr: float = 1e-3,
                 slack: float = 1e-3, obs_slice: Sequence[int] | str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("lr", 3e-4)
        super().__init__(**kwargs)
        owner = f"reward module {self.name!r}"
        if skill_type not in SKILL_TYPES:
            raise ValueError(f"{owner}: skill_type={skill_type!r}; use one of {', '.join(SKILL_TYPES)}")
        if isinstance(skill_dim, bool) or not isinstance(skill_dim, int) or skill_dim < (2 if skill_type == "categorical" else 1):
            raise ValueError(f"{owner}: skill_dim must be a whole number >= 2 (categorical) or >= 1, got {skill_dim!r}")
        for label, value in (("dual_init", dual_init), ("dual_lr", dual_lr), ("slack", slack)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{owner}: {label} must be a finite number > 0, got {value!r}")
        self.skill_dim, self.skill_type = int(skill_dim), skill_type
        self.hidden, self.epochs, self.batch_size = [int(h) for h in hidden], int(epochs), int(batch_size)
        self.dual_init, self.dual_lr, self.slack = float(dual_init), float(dual_lr), float(slack)
        self.obs_slice = obs_slice
        self.obs_index = feature_indices(obs_slice, owner)
        self._rng = np.random.default_rng(self.seed)

    # -- spaces and networks -------------------------------------------------------------------
    def setup(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        if isinstance(observation_space, gym.spaces.Dict):
            ok = SKILL_KEY in observation_space.spaces and observation_space[SKILL_KEY].shape == (self.skill_dim,)
            n_features = sum(int(np.prod(s.shape)) for k, s in observation_space.spaces.items() if k != SKILL_KEY)
        else:
            ok = len(observation_space.shape) == 1 and observation_space.shape[0] > self.skill_dim
            n_features = observation_space.shape[0] - self.skill_dim if ok else 0
        if not ok:
            raise ValueError(f"reward module {self.name!r} needs observations that end with a {self.skill_dim}-D skill "
                             f"vector (or have a {SKILL_KEY!r} key), as slim gives them; got {observation_space}")
        check_fits(self.obs_index, n_features, self.obs_slice, f"reward module {self.name!r}")
        super().setup(observation_space, action_space)

    def build(self) -> nn.ModuleDict:
        assert self.obs_dim is not None
        dual = nn.ParameterDict({"log_lambda": nn.Parameter(torch.tensor(math.log(self.dual_init)))})
        return nn.ModuleDict({"phi": mlp(self.obs_dim, self.hidden, self.skill_dim), "dual": dual})

    def _build(self, obs_dim: int, action_space: gym.Space | None) -> None:
        """The base's build, then Adam with phi at ``lr`` and the multiplier at ``dual_lr``."""
        rebuilt = self.nets is None or self.obs_dim != obs_dim
        super()._build(obs_dim, action_space)
        if rebuilt:
            assert self.nets is not None
            self.optimizer = torch.optim.Adam([{"params": self.nets["phi"].parameters(), "lr": self.lr},
                                               {"params": self.nets["dual"].parameters(), "lr": self.dual_lr}])

    @property
    def dual_lambda(self) -> float:
        assert self.nets is not None
        return float(self.nets["dual"]["log_lambda"].detach().exp())

    # -- features and skills -------------------------------------------------------------------
    def obs_features(self, obs: Any) -> np.ndarray:
        features = flat_obs(obs, skip_keys=(SKILL_KEY,)) if isinstance(obs, dict) else flat_obs(obs)[:, : -self.skill_dim]
        return features if self.obs_index is None else features[:, self.obs_index]

    def skill_vectors(self, batch: TransitionBatch) -> np.ndarray:
        """(B, skill_dim) directions z: as given, or zero-centred one-hot for categorical skills."""
        obs = batch.obs
        z = flat_obs(obs[SKILL_KEY]) if isinstance(obs, dict) else flat_obs(obs)[:, -self.skill_dim:]
        if self.skill_type == "categorical":
            z = (z - z.mean(axis=1, keepdims=True)) * (self.skill_dim / (self.skill_dim - 1))
        return z

    def _delta(self, obs: np.ndarray | torch.Tensor, next_obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        assert self.nets is not None
        phi = self.nets["phi"]
        return phi(torch.as_tensor(next_obs, device=self.device)) - phi(torch.as_tensor(obs, device=self.device))

    # -- reward and training -------------------------------------------------------------------
    def compute(self, batch: TransitionBatch) -> np.ndarray:
        self.ensure_built(batch)
        with torch.no_grad():
            delta = self._delta(self.obs_features(batch.obs), self.obs_features(batch.next_obs))
            return (delta * self.tensor(self.skill_vectors(batch))).sum(1).cpu().numpy()

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        """Ascend phi on reward + lambda * penalty; descend log lambda on log_lambda * penalty."""
        self.ensure_built(batch)
        assert self.nets is not None and self.optimizer is not None
        obs, next_obs = self.tensor(self.obs_features(batch.obs)), self.tensor(self.obs_features(batch.next_obs))
        z = self.tensor(self.skill_vectors(batch))
        log_lambda = self.nets["dual"]["log_lambda"]
        logs: dict[str, list[float]] = {"loss": [], "reward": [], "phi_step": [], "violation": []}
        for _ in range(self.epochs):
            order = self._rng.permutation(len(obs))
            for start in range(0, len(obs), self.batch_size):
                idx = torch.as_tensor(order[start:start + self.batch_size])
                delta = self._delta(obs[idx], next_obs[idx])
                reward = (delta * z[idx]).sum(1)
                sq_step = delta.pow(2).sum(1)
                penalty = torch.clamp(1.0 - sq_step, max=self.slack)
                phi_loss = -(reward + log_lambda.exp().detach() * penalty).mean()
                dual_loss = log_lambda * penalty.detach().mean()
                self.optimizer.zero_grad()
                (phi_loss + dual_loss).backward()
                self.optimizer.step()
                logs["loss"].append(phi_loss.item())
                logs["reward"].append(reward.mean().item())
                logs["phi_step"].append(sq_step.detach().sqrt().mean().item())
                logs["violation"].append((sq_step > 1.0).float().mean().item())
        return {**{key: float(np.mean(values)) for key, values in logs.items()}, "dual_lambda": self.dual_lambda}
