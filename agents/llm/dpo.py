"""Self-Rewarding DPO (Yuan et al. 2024), online and iterated, with the temporal variant.

Each iteration: sample N = group_size answers per prompt (the VecEnv group layout of
agents/llm/trainer.py), score them with the reward modules (``--reward self_judge`` makes the
policy its own judge; with no module, the env's verifier reward is used), pair the best against
the worst answer of each prompt (ties dropped), and take ``dpo_epochs`` DPO steps against the
reference (the initial model). ``rejected_from="initial"`` is Temporal Self-Rewarding's
anchored rejection (Wang et al. 2025): the rejected answer is the lowest-scored of N answers
sampled from the initial model for the same prompt. Log-probs and the loss are computed
``train_batch_size`` pairs at a time; the loss is divided by the total pair count, so the
micro-batch size changes memory, not the update.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from selfgym.agents.llm.losses import dpo_loss
from selfgym.agents.llm.trainer import LLMTrainer, Rollout, micro_batches
from selfgym.llm.policy import Samples


class SelfRewardingDPOAgent(LLMTrainer):
    """Online iterated DPO on self-scored best/worst pairs.

    Args (beyond LLMTrainer's):
        dpo_beta: DPO's beta (inverse temperature of the implicit reward).
        dpo_epochs: DPO steps per iteration on that iteration's pairs.
        rejected_from: ``"policy"`` (worst of the policy's N answers) or ``"initial"`` (worst of
            N answers of the initial model: Temporal Self-Rewarding).
        min_margin: a pair is kept only when best - worst score exceeds this.
    """

    def __init__(self, env: Any, *, dpo_beta: float = 0.1, dpo_epochs: int = 1, rejected_from: str = "policy",
                 min_margin: float = 0.0, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        if rejected_from not in ("policy", "initial"):
            raise ValueError(f"rejected_from must be 'policy' or 'initial', got {rejected_from!r}")
        if self.group_size < 2:
            raise ValueError("self_rewarding_dpo needs group_size >= 2 (best and worst of N)")
        self.dpo_beta, self.dpo_epochs = float(dpo_beta), int(dpo_epochs)
        self.rejected_from, self.min_margin = rejected_from, float(min_margin)

    def pairs(self, roll: Rollout, anchor: Rollout | None = None) -> list[tuple[str, str, str]]:
        """(prompt, chosen, rejected) per group whose best score beats its worst by > min_margin."""
        if len(roll.turns) != 1:
            raise ValueError("self_rewarding_dpo supports single-turn envs (make the env with two_turn=False)")
        out = []
        G = self.group_size
        for g in range(self.n_groups):
            idx = slice(g * G, (g + 1) * G)
            scores = roll.returns[idx]
            best = g * G + int(np.argmax(scores))
            source = anchor if anchor is not None else roll
            low = source.returns[idx]
            worst = g * G + int(np.argmin(low))
            if scores.max() - low.min() <= self.min_margin:
                continue  # a tie: no preference
            out.append((roll.prompts[0][best], roll.turns[0].texts[best], source.turns[0].texts[worst]))
        return out

    def update(self, roll: Rollout) -> dict[str, float]:
        anchor = self.rollout(tasks=self.last_tasks, reference=True) if self.rejected_from == "initial" else None
        pairs = self.pairs(roll, anchor)
        metrics = {"pairs": float(len(pairs))}
        if not pairs:
            return metrics
        prompts, chosen, rejected = (list(x) for x in zip(*pairs))
        chosen_s = self.policy.text_samples(prompts, chosen)
        rejected_s = self.policy.text_samples(prompts, rejected)
        mb = self.train_batch_size
        with torch.no_grad():
            ref_c = torch.cat([self.policy.reference_logprobs(part, 1.0).sum(1) for _, _, part in micro_batches([chosen_s], mb)])
            ref_r = torch.cat([self.policy.reference_logprobs(part, 1.0).sum(1) for _, _, part in micro_batches([rejected_s], mb)])
        self.policy.model.train()
        stats: dict[str, list[float]] = {"loss": [], "reward_margin": [], "pair_accuracy": []}
        for _ in range(self.dpo_epochs):
            self.optimizer.zero_grad(set_to_none=True)
            for key, value in self.accumulate_gradients(chosen_s, rejected_s, ref_c, ref_r).items():
                stats[key].append(value)
            torch.nn.utils.clip_grad_norm_(self.policy.trainable_parameters(), self.max_grad_norm)
            self.optimizer.step()
        metrics.update({k: float(np.mean(v)) for k, v in stats.items()})
        metrics["chosen_length"] = float(chosen_s.completion_mask.sum(1).float().mean())
        metrics["rejected_length"] = float(rejected_s.completion_mask.sum(1).float().mean())
        return metrics

    def accumulate_gradients(self, chosen: Samples, rejected: Samples, ref_chosen: torch.Tensor,
                             ref_rejected: torch.Tensor) -> dict[str, float]:
        """Backpropagate the DPO loss of all pairs, ``train_batch_size`` pairs at a time; return
        the loss and the pair-weighted margin and accuracy. The gradients add up to the full batch's."""
        n_pairs = float(chosen.completion_ids.shape[0])
        loss_sum, margin_sum, correct = 0.0, 0.0, 0.0
        parts = zip(micro_batches([chosen], self.train_batch_size), micro_batches([rejected], self.train_batch_size))
        for (_, rows, chosen_part), (_, _, rejected_part) in parts:
            logp_c = self.policy.logprobs(chosen_part, 1.0).sum(1)
            logp_r = self.policy.logprobs(rejected_part, 1.0).sum(1)
            loss, info = dpo_loss(logp_c, logp_r, ref_chosen[rows], ref_rejected[rows], self.dpo_beta, normalizer=n_pairs)
            loss.backward()
            size = float(logp_c.shape[0])
            loss_sum += loss.item()
            margin_sum, correct = margin_sum + info["reward_margin"] * size, correct + info["pair_accuracy"] * size
        return {"loss": loss_sum, "reward_margin": margin_sum / n_pairs, "pair_accuracy": correct / n_pairs}
