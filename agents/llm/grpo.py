"""GRPO and RLOO agents: group-relative policy gradients on an LLMPolicy.

GRPO (Shao et al. 2024): A_i = (r_i - mean_group r) / (std_group r + eps) on every token of
completion i; PPO-clipped token ratios; plus beta * k3 KL to the reference (the initial model:
LoRA disabled, or a frozen copy). RLOO (Ahmadian et al. 2024): A_i = r_i - mean of the other
k-1 rewards of the group, sequence-level REINFORCE, KL folded into the reward (not
back-propagated). See agents/llm/trainer.py for how groups map onto the VecEnv.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from selfgym.agents.llm.losses import group_advantages, grpo_loss, rloo_advantages, rloo_loss
from selfgym.llm.policy import Samples
from selfgym.agents.llm.trainer import LLMTrainer, Rollout


def _slice(s: Samples, idx: slice) -> Samples:
    return Samples(s.prompt_ids[idx], s.prompt_mask[idx], s.completion_ids[idx], s.completion_mask[idx], s.logprobs[idx], s.texts[idx])


class GRPOAgent(LLMTrainer):
    """Group Relative Policy Optimisation.

    Args (beyond LLMTrainer's): beta (KL coefficient; 0 skips the reference pass), clip_eps,
    num_iterations (optimisation passes per rollout batch), loss_type ("grpo": per-sequence
    token mean; "dapo": token mean over the batch), scale_rewards (divide by the group std).
    """

    def __init__(self, env: Any, *, beta: float = 0.04, clip_eps: float = 0.2, num_iterations: int = 1,
                 loss_type: str = "grpo", scale_rewards: bool = True, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        if loss_type not in ("grpo", "dapo"):
            raise ValueError(f"loss_type must be 'grpo' or 'dapo', got {loss_type!r}")
        self.beta, self.clip_eps, self.num_iterations = float(beta), float(clip_eps), int(num_iterations)
        self.loss_type, self.scale_rewards = loss_type, bool(scale_rewards)

    def advantages(self, returns: torch.Tensor) -> torch.Tensor:
        return group_advantages(returns, self.group_size, scale=self.scale_rewards)

    def update(self, roll: Rollout) -> dict[str, float]:
        adv = self.advantages(torch.as_tensor(roll.returns, dtype=torch.float32)).to(self.policy.device)
        self.policy.model.train()
        stats: dict[str, list[float]] = {"loss": [], "kl": [], "clip_fraction": []}
        n, mb = self.env.num_envs, max(self.train_batch_size, 1)
        ref = {}  # reference log-probs do not change across iterations: compute once
        if self.beta:
            for t, samples in enumerate(roll.turns):
                for i in range(0, n, mb):
                    ref[t, i] = self.policy.reference_logprobs(_slice(samples, slice(i, i + mb)))
        chunks = len(roll.turns) * ((n + mb - 1) // mb)
        for _ in range(self.num_iterations):
            if not bool((adv != 0).any()) and not self.beta:
                break  # nothing to learn from this batch: every group had equal rewards
            self.optimizer.zero_grad(set_to_none=True)
            for t, samples in enumerate(roll.turns):
                for i in range(0, n, mb):
                    part = _slice(samples, slice(i, i + mb))
                    logp = self.policy.logprobs(part)
                    loss, info = grpo_loss(logp, part.logprobs, ref.get((t, i)), adv[i : i + mb], part.completion_mask,
                                           self.clip_eps, self.beta, self.loss_type)
                    (loss / chunks).backward()
                    stats["loss"].append(loss.item())
                    stats["kl"].append(info["kl"])
                    stats["clip_fraction"].append(info["clip_fraction"])
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.trainable_parameters(), self.max_grad_norm)
            self.optimizer.step()
        out = {k: float(np.mean(v)) for k, v in stats.items() if v}
        out["advantage_nonzero"] = float((adv != 0).float().mean())
        if stats["loss"]:
            out["grad_norm"] = float(grad_norm)
        return out


class RLOOAgent(GRPOAgent):
    """REINFORCE Leave-One-Out: sequence-level policy gradient with a leave-one-out baseline;
    the KL penalty beta * sum_t (log pi - log pi_ref) is subtracted from each reward."""

    def __init__(self, env: Any, *, beta: float = 0.05, **kwargs: Any) -> None:
        super().__init__(env, beta=beta, **kwargs)
        if self.group_size < 2:
            raise ValueError("rloo needs group_size >= 2")

    def update(self, roll: Rollout) -> dict[str, float]:
        n, mb = self.env.num_envs, max(self.train_batch_size, 1)
        kl = torch.zeros(n)
        if self.beta:
            for samples in roll.turns:
                for i in range(0, n, mb):
                    part = _slice(samples, slice(i, i + mb))
                    ref = self.policy.reference_logprobs(part)
                    kl[i : i + mb] += ((part.logprobs - ref) * part.completion_mask).sum(1).cpu()
        rewards = torch.as_tensor(roll.returns, dtype=torch.float32) - self.beta * kl
        adv = rloo_advantages(rewards, self.group_size).to(self.policy.device)
        self.policy.model.train()
        losses: list[float] = []
        chunks = len(roll.turns) * ((n + mb - 1) // mb)
        for _ in range(self.num_iterations):
            self.optimizer.zero_grad(set_to_none=True)
            for samples in roll.turns:
                for i in range(0, n, mb):
                    part = _slice(samples, slice(i, i + mb))
                    loss = rloo_loss(self.policy.logprobs(part), adv[i : i + mb], part.completion_mask)
                    (loss / chunks).backward()
                    losses.append(loss.item())
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.trainable_parameters(), self.max_grad_norm)
            self.optimizer.step()
        tokens = sum(float(s.completion_mask.sum()) for s in roll.turns)
        return {"loss": float(np.mean(losses)), "kl": float(kl.sum() / max(tokens, 1.0)), "grad_norm": float(grad_norm),
                "advantage_nonzero": float((adv != 0).float().mean())}


__all__ = ["GRPOAgent", "RLOOAgent"]
