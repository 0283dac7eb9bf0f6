"""Never Give Up, NGU (Badia, Sprechmann, Vitvitskyi et al., ICLR 2020, arXiv:2002.06038):
episodic novelty modulated by life-long novelty.

    r_t = r_episodic(s_{t+1}) * min(max(alpha(s_{t+1}), 1), L),   alpha = 1 + (e - mu_e) / sigma_e,

where r_episodic is the k-NN kernel pseudo-count of ``pseudo_counts.PseudoCounts`` (memory
cleared at each episode end) and e is RND's prediction error (Burda et al. 2018, our ``rnd``
module), standardised by its running mean and deviation; L = 5. The episodic term keeps the
agent moving within an episode even after the whole space is familiar ("never give up"); the
life-long factor (at least 1, at most 5) favours states new over the agent's whole life.
The paper's single-policy agent weights the bonus by beta = 0.3 (``coef=0.3``).

The running statistics of e are taken in ``update``, so ``compute`` does not depend on how a
rollout is split into envs; until the first ``update`` the life-long factor is 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd

from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.intrinsic.pseudo_counts import PseudoCounts
from selfgym.rewards.intrinsic.rnd import RND


class NGU(PseudoCounts):
    """Episodic pseudo-count bonus times RND's life-long factor clipped to [1, ``max_lifelong``].

    Args:
        max_lifelong: L, the cap of the life-long factor (the paper's 5).
        rnd_hidden, rnd_embed_dim: widths and output size of RND's target and predictor.
        coef: the bonus weight, beta = 0.3 as in the paper.
        everything else: as ``PseudoCounts`` (k = 10, 32-d embedding, ...); ``lr``, ``seed``,
            ``device``, ``obs_key`` and ``cnn`` are shared with the RND.
    """

    def __init__(
        self,
        max_lifelong: float = 5.0,
        rnd_hidden: Sequence[int] = (256, 256),
        rnd_embed_dim: int = 64,
        coef: float = 0.3,
        **kwargs: Any,
    ) -> None:
        super().__init__(coef=coef, **kwargs)
        if max_lifelong < 1:
            raise ValueError(f"reward module {self.name!r}: max_lifelong must be >= 1, got {max_lifelong}")
        self.max_lifelong = float(max_lifelong)
        self.rnd = RND(hidden=rnd_hidden, embed_dim=rnd_embed_dim, obs_key=self.obs_key, cnn=self.cnn,
                       lr=self.lr, device=str(self.device), seed=self.seed, epochs=self.epochs,
                       batch_size=self.batch_size, name=f"{self.name}/rnd")
        self.error_rms = RunningMeanStd(epsilon=0.0)

    def setup(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().setup(observation_space, action_space)
        self.rnd.setup(observation_space, action_space)

    def ensure_built(self, batch: Any) -> None:
        super().ensure_built(batch)
        self.rnd.ensure_built(batch)

    def lifelong(self, batch: TransitionBatch) -> torch.Tensor:
        """min(max(1 + (e - mu_e) / sigma_e, 1), L) for each next state; 1 before any ``update``."""
        if self.error_rms.count == 0:
            return torch.ones(len(batch), device=self.device)
        errors = torch.as_tensor(self.rnd.compute(batch), device=self.device)
        alpha = 1.0 + (errors - float(self.error_rms.mean)) / float(np.sqrt(self.error_rms.var) + 1e-8)
        return alpha.clamp(1.0, self.max_lifelong)

    def run_episodes(self, batch: TransitionBatch, memory: dict[str, Any], n_envs: int) -> torch.Tensor:
        episodic = super().run_episodes(batch, memory, n_envs)
        return episodic * self.lifelong(batch).reshape(-1, n_envs)

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        """The episodic part's update, then RND's error statistics and its predictor."""
        metrics = super().update(batch)
        self.error_rms.update(self.rnd.compute(batch).astype(np.float64))
        metrics.update({f"rnd_{k}": v for k, v in self.rnd.update(batch).items()})
        return metrics

    def extra_state(self) -> dict[str, Any]:
        state = super().extra_state()
        if state:
            state["rnd"] = self.rnd.state_dict()
            state["error_rms"] = {"mean": float(self.error_rms.mean), "var": float(self.error_rms.var),
                                  "count": float(self.error_rms.count)}
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        if "rnd" in state:
            self.rnd.load_state_dict(state["rnd"])
            rms = state["error_rms"]
            self.error_rms.mean, self.error_rms.var = np.float64(rms["mean"]), np.float64(rms["var"])
            self.error_rms.count = float(rms["count"])
