"""Play-LMP: latent motor plans from play (Lynch et al. 2019, section 4.2), a conditional VAE.

One goal can be reached many ways; the plan z says which. Over a hindsight-relabelled window
tau = (s_k..s_{k+kappa-1}, a_k..a_{k+kappa-1}) with goal s_g = s_{k+kappa}:

* plan recogniser q(z | tau): a bidirectional GRU over the whole window (it sees the way taken);
* plan proposer p(z | s_k, s_g): an MLP that sees only the start and the goal;
* policy pi(a_t | s_t, s_g, z): a GRU with a discretised-logistic-mixture head.

    L = -(1/kappa) sum_t ln pi(a_t | s_t, s_g, z) + beta * KL(q(z|tau) || p(z|s_k, s_g)),  z ~ q(z|tau)

(reparameterised). beta < 1 keeps the posterior from collapsing onto the prior (the paper does
not state its value; ours is in ``hyperparams/play_lmp.yml``). At test time z comes from the
proposer and is drawn again every kappa steps (``replan_every``), about 1 Hz at 30 Hz control;
deterministic evaluation takes the proposer's mean. The shared machinery is ``agents/play/offline.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from selfgym.agents.play.networks import PlanProposer, PlanRecognizer, RecurrentPolicy, kl_diag_gaussians
from selfgym.agents.play.offline import OfflinePlayAgent
from selfgym.envs.play_table.heldout import TestCases
from selfgym.envs.play_table.tasks import TASK_NAMES


class LMPModel(nn.Module):
    def __init__(self, recognizer: PlanRecognizer, proposer: PlanProposer, policy: RecurrentPolicy) -> None:
        super().__init__()
        self.recognizer, self.proposer, self.policy = recognizer, proposer, policy


class PlayLMPAgent(OfflinePlayAgent):
    """Play-LMP.

    Args (besides ``OfflinePlayAgent``'s):
        beta: weight of KL(q || p) in the loss.
        latent_dim: size of the plan z.
    """

    agent_name = "play_lmp"

    def __init__(self, env: Any, *, beta: float = 0.01, latent_dim: int = 32, **kwargs: Any) -> None:
        if not (isinstance(beta, (int, float)) and 0.0 <= float(beta) < float("inf")):
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a whole number >= 1, got {latent_dim!r}")
        self.beta, self.latent_dim = float(beta), latent_dim
        super().__init__(env, **kwargs)

    def build(self) -> nn.Module:
        return LMPModel(PlanRecognizer(self.obs_dim, self.action_dim, self.hidden, self.latent_dim),
                        PlanProposer(self.obs_dim, self.goal_dim, self.hidden, self.latent_dim),
                        RecurrentPolicy(self.obs_dim, self.goal_dim, self.latent_dim, self.action_dim, self.hidden,
                                        self.n_mixtures, self.bins))

    def loss(self, obs: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        mu_q, log_std_q = self.model.recognizer(obs, actions)
        mu_p, log_std_p = self.model.proposer(obs[:, 0], goal)
        plan = mu_q + torch.exp(log_std_q) * torch.randn_like(mu_q)  # one z per window, from the recogniser
        dist, _ = self.model.policy(obs, goal, plan)
        nll = -dist.log_prob(actions).mean()
        kl = kl_diag_gaussians(mu_q, log_std_q, mu_p, log_std_p).mean()
        loss = nll + self.beta * kl
        return loss, {"loss": loss.item(), "nll": nll.item(), "kl": kl.item()}

    def propose(self, obs: torch.Tensor, goal: torch.Tensor, deterministic: bool) -> torch.Tensor:
        mu_p, log_std_p = self.model.proposer(obs, goal)
        return mu_p if deterministic else mu_p + torch.exp(log_std_p) * torch.randn_like(mu_p)

    @torch.no_grad()
    def describe_cases(self, cases: TestCases) -> dict[str, Any]:
        """The plan space (the paper's figure): the proposer's mean plan for every test case,
        projected to 2-D by PCA, with the case's task; the paper's plans cluster by task."""
        obs, goal = self.case_inputs(cases)
        means = self.model.proposer(obs, goal)[0].cpu().numpy().astype(np.float64)
        centred = means - means.mean(0)
        _, singular, axes = np.linalg.svd(centred, full_matrices=False)
        share = singular ** 2 / max(float((singular ** 2).sum()), 1e-12)
        return {"plan_pca": {"tasks": [TASK_NAMES[int(i)] for i in cases.task_ids],
                             "xy": (centred @ axes[:2].T).round(4).tolist(),
                             "explained_variance": share[:2].round(4).tolist()}}
