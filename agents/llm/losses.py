"""The update rules as plain tensor functions (unit-tested against hand-computed values).

Shapes: G completions per prompt are laid out group-major, i.e. rewards of shape (P*G,) are
``[p0g0, p0g1, ..., p1g0, ...]``; per-token tensors are (B, T) with a 0/1 ``mask``.

Micro-batches: every loss here is a *sum* over its rows divided by a ``normalizer``. Called on
the whole batch with ``normalizer=None`` it is the usual mean. Called on micro-batches with
the whole batch's count (``loss_normalizer``), the micro-batch losses add up to the full-batch
loss and their gradients to its gradient, whatever the micro-batch size: the loss is
normalised once, as TRL does (its ``num_items_in_batch``), not averaged per micro-batch.
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


def loss_normalizer(masks: list[torch.Tensor], loss_type: str) -> float:
    """The whole batch's count a GRPO-family loss is divided by, from every micro-batch's mask.

    ``"grpo"``: the number of sequences (each sequence's token mean counts once);
    ``"dapo"``: the number of completion tokens (TRL's global token count); ``"sequence"``:
    the number of sequences (RLOO, DPO: one term per sequence or pair).
    """
    if loss_type in ("grpo", "sequence"):
        return float(sum(int(m.shape[0]) for m in masks))
    if loss_type == "dapo":
        return max(float(sum(float(m.sum()) for m in masks)), 1.0)
    raise ValueError(f"loss_type must be 'grpo' or 'dapo', got {loss_type!r}")


def grpo_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None, advantages: torch.Tensor,
    mask: torch.Tensor, clip_eps: float = 0.2, beta: float = 0.04, loss_type: str = "grpo",
    normalizer: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped-ratio policy-gradient loss with a k3 KL penalty to the reference (TRL's definitions).

    loss_type ``"grpo"``: each sequence's token mean, summed over sequences, divided by the
    batch's sequence count (the paper); ``"dapo"``: every token's loss summed, divided by the
    batch's token count (TRL's default). ``normalizer``: that count for the whole batch when this
    call sees one micro-batch of it (``loss_normalizer``); None: this call's own count.
    The info values are means over this call's tokens (weight them by its token count).
    """
    ratio = torch.exp(logp - old_logp)
    adv = advantages[:, None]
    per_token = -torch.min(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    kl = k3_kl(logp, ref_logp) if ref_logp is not None else torch.zeros_like(logp)
    if beta:
        per_token = per_token + beta * kl
    if loss_type == "grpo":
        total = masked_mean(per_token, mask, dim=1).sum()
    elif loss_type == "dapo":
        total = (per_token * mask.to(per_token.dtype)).sum()
    else:
        raise ValueError(f"loss_type must be 'grpo' or 'dapo', got {loss_type!r}")
    loss = total / (loss_normalizer([mask], loss_type) if normalizer is None else normalizer)
    clipped = ((ratio.detach() - 1).abs() > clip_eps).float()
    return loss, {"kl": float(masked_mean(kl.detach(), mask)), "clip_fraction": float(masked_mean(clipped, mask))}


def rloo_loss(
    logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, normalizer: float | None = None,
) -> torch.Tensor:
    """Sequence-level REINFORCE: -A_i * sum_t log pi(o_t), summed over sequences and divided by
    the batch's sequence count (``normalizer``; None: this call's own)."""
    total = -(advantages * (logp * mask).sum(1)).sum()
    return total / (float(logp.shape[0]) if normalizer is None else normalizer)


def dpo_loss(
    chosen_logp: torch.Tensor, rejected_logp: torch.Tensor, ref_chosen_logp: torch.Tensor,
    ref_rejected_logp: torch.Tensor, beta: float = 0.1, normalizer: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """DPO (sigmoid) on sequence log-probs, shape (N,) each: the pairs' losses summed and divided
    by the batch's pair count (``normalizer``; None: this call's N). Info: means over this call."""
    margin = beta * ((chosen_logp - ref_chosen_logp) - (rejected_logp - ref_rejected_logp))
    loss = -F.logsigmoid(margin).sum() / (float(margin.shape[0]) if normalizer is None else normalizer)
    margin = margin.detach()
    return loss, {"reward_margin": float(margin.mean() / beta), "pair_accuracy": float((margin > 0).float().mean())}
