"""The update rules as plain tensor functions (unit-tested against hand-computed values).

Shapes: G completions per prompt are laid out group-major, i.e. rewards of shape (P*G,) are
``[p0g0, p0g1, ..., p1g0, ...]``; per-token tensors are (B, T) with a 0/1 ``mask``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """GRPO: (r - group mean) / (group std + eps); exactly 0 for a group of equal rewards."""
    r = rewards.reshape(-1, group_size).float()
    adv = r - r.mean(1, keepdim=True)
    if scale:
        adv = adv / (r.std(1, keepdim=True, unbiased=True if group_size > 1 else False) + eps)
    return adv.reshape(-1)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO: r_i minus the mean of the other k-1 rewards of its group."""
    if group_size < 2:
        raise ValueError("RLOO needs group_size >= 2 (a leave-one-out baseline)")
    r = rewards.reshape(-1, group_size).float()
    baseline = (r.sum(1, keepdim=True) - r) / (group_size - 1)
    return (r - baseline).reshape(-1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(pi || ref): exp(ref - logp) - (ref - logp) - 1 >= 0."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def grpo_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None, advantages: torch.Tensor,
    mask: torch.Tensor, clip_eps: float = 0.2, beta: float = 0.04, loss_type: str = "grpo",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped-ratio policy-gradient loss with a k3 KL penalty to the reference.

    loss_type ``"grpo"``: mean over tokens of each sequence, then over sequences (the paper);
    ``"dapo"``: mean over all tokens of the batch (TRL's default).
    """
    ratio = torch.exp(logp - old_logp)
    adv = advantages[:, None]
    per_token = -torch.min(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    kl = k3_kl(logp, ref_logp) if ref_logp is not None else torch.zeros_like(logp)
    if beta:
        per_token = per_token + beta * kl
    if loss_type == "grpo":
        loss = masked_mean(per_token, mask, dim=1).mean()
    elif loss_type == "dapo":
        loss = masked_mean(per_token, mask)
    else:
        raise ValueError(f"loss_type must be 'grpo' or 'dapo', got {loss_type!r}")
    clipped = ((ratio.detach() - 1).abs() > clip_eps).float()
    return loss, {"kl": float(masked_mean(kl.detach(), mask)), "clip_fraction": float(masked_mean(clipped, mask))}


def rloo_loss(
    logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
) -> torch.Tensor:
    """Sequence-level REINFORCE: -A_i * sum_t log pi(o_t), averaged over sequences."""
    return -(advantages * (logp * mask).sum(1)).mean()


def dpo_loss(
    chosen_logp: torch.Tensor, rejected_logp: torch.Tensor, ref_chosen_logp: torch.Tensor,
    ref_rejected_logp: torch.Tensor, beta: float = 0.1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """DPO (sigmoid) on sequence log-probs, shape (N,) each."""
    margin = beta * ((chosen_logp - ref_chosen_logp) - (rejected_logp - ref_rejected_logp))
    loss = -F.logsigmoid(margin).mean()
    margin = margin.detach()
    return loss, {"reward_margin": float(margin.mean() / beta), "pair_accuracy": float((margin > 0).float().mean())}
