"""Rewarding Impact-Driven Exploration, RIDE (Raileanu and Rocktäschel, ICLR 2020,
arXiv:2002.12292).

The bonus rewards actions that change the agent's learned representation of the state, and
discounts states already seen in the episode:

    r_t = ||phi(s_{t+1}) - phi(s_t)||_2 / sqrt(N_ep(s_{t+1})),

with N_ep the number of times s_{t+1} has been visited in the current episode (counted
before the bonus, so N >= 1). phi is trained as in ICM but through both heads: an inverse
model predicts a_t from phi(s_t), phi(s_{t+1}) and a forward model predicts phi(s_{t+1})
from phi(s_t), a_t, with the loss ``0.1 * inverse + 10 * forward`` (the defaults of the
paper's code). The impact term alone would reward going back and forth between two states;
the episodic count stops that. Counts are exact (a key per observation, as the paper counts
MiniGrid's partial views), per env, and cleared at each episode end. The paper weights the
bonus by 0.1 on MiniGrid (``coef=0.1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.intrinsic._torch import action_dim, mlp
from selfgym.rewards.intrinsic.episodic import EpisodicReward, state_key


class RIDE(EpisodicReward):
    """Impact ``||phi(s') - phi(s)||`` divided by the square root of the episodic count of s'.

    Needs time-ordered batches (on-policy agents), like E3B: each env's counts carry over
    rollouts until its episode ends.

    Args:
        feature_dim: size of phi(s).
        hidden: hidden widths of the encoder (its MLP head after the CNN on images) and of the
            inverse and forward models.
        inverse_coef, forward_coef: weights of the two dynamics losses (0.1 and 10, as in RIDE).
        epochs, batch_size: dynamics training per ``update`` call.
        obs_key, cnn: which Dict entry to read and which CNN for images (``EncodedReward``).
        coef: the bonus weight, 0.1 as in the paper's MiniGrid runs.
    """

    def __init__(
        self,
        feature_dim: int = 128,
        hidden: Sequence[int] = (256,),
        inverse_coef: float = 0.1,
        forward_coef: float = 10.0,
        coef: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(coef=coef, **kwargs)
        if inverse_coef < 0 or forward_coef < 0:
            raise ValueError(f"reward module {self.name!r}: inverse_coef and forward_coef must be >= 0, "
                             f"got {inverse_coef} and {forward_coef}")
        self.feature_dim, self.hidden = int(feature_dim), [int(h) for h in hidden]
        self.inverse_coef, self.forward_coef = float(inverse_coef), float(forward_coef)

    def build(self) -> nn.ModuleDict:
        assert self.action_space is not None
        n_act = action_dim(self.action_space)
        return nn.ModuleDict({
            "encoder": self.encoder(self.hidden, self.feature_dim),
            "inverse_model": mlp(2 * self.feature_dim, self.hidden, n_act),
            "forward_model": mlp(self.feature_dim + n_act, self.hidden, self.feature_dim),
        })

    def new_memory(self, n_envs: int) -> dict[str, Any]:
        return {"n_envs": n_envs, "counts": [{} for _ in range(n_envs)]}

    def run_episodes(self, batch: TransitionBatch, memory: dict[str, Any], n_envs: int) -> torch.Tensor:
        assert self.nets is not None
        obs, next_obs = self.obs_features(batch.obs), self.obs_features(batch.next_obs)
        with torch.no_grad():
            impact = (self.nets["encoder"](self.tensor(next_obs)) - self.nets["encoder"](self.tensor(obs))).norm(dim=1)
        counts = np.empty(len(next_obs), dtype=np.float32)
        dones = self.dones(batch, n_envs).reshape(-1)
        for i, row in enumerate(next_obs):
            episode = memory["counts"][i % n_envs]
            key = state_key(row)
            episode[key] = counts[i] = episode.get(key, 0) + 1
            if dones[i]:
                episode.clear()  # the episode ended: new counts
        return (impact / torch.sqrt(torch.as_tensor(counts, device=self.device))).reshape(-1, n_envs)

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        """Carry each env's counts past this batch, then train phi by inverse and forward dynamics."""
        self.ensure_built(batch)
        self.commit(batch)
        return self.train_dynamics(batch, self.inverse_coef, self.forward_coef)

    def memory_state(self, memory: dict[str, Any]) -> dict[str, Any]:
        rows = [(env, key, n) for env, episode in enumerate(memory["counts"]) for key, n in episode.items()]
        table = torch.tensor(rows, dtype=torch.int64).reshape(-1, 3)
        return {"n_envs": memory["n_envs"], "env": table[:, 0], "key": table[:, 1], "count": table[:, 2]}

    def load_memory(self, state: dict[str, Any]) -> dict[str, Any]:
        memory = self.new_memory(int(state["n_envs"]))
        for env, key, n in zip(state["env"].tolist(), state["key"].tolist(), state["count"].tolist()):
            memory["counts"][env][key] = n
        return memory
