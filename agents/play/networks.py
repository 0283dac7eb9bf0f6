"""Networks and losses of learning from play (Lynch et al. 2019): pure functions and small modules.

The action head is the paper's discretised logistic mixture (PixelCNN++'s likelihood): every
action dimension has its own mixture of ``n_mixtures`` logistics over [-1, 1] cut into ``bins``
bins. A mixture is needed because play reaches one goal many ways; a unimodal head averages
the modes into an action no demonstrator took (``tests/test_play_agents.py`` shows it on a toy).
The dimensions are independent given the policy's input (as in the paper), so the mode can
combine dimensions from different modes; what ties them together is the state, the memory
and, in Play-LMP, the plan z.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

LOG_SCALE_MIN = -7.0  # logistic scales below e^-7 are far narrower than a bin of 256 over [-1, 1]


def kl_diag_gaussians(mu_q: torch.Tensor, log_std_q: torch.Tensor, mu_p: torch.Tensor,
                      log_std_p: torch.Tensor) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians, summed over the last dimension (closed form, >= 0)."""
    var_q, var_p = torch.exp(2 * log_std_q), torch.exp(2 * log_std_p)
    per_dim = log_std_p - log_std_q + (var_q + (mu_q - mu_p) ** 2) / (2 * var_p) - 0.5
    return per_dim.sum(-1)


class LogisticMixture:
    """A discretised logistic mixture per action dimension, from head outputs (..., A, 3K)."""

    def __init__(self, params: torch.Tensor, bins: int) -> None:
        self.logits, self.means, log_scales = params.chunk(3, dim=-1)
        self.log_scales = log_scales.clamp(min=LOG_SCALE_MIN)
        self.bins = bins

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """log p(a) summed over action dimensions; ``actions`` (..., A) in [-1, 1]."""
        x = actions.clamp(-1.0, 1.0).unsqueeze(-1)
        centred = x - self.means
        inv_scale = torch.exp(-self.log_scales)
        half_bin = 1.0 / (self.bins - 1)
        cdf_plus = torch.sigmoid(inv_scale * (centred + half_bin))
        cdf_min = torch.sigmoid(inv_scale * (centred - half_bin))
        log_cdf_plus = (inv_scale * (centred + half_bin)) - F.softplus(inv_scale * (centred + half_bin))  # x = -1 edge
        log_one_minus_cdf_min = -F.softplus(inv_scale * (centred - half_bin))  # x = +1 edge
        mid = inv_scale * centred
        log_pdf_mid = mid - self.log_scales - 2.0 * F.softplus(mid)  # used when the bin mass underflows
        bin_mass = (cdf_plus - cdf_min).clamp(min=1e-12)
        inner = torch.where(bin_mass > 1e-5, torch.log(bin_mass), log_pdf_mid - math.log((self.bins - 1) / 2))
        log_probs = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, inner))
        mixed = torch.logsumexp(log_probs + F.log_softmax(self.logits, dim=-1), dim=-1)
        return mixed.sum(-1)

    def mode(self) -> torch.Tensor:
        """The mean of each dimension's most likely component (a deterministic action)."""
        best = self.logits.argmax(-1, keepdim=True)
        return self.means.gather(-1, best).squeeze(-1).clamp(-1.0, 1.0)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        probs = F.softmax(self.logits, dim=-1)
        flat = probs.reshape(-1, probs.shape[-1])
        choice = torch.multinomial(flat, 1, generator=generator).reshape(*probs.shape[:-1], 1)
        mean, log_scale = self.means.gather(-1, choice).squeeze(-1), self.log_scales.gather(-1, choice).squeeze(-1)
        u = torch.rand(mean.shape, generator=generator, device=mean.device).clamp(1e-5, 1 - 1e-5)
        return (mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))).clamp(-1.0, 1.0)


class MixtureHead(nn.Module):
    """Linear layer -> per-dimension logistic mixture parameters (logits, means, log scales)."""

    def __init__(self, in_dim: int, action_dim: int, n_mixtures: int, bins: int) -> None:
        super().__init__()
        self.action_dim, self.n_mixtures, self.bins = action_dim, n_mixtures, bins
        self.linear = nn.Linear(in_dim, action_dim * 3 * n_mixtures)
        with torch.no_grad():  # spread the initial means over [-1, 1] so components start on different modes
            bias = self.linear.bias.view(action_dim, 3, n_mixtures)
            bias[:, 1] = torch.linspace(-0.8, 0.8, n_mixtures) if n_mixtures > 1 else 0.0
            bias[:, 2] = -2.0

    def forward(self, features: torch.Tensor) -> LogisticMixture:
        params = self.linear(features).view(*features.shape[:-1], self.action_dim, 3, self.n_mixtures)
        return LogisticMixture(params.flatten(-2), self.bins)


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(in_dim if i == 0 else hidden, hidden), nn.ReLU()]
    return nn.Sequential(*mods, nn.Linear(hidden, out_dim))


class GaussianOut(nn.Module):
    """Features -> (mean, log std) of a diagonal Gaussian, the log std kept in a sane range."""

    def __init__(self, in_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, 2 * latent_dim)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.linear(features).chunk(2, dim=-1)
        return mu, log_std.clamp(-5.0, 2.0)


class PlanRecognizer(nn.Module):
    """q(z | tau): a bidirectional GRU over the window's (state, action) pairs, both final states -> N(mu, sigma)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: int, latent_dim: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(obs_dim + action_dim, hidden, batch_first=True, bidirectional=True)
        self.out = GaussianOut(2 * hidden, latent_dim)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, last = self.rnn(torch.cat([obs, actions], dim=-1))  # last: (2, B, hidden)
        return self.out(torch.cat([last[0], last[1]], dim=-1))


class PlanProposer(nn.Module):
    """p(z | s_0, s_g): an MLP on the window's first state and the goal -> N(mu, sigma)."""

    def __init__(self, obs_dim: int, goal_dim: int, hidden: int, latent_dim: int) -> None:
        super().__init__()
        self.body = mlp(obs_dim + goal_dim, hidden, hidden, layers=2)
        self.out = GaussianOut(hidden, latent_dim)

    def forward(self, obs0: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.out(torch.relu(self.body(torch.cat([obs0, goal], dim=-1))))


class RecurrentPolicy(nn.Module):
    """pi(a_t | s_t, s_g[, z]): a GRU over the window, a mixture head per step.

    ``forward`` takes (B, T, ...) inputs and a hidden state (None at a window's start), and
    returns the per-step action distribution and the new hidden state.
    """

    def __init__(self, obs_dim: int, goal_dim: int, latent_dim: int, action_dim: int, hidden: int,
                 n_mixtures: int, bins: int, layers: int = 1) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.rnn = nn.GRU(obs_dim + goal_dim + latent_dim, hidden, num_layers=layers, batch_first=True)
        self.head = MixtureHead(hidden, action_dim, n_mixtures, bins)

    def forward(self, obs: torch.Tensor, goal: torch.Tensor, plan: torch.Tensor | None,
                hidden: torch.Tensor | None = None) -> tuple[LogisticMixture, torch.Tensor]:
        steps = obs.shape[1]
        parts = [obs, goal.unsqueeze(1).expand(-1, steps, -1)]
        if plan is not None:
            parts.append(plan.unsqueeze(1).expand(-1, steps, -1))
        features, hidden = self.rnn(torch.cat(parts, dim=-1), hidden)
        return self.head(features), hidden
