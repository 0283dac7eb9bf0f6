"""Random Encoders for Efficient Exploration, RE3 (Seo, Chen, Shin, Lee, Abbeel and Lee,
ICML 2021, arXiv:2102.09430).

State entropy without learning a representation: a randomly initialised, fixed encoder maps
each state to y = f(s), and the particle-based (k-nearest-neighbour) entropy estimate gives
each state the bonus

    r(s_i) = log(||y_i - y_i^{k-NN}||_2 + 1),

the distance to its k-th nearest neighbour among the other states of the same batch (the
rollout, for on-policy agents, as in the paper's A2C experiments). A state the batch visits
often has near neighbours and earns almost nothing; a lone state earns much. The paper's
defaults: k = 3, a 50-dimensional embedding, and the weight beta_t = beta_0 (1 - rho)^t with
beta_0 = 0.05, rho = 1e-5 (here ``coef=0.05, schedule="exponential", kappa=1e-5``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.intrinsic.encoders import EncodedReward


class RE3(EncodedReward):
    """k-NN state-entropy bonus in a fixed random embedding of the next state.

    ``learned`` is True only so the bonus is computed over whole rollouts (a k-NN over one
    step's envs would mean nothing); nothing is trained and ``update`` only reports.

    Args:
        k: which nearest neighbour (the paper's 3).
        embed_dim: size of the random embedding (the paper's 50).
        hidden: hidden widths of the encoder's MLP (its head after the CNN on images).
        obs_key, cnn: which Dict entry to read and which CNN for images (``EncodedReward``).
        coef, schedule, kappa: the paper's beta_0 = 0.05 decayed by (1 - 1e-5) per step.
    """

    def __init__(
        self,
        k: int = 3,
        embed_dim: int = 50,
        hidden: Sequence[int] = (256,),
        coef: float = 0.05,
        schedule: str = "exponential",
        kappa: float = 1e-5,
        **kwargs: Any,
    ) -> None:
        super().__init__(coef=coef, schedule=schedule, kappa=kappa, **kwargs)
        if k < 1:
            raise ValueError(f"reward module {self.name!r}: k must be >= 1, got {k}")
        self.k, self.embed_dim, self.hidden = int(k), int(embed_dim), [int(h) for h in hidden]

    def build(self) -> nn.ModuleDict:
        encoder = self.encoder(self.hidden, self.embed_dim)
        for p in encoder.parameters():
            p.requires_grad_(False)
        return nn.ModuleDict({"encoder": encoder})

    def embed(self, obs: Any) -> torch.Tensor:
        assert self.nets is not None
        with torch.no_grad():
            return self.nets["encoder"](self.tensor(self.obs_features(obs)))

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        self.ensure_built(batch)
        if len(batch) <= self.k:
            raise ValueError(f"reward module {self.name!r}: a batch of {len(batch)} states has no {self.k}-th neighbour; "
                             f"RE3 needs more than k={self.k} states per batch")
        y = self.embed(batch.next_obs)
        out = torch.empty(len(y), device=self.device)
        for start in range(0, len(y), 1024):  # (1024, B) distances at a time
            dist = torch.cdist(y[start : start + 1024], y, compute_mode="donot_use_mm_for_euclid_dist")  # exact 0 for twins
            # the k+1-th smallest: the state itself is at distance 0
            out[start : start + 1024] = torch.log1p(dist.kthvalue(self.k + 1, dim=1).values)
        return out.cpu().numpy()

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        return {}
