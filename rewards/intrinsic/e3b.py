"""Exploration via Elliptical Episodic Bonuses, E3B (Henaff, Raileanu, Jiang and Rocktäschel,
NeurIPS 2022, arXiv:2210.05805).

A count-based bonus generalised to continuous features: within an episode, the bonus of a
state is its elliptical norm under the inverse covariance of the features seen so far,

    b_t = phi(s_t)^T C_{t-1}^{-1} phi(s_t),   C_{t-1} = lambda I + sum_{i < t} phi(s_i) phi(s_i)^T,

and C^{-1} is kept with the rank-one Sherman-Morrison update
``C^{-1} <- C^{-1} - (C^{-1} phi)(C^{-1} phi)^T / (1 + b_t)``, so a step costs O(d^2). A state
visited n times in an episode earns ``q / (1 + (n - 1) q)`` with ``q = |phi|^2 / lambda``:
the bonus falls with repeated visits, like ``1/n`` counts. C is reset to ``lambda I`` at
each episode end, read from the batch's done flags. The features phi come from an encoder
trained only by an inverse-dynamics model (predict a_t from phi(s_t), phi(s_{t+1})), as in
the paper, so they keep what the agent controls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.intrinsic._torch import action_dim, mlp
from selfgym.rewards.intrinsic.encoders import EncodedReward
from selfgym.rewards.intrinsic.episodic import train_dynamics


class E3B(EncodedReward):
    """Elliptical episodic bonus on the next state, ``phi(s')^T C^{-1} phi(s')``.

    ``compute`` needs time-ordered batches (``TransitionBatch.n_envs`` set, time-major, as the
    on-policy rollouts of ``rewards.sb3`` are): each env keeps its own C^{-1}, which carries
    over from one rollout to the next until that env's episode ends. Shuffled replay samples
    (``n_envs=None``) have no episodes to follow and are refused.

    Args:
        feature_dim: size of phi(s).
        hidden: hidden widths of the encoder (its MLP head after the CNN on images) and of
            the inverse-dynamics model.
        ridge: lambda, the initial C = lambda I (the paper's 0.1).
        epochs, batch_size: inverse-dynamics training per ``update`` call.
        obs_key, cnn: which Dict entry to read and which CNN for images (``EncodedReward``).
    """

    needs_actions = True

    def __init__(
        self,
        feature_dim: int = 128,
        hidden: Sequence[int] = (256,),
        ridge: float = 0.1,
        epochs: int = 1,
        batch_size: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if ridge <= 0:
            raise ValueError(f"reward module {self.name!r}: ridge must be > 0, got {ridge}")
        self.feature_dim, self.hidden, self.ridge = int(feature_dim), [int(h) for h in hidden], float(ridge)
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self._rng = np.random.default_rng(self.seed)
        #: C^{-1} of each env's current episode, (n_envs, d, d); None before the first batch.
        self.cov_inverse: torch.Tensor | None = None
        self._pending: tuple[TransitionBatch, torch.Tensor] | None = None

    def build(self) -> nn.ModuleDict:
        assert self.action_space is not None
        return nn.ModuleDict({
            "encoder": self.encoder(self.hidden, self.feature_dim),
            "inverse_model": mlp(2 * self.feature_dim, self.hidden, action_dim(self.action_space)),
        })

    def _fresh(self, n_envs: int) -> torch.Tensor:
        eye = torch.eye(self.feature_dim, device=self.device) / self.ridge
        return eye.expand(n_envs, -1, -1).clone()

    def _bonuses(self, batch: TransitionBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The bonuses (B,) and each env's C^{-1} after the batch, from the carried C^{-1}."""
        if batch.n_envs is None:
            raise ValueError(f"reward module {self.name!r} needs time-ordered batches (TransitionBatch.n_envs set) to follow "
                             "episodes; shuffled replay samples have none: use an on-policy agent (ppo, a2c)")
        n_envs = int(batch.n_envs)
        if len(batch) % n_envs:
            raise ValueError(f"reward module {self.name!r}: {len(batch)} transitions do not split into {n_envs} envs")
        assert self.nets is not None
        with torch.no_grad():
            phi = self.nets["encoder"](self.tensor(self.obs_features(batch.next_obs))).reshape(-1, n_envs, self.feature_dim)
        dones = torch.as_tensor(np.asarray(batch.dones, dtype=bool).reshape(-1, n_envs), device=self.device)
        carried = self.cov_inverse
        cov_inv = carried.clone() if carried is not None and carried.shape[0] == n_envs else self._fresh(n_envs)
        fresh = self._fresh(n_envs)
        bonuses = torch.empty(phi.shape[:2], device=self.device)
        for step in range(phi.shape[0]):
            u = torch.bmm(cov_inv, phi[step].unsqueeze(2)).squeeze(2)  # C^{-1} phi, (n_envs, d)
            b = (phi[step] * u).sum(dim=1)
            bonuses[step] = b
            cov_inv = cov_inv - torch.bmm(u.unsqueeze(2), u.unsqueeze(1)) / (1.0 + b).view(-1, 1, 1)
            cov_inv = torch.where(dones[step].view(-1, 1, 1), fresh, cov_inv)  # the episode ended: new memory
        return bonuses.reshape(-1), cov_inv

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        self.ensure_built(batch)
        bonuses, cov_inv = self._bonuses(batch)
        self._pending = (batch, cov_inv)  # committed by update(batch), so compute can be repeated
        return bonuses.cpu().numpy()

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        """Carry each env's episodic memory past this batch, then train phi by inverse dynamics."""
        self.ensure_built(batch)
        assert self.optimizer is not None and self.nets is not None and self.action_space is not None
        if batch.n_envs is not None:
            if self._pending is not None and self._pending[0] is batch:
                self.cov_inverse = self._pending[1]
            else:
                self.cov_inverse = self._bonuses(batch)[1]
        self._pending = None
        return train_dynamics(self, batch)

    def extra_state(self) -> dict[str, Any]:
        state = super().extra_state()
        if state and self.cov_inverse is not None:
            state["cov_inverse"] = self.cov_inverse.detach().cpu()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        if "cov_inverse" in state:
            self.cov_inverse = state["cov_inverse"].to(self.device).clone()
