"""SLIM's pieces: typed config, networks, per-stream GAE, advantage mix and PPO loss.

Kept apart from ``selfgym.agents.slim`` (the training loop) so that each piece is a pure
function tested on its own; read ``slim.py`` first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn


SKILL_TYPES = ("categorical", "continuous")
CRITIC_MODES = ("multi", "summed")
CLIP_MODES = ("per_network", "global")


# -- configuration -----------------------------------------------------------------------------------
@dataclass
class SlimConfig:
    """SLIM's hyperparameters (``hyperparams/slim.yml``); PPO's names and meanings where PPO has them.

    Args:
        weights: stream name -> weight w_k >= 0 (every stream must have one; 0 logs it only).
        gammas, gae_lambdas: per-stream discount / GAE lambda; streams not listed use ``gamma`` /
            ``gae_lambda``. A short horizon suits a per-step safety penalty, a long one reach.
        critic: ``"multi"`` (one critic per stream, SLIM) or ``"summed"`` (one critic on the
            weighted sum, the paper's baseline; per-stream ``gammas`` are refused there).
        skill_type, skill_dim: categorical one-hot skills (DIAYN needs these) or continuous
            standard-normal skill vectors, of this size.
        clip_grad: ``"per_network"`` clips the actor's and each critic's gradient norm apart (a
            stream on a large scale cannot shrink the actor's step); ``"global"`` is SB3's one norm.
        n_steps: steps per env per rollout; the batch is ``n_steps * n_envs``.
        batch_size: minibatch size; advantages are normalised per minibatch (as SB3 PPO does).
    """

    weights: dict[str, float] = field(default_factory=dict)
    gammas: dict[str, float] = field(default_factory=dict)
    gae_lambdas: dict[str, float] = field(default_factory=dict)
    critic: str = "multi"
    skill_type: str = "categorical"
    skill_dim: int = 8
    n_steps: int = 256
    batch_size: int = 64
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    clip_grad: str = "per_network"
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    log_std_init: float = 0.0

    def check(self) -> None:
        """Refuse bad values at once, naming the setting (before any run folder exists)."""
        check_weights(self.weights)
        for name, table in (("gammas", self.gammas), ("gae_lambdas", self.gae_lambdas)):
            for key, value in table.items():
                if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
                    raise ValueError(f"slim: {name}[{key!r}]={value!r} must be a number in [0, 1]")
        for name, value, valid in (("critic", self.critic, CRITIC_MODES), ("skill_type", self.skill_type, SKILL_TYPES),
                                   ("clip_grad", self.clip_grad, CLIP_MODES)):
            if value not in valid:
                raise ValueError(f"slim: {name}={value!r}; use one of {', '.join(valid)}")
        if self.critic == "summed" and (self.gammas or self.gae_lambdas):
            raise ValueError("slim: critic='summed' has one critic and one discount; per-stream gammas/gae_lambdas "
                             "would be ignored, so drop them (or use critic='multi')")
        for name in ("skill_dim", "n_steps", "batch_size", "n_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"slim: {name} must be a whole number >= 1, got {value!r}")
        for name in ("learning_rate", "gamma", "gae_lambda", "clip_range", "ent_coef", "vf_coef", "max_grad_norm"):
            value = getattr(self, name)
            if not _is_number(value) or float(value) < 0:
                raise ValueError(f"slim: {name} must be a finite number >= 0, got {value!r} "
                                 "(schedules such as 'lin_0.001' are not supported by slim)")


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(float(value))


def check_weights(weights: Any, module_names: list[str] | None = None) -> None:
    """Each weight a finite number >= 0, and every ``--reward`` module given one.

    Cheap on purpose: ``selfgym.train`` calls it (through ``SlimAgent.check_config``) before any
    run folder exists; env components are checked when the agent is built (they need the env).
    """
    if not isinstance(weights, dict) or not weights:
        raise ValueError("slim: weights must map each reward stream to a weight, e.g. -params \"weights:{'diayn': 1.0, "
                         f"'safety': 1.0}}\"; got {weights!r}")
    for name, value in weights.items():
        if not _is_number(value) or float(value) < 0:
            raise ValueError(f"slim: the weight of stream {name!r} is {value!r}; give a finite number >= 0")
    missing = [m for m in module_names or [] if m not in weights]
    if missing:
        raise ValueError(f"slim: no weight for reward stream(s) {', '.join(map(repr, missing))} (from --reward); "
                         f"add them to weights (now {', '.join(sorted(weights))})")


# -- networks ----------------------------------------------------------------------------------------
class StackedMLP(nn.Module):
    """K independent MLPs evaluated as one batched matmul per layer: (B, D) -> (B, K).

    One critic network per stream without K Python-level forward passes; with K = 1 it is
    exactly SB3's value MLP (tanh, orthogonal init: sqrt(2) hidden, 1 output, zero biases).
    """

    def __init__(self, n_nets: int, in_dim: int, hidden: list[int]) -> None:
        super().__init__()
        dims = [in_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            gain = 1.0 if i == len(dims) - 2 else math.sqrt(2)
            w = torch.empty(n_nets, d_out, d_in)
            for k in range(n_nets):
                nn.init.orthogonal_(w[k], gain=gain)
            self.weights.append(nn.Parameter(w.transpose(1, 2).contiguous()))  # (K, in, out)
            self.biases.append(nn.Parameter(torch.zeros(n_nets, 1, d_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(len(self.weights[0]), *x.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.tanh(h)
        return h.squeeze(-1).transpose(0, 1)  # (B, K)


def _mlp(in_dim: int, hidden: list[int], out_dim: int, out_gain: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layer = nn.Linear(in_dim, width)
        nn.init.orthogonal_(layer.weight, math.sqrt(2))
        nn.init.zeros_(layer.bias)
        layers += [layer, nn.Tanh()]
        in_dim = width
    out = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(out.weight, out_gain)
    nn.init.zeros_(out.bias)
    return nn.Sequential(*layers, out)


class Actor(nn.Module):
    """pi(a | s, z): a diagonal Gaussian (Box actions, state-independent log std) or a categorical."""

    def __init__(self, in_dim: int, action_space: gym.Space, hidden: list[int], log_std_init: float) -> None:
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        out_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.net = _mlp(in_dim, hidden, out_dim, out_gain=0.01)
        self.log_std = None if self.discrete else nn.Parameter(torch.full((out_dim,), float(log_std_init)))

    def dist(self, x: torch.Tensor) -> torch.distributions.Distribution:
        out = self.net(x)
        if self.discrete:
            return torch.distributions.Categorical(logits=out, validate_args=False)
        return torch.distributions.Normal(out, self.log_std.exp().expand_as(out), validate_args=False)

    def log_prob_entropy(self, x: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.dist(x)
        if self.discrete:
            return dist.log_prob(actions.long()), dist.entropy()
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1)


# -- the algorithm's pure pieces (tested on their own) ---------------------------------------------
def gae(rewards: np.ndarray, values: np.ndarray, episode_starts: np.ndarray, last_values: np.ndarray,
        last_starts: np.ndarray, gammas: np.ndarray, lambdas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GAE per stream, SB3's convention: (T, N, K) rewards/values, (T, N) episode starts.

    Returns (advantages, returns), both (T, N, K); stream k uses gammas[k] and lambdas[k].
    """
    steps = rewards.shape[0]
    advantages = np.zeros_like(rewards, dtype=np.float32)
    last = np.zeros(rewards.shape[1:], dtype=np.float32)
    for t in reversed(range(steps)):
        next_values = last_values if t == steps - 1 else values[t + 1]
        not_done = (1.0 - (last_starts if t == steps - 1 else episode_starts[t + 1]))[:, None]
        delta = rewards[t] + gammas * next_values * not_done - values[t]
        last = delta + gammas * lambdas * not_done * last
        advantages[t] = last
    return advantages, advantages + values


def normalize_per_stream(advantages: torch.Tensor) -> torch.Tensor:
    """(B, K) -> each column to mean 0, std 1 over the batch (as SB3 PPO normalises its one)."""
    if len(advantages) < 2:
        return advantages
    return (advantages - advantages.mean(0)) / (advantages.std(0) + 1e-8)


def combined_advantage(advantages: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """SLIM's mix: A = sum_k w_k * normalised A_k, shape (B,)."""
    return normalize_per_stream(advantages) @ weights


def ppo_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, entropy: torch.Tensor, advantage: torch.Tensor,
             values: torch.Tensor, returns: torch.Tensor, clip_range: float, ent_coef: float,
             vf_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped loss on the mixed advantage; the critics' squared errors are summed over streams.

    Each critic is its own network, so summing leaves each critic its own gradient.
    """
    ratio = torch.exp(log_prob - old_log_prob)
    policy_loss = -torch.min(advantage * ratio, advantage * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
    value_losses = ((returns - values) ** 2).mean(0)  # (K,)
    entropy_loss = -entropy.mean()
    loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_losses.sum()
    with torch.no_grad():
        stats = {"policy_loss": policy_loss.item(), "entropy_loss": entropy_loss.item(),
                 "clip_fraction": ((ratio - 1).abs() > clip_range).float().mean().item(),
                 "approx_kl": ((ratio - 1) - (log_prob - old_log_prob)).mean().item()}
    return loss, {**stats, **{f"value_loss_{k}": v for k, v in enumerate(value_losses.tolist())}}


def clip_grad_per_network_(actor: nn.Module, critics: StackedMLP, max_norm: float) -> None:
    """Clip the actor's gradient norm and each stacked critic's own norm to ``max_norm``.

    Why not one global norm (SB3): a stream on a large scale has large critic gradients, and a
    global clip would shrink the actor's step with them; clipped apart, it cannot.
    """
    actor_grads = [p.grad for p in actor.parameters() if p.grad is not None]
    critic_grads = [p.grad for p in critics.parameters() if p.grad is not None]
    if actor_grads:
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(actor_grads)))
        torch._foreach_mul_(actor_grads, (max_norm / (norm + 1e-6)).clamp(max=1.0))
    if critic_grads:
        norms = torch.stack([g.pow(2).flatten(1).sum(1) for g in critic_grads]).sum(0).sqrt()  # (K,)
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in critic_grads:
            g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
