"""Play-GCBC: goal-conditioned behaviour cloning from play (Lynch et al. 2019, section 4.1).

Any window of play, relabelled in hindsight, is a demonstration of reaching its own last state:
tau = (s_k..s_{k+kappa-1}, a_k..a_{k+kappa-1}), s_g = s_{k+kappa}. A recurrent policy
pi(a_t | s_t, s_g) is trained by the windows' negative log-likelihood,

    L = -(1/kappa) sum_t ln pi(a_t | s_t, s_g),

under a discretised-logistic-mixture action head (``agents/play/networks.py``). At test time
the policy restarts every kappa steps, as each training window started from nothing.
The dataset, normalisation, the loop and checkpoints are ``agents/play/offline.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from selfgym.agents.play.networks import RecurrentPolicy
from selfgym.agents.play.offline import OfflinePlayAgent


class GCBCModel(nn.Module):
    def __init__(self, policy: RecurrentPolicy) -> None:
        super().__init__()
        self.policy = policy


class PlayGCBCAgent(OfflinePlayAgent):
    """Play-GCBC; hyperparameters are ``OfflinePlayAgent``'s (``hyperparams/play_gcbc.yml``)."""

    agent_name = "play_gcbc"

    def build(self) -> nn.Module:
        return GCBCModel(RecurrentPolicy(self.obs_dim, self.goal_dim, 0, self.action_dim, self.hidden,
                                         self.n_mixtures, self.bins))

    def loss(self, obs: torch.Tensor, actions: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        dist, _ = self.model.policy(obs, goal, None)
        nll = -dist.log_prob(actions).mean()  # mean over windows and their kappa steps
        return nll, {"loss": nll.item(), "nll": nll.item()}

    def propose(self, obs: torch.Tensor, goal: torch.Tensor, deterministic: bool) -> None:
        return None
