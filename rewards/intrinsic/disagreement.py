"""Self-Supervised Exploration via Disagreement (Pathak, Gandhi and Gupta, ICML 2019,
arXiv:1906.04161).

An ensemble of forward models g_1..g_M, each predicting the next state's features phi(s')
from phi(s) and a, is trained on the agent's transitions; the bonus is their disagreement,

    r_t = mean_j Var_i[ g_i(phi(s_t), a_t)_j ],

the variance across the ensemble, averaged over feature dimensions. Where the models have
seen data they agree and the bonus falls; unlike a single model's error (ICM), it does not
stay high on transitions that are merely noisy, since the models all learn to predict the
mean. The paper's defaults: M = 5 models, each trained on its own bootstrap of the data from
its own random initialisation, in the feature space of a fixed random network ("random
features", Burda et al. 2019).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.intrinsic._torch import action_dim, action_features, mlp
from selfgym.rewards.intrinsic.encoders import EncodedReward


class Disagreement(EncodedReward):
    """Variance across an ensemble of forward models in a fixed random feature space.

    Args:
        ensemble_size: M, the number of forward models (the paper's 5).
        feature_dim: size of the random features phi(s).
        hidden: hidden widths of the random encoder (its MLP head after the CNN on images) and
            of each forward model.
        epochs, batch_size: training per ``update`` call; each model draws its own bootstrap
            sample (with replacement) of the batch.
        obs_key, cnn: which Dict entry to read and which CNN for images (``EncodedReward``).
    """

    needs_actions = True

    def __init__(
        self,
        ensemble_size: int = 5,
        feature_dim: int = 64,
        hidden: Sequence[int] = (256,),
        epochs: int = 1,
        batch_size: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if ensemble_size < 2:
            raise ValueError(f"reward module {self.name!r}: ensemble_size must be >= 2 (a variance needs two models), got {ensemble_size}")
        self.ensemble_size, self.feature_dim = int(ensemble_size), int(feature_dim)
        self.hidden, self.epochs, self.batch_size = [int(h) for h in hidden], int(epochs), int(batch_size)
        self._rng = np.random.default_rng(self.seed)

    def build(self) -> nn.ModuleDict:
        assert self.action_space is not None
        encoder = self.encoder(self.hidden, self.feature_dim)
        for p in encoder.parameters():
            p.requires_grad_(False)
        n_in = self.feature_dim + action_dim(self.action_space)
        models = nn.ModuleList([mlp(n_in, self.hidden, self.feature_dim) for _ in range(self.ensemble_size)])
        return nn.ModuleDict({"encoder": encoder, "forward_models": models})

    def _inputs(self, batch: TransitionBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(phi(s), a) rows and the targets phi(s')."""
        assert self.nets is not None and self.action_space is not None
        with torch.no_grad():
            phi = self.nets["encoder"](self.tensor(self.obs_features(batch.obs)))
            phi_next = self.nets["encoder"](self.tensor(self.obs_features(batch.next_obs)))
        act = action_features(batch.actions, self.action_space).to(self.device)
        return torch.cat([phi, act], dim=1), phi_next

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        self.ensure_built(batch)
        assert self.nets is not None
        x, _ = self._inputs(batch)
        with torch.no_grad():
            predictions = torch.stack([model(x) for model in self.nets["forward_models"]])  # (M, B, d)
        return predictions.var(dim=0).mean(dim=1).cpu().numpy()

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        self.ensure_built(batch)
        assert self.optimizer is not None and self.nets is not None
        x, target = self._inputs(batch)
        losses = []
        for _ in range(self.epochs):
            # one bootstrap per model: B draws with replacement, in minibatches
            samples = [torch.as_tensor(self._rng.integers(0, len(x), len(x))) for _ in range(self.ensemble_size)]
            for start in range(0, len(x), self.batch_size):
                loss = sum(((model(x[idx[start : start + self.batch_size]]) - target[idx[start : start + self.batch_size]]) ** 2).mean()
                           for model, idx in zip(self.nets["forward_models"], samples))
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                losses.append(loss.item() / self.ensemble_size)
        return {"forward_loss": float(np.mean(losses))}
