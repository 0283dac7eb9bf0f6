"""Self-Rewarding DPO (Yuan et al. 2024), online and iterated, with the temporal variant.

Each iteration: sample N = group_size answers per prompt (the VecEnv group layout of
agents/llm/trainer.py), score them with the reward modules (``--reward self_judge`` makes the
policy its own judge; with no module, the env's verifier reward is used), pair the best against
the worst answer of each prompt (ties dropped), and take ``dpo_epochs`` DPO steps against the
reference (the initial model). ``rejected_from="initial"`` is Temporal Self-Rewarding's
anchored rejection (Wang et al. 2025): the rejected answer is the lowest-scored of N answers
sampled from the initial model for the same prompt.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from selfgym.agents.llm.losses import dpo_loss
from selfgym.agents.llm.trainer import LLMTrainer, Rollout


class SelfRewardingDPOAgent(LLMTrainer):
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
        with torch.no_grad():
            ref_c = self.policy.reference_logprobs(chosen_s, 1.0).sum(1)
            ref_r = self.policy.reference_logprobs(rejected_s, 1.0).sum(1)
        self.policy.model.train()
        stats: dict[str, list[float]] = {"loss": [], "reward_margin": [], "pair_accuracy": []}
        for _ in range(self.dpo_epochs):
            self.optimizer.zero_grad(set_to_none=True)
            logp_c = self.policy.logprobs(chosen_s, 1.0).sum(1)
            logp_r = self.policy.logprobs(rejected_s, 1.0).sum(1)
            loss, info = dpo_loss(logp_c, logp_r, ref_c, ref_r, self.dpo_beta)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.trainable_parameters(), self.max_grad_norm)
            self.optimizer.step()
            stats["loss"].append(loss.item())
            stats["reward_margin"].append(info["reward_margin"])
            stats["pair_accuracy"].append(info["pair_accuracy"])
        metrics.update({k: float(np.mean(v)) for k, v in stats.items()})
        metrics["chosen_length"] = float(chosen_s.completion_mask.sum(1).float().mean())
        metrics["rejected_length"] = float(rejected_s.completion_mask.sum(1).float().mean())
        return metrics
