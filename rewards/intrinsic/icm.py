"""Intrinsic Curiosity Module (Pathak et al., 2017): curiosity as the error of a forward model in
a feature space learned by an inverse model.

The encoder phi is trained only through the inverse model (predict a_t from phi(s_t),
phi(s_{t+1})), so it keeps the features the agent can influence and ignores the rest. The
forward model predicts phi(s_{t+1}) from phi(s_t) and a_t; its error is the reward. On
transitions the model has learned to predict, the error (and the bonus) falls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.intrinsic._torch import action_dim, action_features, in_chunks, mlp
from selfgym.rewards.intrinsic.encoders import EncodedReward


class ICM(EncodedReward):
    """Bonus ``0.5 * mean_k (f(phi(s), a) - phi(s'))_k^2``.

    Args:
        feature_dim: size of phi(s).
        hidden: hidden widths of the encoder (its MLP head after the shared CNN on images),
            inverse and forward models.
        obs_key, cnn: which Dict entry to read and which CNN for images (``EncodedReward``).
        beta: weight of the forward loss against the inverse loss (the paper's 0.2).
        epochs, batch_size: training per ``update`` call; ``compute`` also runs the networks
            ``batch_size`` rows at a time (same values, less memory).
    """

    needs_actions = True

    def __init__(
        self,
        feature_dim: int = 64,
        hidden: Sequence[int] = (256,),
        beta: float = 0.2,
        epochs: int = 1,
        batch_size: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"reward module {self.name!r}: beta must be in [0, 1], got {beta}")
        if int(epochs) < 1 or int(batch_size) < 1:
            raise ValueError(f"reward module {self.name!r}: epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
        self.feature_dim, self.hidden, self.beta = int(feature_dim), [int(h) for h in hidden], float(beta)
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self._rng = np.random.default_rng(self.seed)

    def build(self) -> nn.ModuleDict:
        assert self.obs_dim is not None and self.action_space is not None
        n_act = action_dim(self.action_space)
        return nn.ModuleDict({
            "encoder": self.encoder(self.hidden, self.feature_dim),
            "inverse_model": mlp(2 * self.feature_dim, self.hidden, n_act),
            "forward_model": mlp(self.feature_dim + n_act, self.hidden, self.feature_dim),
        })

    def _forward_error(self, phi: torch.Tensor, act: torch.Tensor, phi_next: torch.Tensor) -> torch.Tensor:
        assert self.nets is not None
        # Forward model: the encoder is not trained through it (features come from the inverse task).
        pred_next = self.nets["forward_model"](torch.cat([phi.detach(), act], dim=1))
        return 0.5 * (pred_next - phi_next.detach()).pow(2).mean(dim=1)

    def _bonus(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """The forward error alone: the reward needs neither the inverse model nor its loss."""
        assert self.nets is not None
        return self._forward_error(self.nets["encoder"](obs), act, self.nets["encoder"](next_obs))

    def _losses(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor, raw_act: torch.Tensor):
        assert self.nets is not None
        phi, phi_next = self.nets["encoder"](obs), self.nets["encoder"](next_obs)
        forward_err = self._forward_error(phi, act, phi_next)
        logits = self.nets["inverse_model"](torch.cat([phi, phi_next], dim=1))
        if isinstance(self.action_space, gym.spaces.Discrete):
            inverse_loss = F.cross_entropy(logits, raw_act.reshape(-1).long() - int(self.action_space.start))
        else:
            inverse_loss = F.mse_loss(logits, act)
        return forward_err, inverse_loss

    def _tensors(self, batch: TransitionBatch):
        assert self.action_space is not None
        obs = self.tensor(self.obs_features(batch.obs))
        next_obs = self.tensor(self.obs_features(batch.next_obs))
        act = action_features(batch.actions, self.action_space).to(self.device)
        raw = torch.as_tensor(np.asarray(batch.actions), device=self.device)
        return obs, act, next_obs, raw

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        self.ensure_built(batch)
        obs, act, next_obs, _ = self._tensors(batch)
        with torch.no_grad():
            return in_chunks(self._bonus, obs, act, next_obs, size=self.batch_size).cpu().numpy()

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        self.ensure_built(batch)
        assert self.optimizer is not None
        obs, act, next_obs, raw = self._tensors(batch)
        fwd, inv = [], []
        for _ in range(self.epochs):
            order = self._rng.permutation(len(obs))
            for start in range(0, len(obs), self.batch_size):
                idx = torch.as_tensor(order[start : start + self.batch_size])
                raw_idx = raw.reshape(len(obs), -1)[idx]
                forward_err, inverse_loss = self._losses(obs[idx], act[idx], next_obs[idx], raw_idx)
                loss = self.beta * forward_err.mean() + (1.0 - self.beta) * inverse_loss
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                fwd.append(forward_err.mean().item())
                inv.append(inverse_loss.item())
        return {"forward_loss": float(np.mean(fwd)), "inverse_loss": float(np.mean(inv))}
