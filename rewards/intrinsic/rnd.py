"""Random Network Distillation (Burda et al., 2018): novelty as the error of predicting a fixed
random network's output.

A predictor is trained to match a frozen, randomly initialised target on the states the agent
sees. On states seen often the error is small; on new states it stays large, so the error is
an exploration bonus. Observations are normalised by running statistics and clipped (as in the
paper), because the random target is otherwise dominated by the largest-scale features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.intrinsic._torch import RunningObsNorm, in_chunks
from selfgym.rewards.intrinsic.encoders import EncodedReward


class RND(EncodedReward):
    """Bonus ``||f_pred(s') - f_target(s')||^2`` (mean over the embedding) on the next state.

    Args:
        hidden: widths of the MLP hidden layers (target and predictor alike; on images, of the
            MLP head after the shared CNN, ``encoders.build_encoder``).
        obs_key, cnn: which Dict entry to read and which CNN for images (``EncodedReward``).
        embed_dim: size of the random embedding.
        epochs, batch_size: predictor training per ``update`` call; ``compute`` also runs the
            networks ``batch_size`` rows at a time (same values, less memory).
        update_proportion: fraction of each batch the predictor trains on (CleanRL uses 0.25,
            which keeps the bonus from vanishing too fast with many envs).
        obs_norm: normalise inputs by running mean/std, clipped to +-``obs_clip``.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (256, 256),
        embed_dim: int = 64,
        epochs: int = 1,
        batch_size: int = 256,
        update_proportion: float = 1.0,
        obs_norm: bool = True,
        obs_clip: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 < update_proportion <= 1.0:
            raise ValueError(f"reward module {self.name!r}: update_proportion must be in (0, 1], got {update_proportion}")
        if int(epochs) < 1 or int(batch_size) < 1:
            raise ValueError(f"reward module {self.name!r}: epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
        self.hidden, self.embed_dim = [int(h) for h in hidden], int(embed_dim)
        self.epochs, self.batch_size, self.update_proportion = int(epochs), int(batch_size), float(update_proportion)
        self.obs_norm, self.obs_clip = bool(obs_norm), float(obs_clip)
        self.norm: RunningObsNorm | None = None
        self._rng = np.random.default_rng(self.seed)

    def build(self) -> nn.ModuleDict:
        assert self.obs_dim is not None
        target = self.encoder(self.hidden, self.embed_dim)
        for p in target.parameters():
            p.requires_grad_(False)
        self.norm = RunningObsNorm(self.obs_dim, self.obs_clip)
        return nn.ModuleDict({"target": target, "predictor": self.encoder(self.hidden, self.embed_dim)})

    def _inputs(self, obs: Any) -> torch.Tensor:
        x = self.tensor(self.obs_features(obs))
        if not self.obs_norm:
            return x
        assert self.norm is not None
        if self.norm.count == 0:  # first batch ever: start the statistics from it
            self.norm.update(x)
        return self.norm(x)

    def _errors(self, x: torch.Tensor) -> torch.Tensor:
        assert self.nets is not None
        return (self.nets["predictor"](x) - self.nets["target"](x)).pow(2).mean(dim=1)

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        self.ensure_built(batch)
        with torch.no_grad():
            return in_chunks(self._errors, self._inputs(batch.next_obs), size=self.batch_size).cpu().numpy()

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        self.ensure_built(batch)
        assert self.optimizer is not None and self.norm is not None
        x = self.tensor(self.obs_features(batch.next_obs))
        if self.obs_norm:
            self.norm.update(x)
            x = self.norm(x)
        losses = []
        for _ in range(self.epochs):
            order = self._rng.permutation(len(x))
            for start in range(0, len(x), self.batch_size):
                idx = torch.as_tensor(order[start : start + self.batch_size])
                err = self._errors(x[idx])
                if self.update_proportion < 1.0:
                    mask = torch.as_tensor(self._rng.random(len(idx)) < self.update_proportion, dtype=err.dtype, device=err.device)
                    loss = (err * mask).sum() / mask.sum().clamp(min=1.0)
                else:
                    loss = err.mean()
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                losses.append(loss.item())
        return {"loss": float(np.mean(losses))}

    def extra_state(self) -> dict[str, Any]:
        state = super().extra_state()
        if state and self.norm is not None:
            state["obs_norm"] = self.norm.state()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        if state and "obs_norm" in state and self.norm is not None:
            self.norm.load(state["obs_norm"])
