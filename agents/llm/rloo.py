"""RLOO: REINFORCE Leave-One-Out on an LLMPolicy (Ahmadian et al. 2024).

Per group of k completions of one question: A_i = r_i - mean of the other k-1 rewards (an
unbiased baseline); sequence-level REINFORCE, one gradient step per rollout (on-policy: no
ratio, no clipping); the KL to the reference (the initial model) is subtracted from each reward,
beta * sum_t (log pi_old - log pi_ref), and is not back-propagated. The loss is a sum over
sequences divided by the rollout's sequence count, so ``train_batch_size`` (the micro-batch)
changes memory, not the update. GRPO's ``clip_eps``, ``loss_type``, ``scale_rewards`` and
``num_iterations`` have no meaning here and are refused (unknown hyperparameters).
"""

from __future__ import annotations

from typing import Any

import torch

from selfgym.agents.llm.losses import loss_normalizer, rloo_advantages, rloo_loss
from selfgym.agents.llm.trainer import LLMTrainer, Rollout, micro_batches


class RLOOAgent(LLMTrainer):
    """REINFORCE Leave-One-Out.

    Args (beyond LLMTrainer's):
        beta: weight of the sequence KL to the reference, subtracted from the reward; 0 skips
            the reference pass.
    """

    def __init__(self, env: Any, *, beta: float = 0.05, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        if self.group_size < 2:
            raise ValueError("rloo needs group_size >= 2 (a leave-one-out baseline)")
        self.beta = float(beta)

    def sequence_kl(self, roll: Rollout) -> torch.Tensor:
        """(n,) sum over turns and tokens of log pi_old - log pi_ref (0 when beta is 0)."""
        kl = torch.zeros(self.env.num_envs)
        if self.beta:
            for _, rows, part in micro_batches(roll.turns, self.train_batch_size):
                ref = self.policy.reference_logprobs(part)
                kl[rows] += ((part.logprobs - ref) * part.completion_mask).sum(1).cpu()
        return kl

    def accumulate_gradients(self, roll: Rollout, adv: torch.Tensor) -> float:
        """Backpropagate the rollout's loss a micro-batch at a time; return the loss."""
        normalizer = loss_normalizer([s.completion_mask for s in roll.turns], "sequence")
        loss_sum = 0.0
        for _, rows, part in micro_batches(roll.turns, self.train_batch_size):
            loss = rloo_loss(self.policy.logprobs(part), adv[rows], part.completion_mask, normalizer=normalizer)
            loss.backward()
            loss_sum += loss.item()
        return loss_sum

    def update(self, roll: Rollout) -> dict[str, float]:
        kl = self.sequence_kl(roll)
        rewards = torch.as_tensor(roll.returns, dtype=torch.float32) - self.beta * kl
        adv = rloo_advantages(rewards, self.group_size).to(self.policy.device)
        self.policy.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.accumulate_gradients(roll, adv)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.trainable_parameters(), self.max_grad_norm)
        self.optimizer.step()
        tokens = sum(float(s.completion_mask.sum()) for s in roll.turns)
        return {"loss": loss, "kl": float(kl.sum() / max(tokens, 1.0)), "grad_norm": float(grad_norm),
                "advantage_nonzero": float((adv != 0).float().mean())}


__all__ = ["RLOOAgent"]
