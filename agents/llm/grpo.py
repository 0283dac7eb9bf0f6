"""GRPO: group-relative policy optimisation on an LLMPolicy (Shao et al. 2024).

Per group of G completions of one question: A_i = (r_i - mean_group r) / (std_group r + eps)
on every token of completion i; PPO-clipped token ratios; plus beta * k3 KL to the reference
(the initial model: LoRA disabled, or a frozen copy). The loss is normalised once over the
whole rollout as TRL defines it (``loss_type="grpo"``: per sequence, ``"dapo"``: per token of
the batch), so ``train_batch_size`` (the micro-batch) changes memory, not the update. See
agents/llm/trainer.py for how groups map onto the VecEnv; RLOO is in rloo.py.
"""

from __future__ import annotations

from typing import Any

import torch

from selfgym.agents.llm.losses import group_advantages, grpo_loss, loss_normalizer
from selfgym.agents.llm.trainer import LLMTrainer, Rollout, micro_batches


class GRPOAgent(LLMTrainer):
    """Group Relative Policy Optimisation.

    Args (beyond LLMTrainer's):
        beta: KL coefficient to the reference; 0 skips the reference pass.
        clip_eps: PPO clip range of the token ratio pi / pi_old.
        num_iterations: optimisation passes over each rollout batch (ratios are 1 on the first).
        loss_type: ``"grpo"`` (each sequence's token mean, averaged over the batch's sequences)
            or ``"dapo"`` (every token of the batch weighted equally: TRL's default).
        scale_rewards: divide group-centred rewards by the group std (False: Dr. GRPO's choice).
    """

    def __init__(self, env: Any, *, beta: float = 0.04, clip_eps: float = 0.2, num_iterations: int = 1,
                 loss_type: str = "grpo", scale_rewards: bool = True, **kwargs: Any) -> None:
        if loss_type not in ("grpo", "dapo"):
            raise ValueError(f"loss_type must be 'grpo' or 'dapo', got {loss_type!r}")
        if int(num_iterations) < 1:
            raise ValueError(f"num_iterations must be >= 1, got {num_iterations}")
        if not float(clip_eps) > 0:
            raise ValueError(f"clip_eps must be > 0, got {clip_eps}")
        super().__init__(env, **kwargs)
        self.beta, self.clip_eps, self.num_iterations = float(beta), float(clip_eps), int(num_iterations)
        self.loss_type, self.scale_rewards = loss_type, bool(scale_rewards)
        # With LoRA the reference's log-probs come out of the sampling passes (adapter off on a
        # copy of each row, same forward): no reference pass in the update.
        self.score_reference_while_sampling = bool(self.beta) and bool(self.policy.lora)

    def advantages(self, returns: torch.Tensor) -> torch.Tensor:
        return group_advantages(returns, self.group_size, scale=self.scale_rewards)

    def reference_logprobs(self, roll: Rollout) -> list[torch.Tensor]:
        """Per turn, the reference's (n, T) token log-probs (fixed across iterations: computed once);
        taken from the samples when sampling scored them (LoRA), else one no-grad pass."""
        if all(s.ref_logprobs is not None for s in roll.turns):
            return [s.ref_logprobs for s in roll.turns]
        parts: dict[int, list[torch.Tensor]] = {t: [] for t in range(len(roll.turns))}
        for turn, _, part in micro_batches(roll.turns, self.train_batch_size):
            parts[turn].append(self.policy.reference_logprobs(part))
        return [torch.cat(parts[t]) for t in range(len(roll.turns))]

    def accumulate_gradients(self, roll: Rollout, adv: torch.Tensor, ref: list[torch.Tensor] | None) -> dict[str, float]:
        """Backpropagate the whole rollout's loss a micro-batch at a time; return the loss and
        token-weighted KL and clip fraction. The gradients add up to the full-batch gradient."""
        normalizer = loss_normalizer([s.completion_mask for s in roll.turns], self.loss_type)
        loss_sum, kl_sum, clip_sum, tokens = 0.0, 0.0, 0.0, 0.0
        for turn, rows, part in micro_batches(roll.turns, self.train_batch_size):
            loss, info = grpo_loss(self.policy.logprobs(part), part.logprobs, ref[turn][rows] if ref else None, adv[rows],
                                   part.completion_mask, self.clip_eps, self.beta, self.loss_type, normalizer=normalizer)
            loss.backward()
            n_tokens = float(part.completion_mask.sum())
            loss_sum += loss.item()
            kl_sum, clip_sum, tokens = kl_sum + info["kl"] * n_tokens, clip_sum + info["clip_fraction"] * n_tokens, tokens + n_tokens
        tokens = max(tokens, 1.0)
        return {"loss": loss_sum, "kl": kl_sum / tokens, "clip_fraction": clip_sum / tokens}

    def update(self, roll: Rollout) -> dict[str, float]:
        adv = self.advantages(torch.as_tensor(roll.returns, dtype=torch.float32)).to(self.policy.device)
        out = {"advantage_nonzero": float((adv != 0).float().mean())}
        if not bool((adv != 0).any()) and not self.beta:
            return out  # nothing to learn from this batch: every group had equal rewards
        self.policy.model.train()
        ref = self.reference_logprobs(roll) if self.beta else None
        for _ in range(self.num_iterations):
            self.optimizer.zero_grad(set_to_none=True)
            stats = self.accumulate_gradients(roll, adv, ref)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.trainable_parameters(), self.max_grad_norm)
            self.optimizer.step()
        return {**out, **stats, "grad_norm": float(grad_norm)}


__all__ = ["GRPOAgent"]
