"""What the episodic modules (RIDE, pseudo-counts, NGU) share.

* ``EpisodicReward``: a per-env memory that lives through a rollout, carries over to the next
  rollout until that env's episode ends and is cleared at the done flag, exactly like E3B's
  C^{-1}. ``compute`` may be called many times on a batch (it starts from the carried memory
  each time); ``update(batch)`` commits the memory the batch leaves behind.
* ``train_dynamics``: the inverse (and, for RIDE, forward) dynamics losses that train the
  embedding phi, so it keeps what the agent controls (Pathak et al. 2017).
* ``state_key``: an exact 64-bit key for an observation row, for episodic counts.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch.nn import functional as F

from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.intrinsic._torch import action_features
from selfgym.rewards.intrinsic.encoders import EncodedReward


def state_key(row: np.ndarray) -> int:
    """A signed 64-bit key for one observation row (equal rows, equal keys)."""
    digest = hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


class EpisodicReward(EncodedReward):
    """An ``EncodedReward`` with one memory per env, reset at that env's episode end.

    Subclasses implement ``new_memory(n_envs)`` and ``run_episodes(batch, memory, n_envs)``
    (bonuses of shape (T, n_envs) and the memory after the batch, updated in place is fine:
    it is a copy). Memories are dicts whose tensors have the env as first dimension.
    """

    needs_actions = True

    def __init__(self, epochs: int = 1, batch_size: int = 256, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self._rng = np.random.default_rng(self.seed)
        #: each env's memory of its current episode; None before the first committed batch.
        self.memory: dict[str, Any] | None = None
        self._pending: tuple[TransitionBatch, dict[str, Any]] | None = None

    # -- to override -----------------------------------------------------------------------
    def new_memory(self, n_envs: int) -> dict[str, Any]:
        raise NotImplementedError

    def run_episodes(self, batch: TransitionBatch, memory: dict[str, Any], n_envs: int) -> torch.Tensor:
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------
    def _episodes(self, batch: TransitionBatch) -> tuple[torch.Tensor, dict[str, Any]]:
        if batch.n_envs is None:
            raise ValueError(f"reward module {self.name!r} needs time-ordered batches (TransitionBatch.n_envs set) to follow "
                             "episodes; shuffled replay samples have none: use an on-policy agent (ppo, a2c)")
        n_envs = int(batch.n_envs)
        if len(batch) % n_envs:
            raise ValueError(f"reward module {self.name!r}: {len(batch)} transitions do not split into {n_envs} envs")
        carried = self.memory
        memory = copy.deepcopy(carried) if carried is not None and carried["n_envs"] == n_envs else self.new_memory(n_envs)
        bonuses = self.run_episodes(batch, memory, n_envs)
        return bonuses.reshape(-1), memory

    def dones(self, batch: TransitionBatch, n_envs: int) -> np.ndarray:
        """(T, n_envs) episode-end flags."""
        return np.asarray(batch.dones, dtype=bool).reshape(-1, n_envs)

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        self.ensure_built(batch)
        bonuses, memory = self._episodes(batch)
        self._pending = (batch, memory)  # committed by update(batch), so compute can be repeated
        return bonuses.cpu().numpy()

    def commit(self, batch: TransitionBatch) -> None:
        """Carry each env's episodic memory past this batch."""
        if batch.n_envs is not None:
            if self._pending is not None and self._pending[0] is batch:
                self.memory = self._pending[1]
            else:
                self.memory = self._episodes(batch)[1]
        self._pending = None

    def train_dynamics(self, batch: TransitionBatch, inverse_coef: float = 1.0, forward_coef: float = 0.0) -> dict[str, float]:
        return train_dynamics(self, batch, inverse_coef, forward_coef)

    def memory_state(self, memory: dict[str, Any]) -> dict[str, Any]:
        """The memory as plain tensors and numbers (override for non-tensor entries)."""
        return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in memory.items()}

    def load_memory(self, state: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.device).clone() if isinstance(v, torch.Tensor) else v for k, v in state.items()}

    def extra_state(self) -> dict[str, Any]:
        state = super().extra_state()
        if state and self.memory is not None:
            state["memory"] = self.memory_state(self.memory)
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        if "memory" in state:
            self.memory = self.load_memory(state["memory"])


def train_dynamics(module: EncodedReward, batch: TransitionBatch, inverse_coef: float = 1.0,
                   forward_coef: float = 0.0) -> dict[str, float]:
    """Minibatch Adam steps on ``inverse_coef * inverse + forward_coef * forward`` losses.

    Shared by the episodic modules and E3B. Needs ``nets["encoder"]`` and ``nets["inverse_model"]``
    (logits or continuous actions from phi(s), phi(s')); with ``forward_coef > 0`` also ``nets["forward_model"]`` (phi(s')
    from phi(s) and the action), whose L2 error trains phi too, as in RIDE.
    """
    assert module.optimizer is not None and module.nets is not None and module.action_space is not None
    obs = module.tensor(module.obs_features(batch.obs))
    next_obs = module.tensor(module.obs_features(batch.next_obs))
    act = action_features(batch.actions, module.action_space).to(module.device)
    raw = torch.as_tensor(np.asarray(batch.actions), device=module.device).reshape(len(obs), -1)
    inverse_losses, forward_losses = [], []
    for _ in range(module.epochs):
        order = module._rng.permutation(len(obs))
        for start in range(0, len(obs), module.batch_size):
            idx = torch.as_tensor(order[start : start + module.batch_size])
            phi, phi_next = module.nets["encoder"](obs[idx]), module.nets["encoder"](next_obs[idx])
            logits = module.nets["inverse_model"](torch.cat([phi, phi_next], dim=1))
            if isinstance(module.action_space, gym.spaces.Discrete):
                inverse = F.cross_entropy(logits, raw[idx].reshape(-1).long() - int(module.action_space.start))
            else:
                inverse = F.mse_loss(logits, act[idx])
            loss = inverse_coef * inverse
            if forward_coef > 0:
                predicted = module.nets["forward_model"](torch.cat([phi, act[idx]], dim=1))
                forward = (predicted - phi_next).norm(dim=1).mean()
                loss = loss + forward_coef * forward
                forward_losses.append(forward.item())
            module.optimizer.zero_grad()
            loss.backward()
            module.optimizer.step()
            inverse_losses.append(inverse.item())
    metrics = {"inverse_loss": float(np.mean(inverse_losses))}
    if forward_losses:
        metrics["forward_loss"] = float(np.mean(forward_losses))
    return metrics
