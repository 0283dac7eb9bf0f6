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
from selfgym.llm.policy import LLMPolicy, Samples


def reference_logprobs(policy: LLMPolicy, turns: list[Samples], micro_batch: int) -> list[torch.Tensor]:
    """Per turn, the reference's (n, T) token log-probs: taken from the samples when sampling
    scored them (LoRA), else one no-grad pass a micro-batch at a time."""
    if all(s.ref_logprobs is not None for s in turns):
        return [s.ref_logprobs for s in turns]
    parts: dict[int, list[torch.Tensor]] = {t: [] for t in range(len(turns))}
    for turn, _, part in micro_batches(turns, micro_batch):
        parts[turn].append(policy.reference_logprobs(part))
    return [torch.cat(parts[t]) for t in range(len(turns))]


def grpo_gradients(policy: LLMPolicy, turns: list[Samples], advantages: list[torch.Tensor],
                   reference: list[torch.Tensor] | None, micro_batch: int, clip_eps: float, beta: float,
                   loss_type: str) -> dict[str, float]:
    """Backpropagate the clipped GRPO loss over every turn a micro-batch at a time, normalised once
    over all of them; ``advantages`` and ``reference`` (None: no KL term) hold one (n,) / (n, T)
    tensor per turn. Returns the loss and the token-weighted KL and clip fraction. The gradients
    add up to the full-batch gradient (tests/test_llm_microbatch.py). GRPO and pearl share it."""
    normalizer = loss_normalizer([s.completion_mask for s in turns], loss_type)
    loss_sum, kl_sum, clip_sum, tokens = 0.0, 0.0, 0.0, 0.0
    for turn, rows, part in micro_batches(turns, micro_batch):
        loss, info = grpo_loss(policy.logprobs(part), part.logprobs, reference[turn][rows] if reference is not None else None,
                               advantages[turn][rows].to(policy.device), part.completion_mask, clip_eps, beta, loss_type,
                               normalizer=normalizer)
        loss.backward()
        n_tokens = float(part.completion_mask.sum())
        loss_sum += loss.item()
        kl_sum, clip_sum, tokens = kl_sum + info["kl"] * n_tokens, clip_sum + info["clip_fraction"] * n_tokens, tokens + n_tokens
    tokens = max(tokens, 1.0)
    return {"loss": loss_sum, "kl": kl_sum / tokens, "clip_fraction": clip_sum / tokens}


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
        """Per turn, the reference's (n, T) token log-probs (fixed across iterations: computed once)."""
        return reference_logprobs(self.policy, roll.turns, self.train_batch_size)

    def accumulate_gradients(self, roll: Rollout, adv: torch.Tensor, ref: list[torch.Tensor] | None) -> dict[str, float]:
        """``grpo_gradients`` of the rollout: every turn of a sequence gets its return's advantage."""
        return grpo_gradients(self.policy, roll.turns, [adv] * len(roll.turns), ref, self.train_batch_size,
                              self.clip_eps, self.beta, self.loss_type)

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


__all__ = ["GRPOAgent", "grpo_gradients", "reference_logprobs"]
