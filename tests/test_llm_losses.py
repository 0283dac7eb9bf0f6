"""GRPO/RLOO/DPO update rules against hand-computed values (no model needed)."""

from __future__ import annotations

import math

import pytest
import torch

from selfgym.agents.llm.losses import dpo_loss, group_advantages, grpo_loss, k3_kl, loss_normalizer, rloo_advantages, rloo_loss


def test_grpo_loss_matches_hand_computed_value() -> None:
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -1.0]])
    old = torch.tensor([[-1.0, -2.5], [-0.5, -1.0]])  # token (0,1): ratio e^0.5 = 1.65 > 1.2, clipped
    ref = torch.tensor([[-1.2, -2.0], [-0.5, -0.7]])
    mask = torch.tensor([[1, 1], [1, 0]])
    adv = group_advantages(torch.tensor([1.0, 0.0]), group_size=2)
    a = 0.5 / (math.sqrt(0.5) + 1e-4)  # (1 - 0.5) / (unbiased std + eps)
    assert adv.tolist() == pytest.approx([a, -a], rel=1e-6)
    kl00 = math.exp(-0.2) + 0.2 - 1.0  # k3 with d = ref - logp = -0.2
    seq0 = (-a + 0.1 * kl00 + -1.2 * a) / 2  # second token: -min(1.65 a, 1.2 a)
    seq1 = a / 1  # -min(1 * -a, 1 * -a); second token masked out
    expected = (seq0 + seq1) / 2
    loss, info = grpo_loss(logp, old, ref, adv, mask, clip_eps=0.2, beta=0.1, loss_type="grpo")
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert info["clip_fraction"] == pytest.approx(1 / 3)
    loss_dapo, _ = grpo_loss(logp, old, ref, adv, mask, clip_eps=0.2, beta=0.1, loss_type="dapo")
    assert float(loss_dapo) == pytest.approx((-a + 0.1 * kl00 - 1.2 * a + a) / 3, rel=1e-5)


def test_grpo_gradient_sign_follows_advantage() -> None:
    logp = torch.tensor([[-1.0], [-1.0]], requires_grad=True)
    loss, _ = grpo_loss(logp, logp.detach(), None, torch.tensor([1.0, -1.0]), torch.ones(2, 1), beta=0.0)
    loss.backward()
    assert logp.grad[0, 0] < 0 < logp.grad[1, 0]  # descent raises the good sample's log-prob


def test_advantages_zero_when_a_group_has_equal_rewards() -> None:
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.5, 0.5, 0.5])
    adv = group_advantages(rewards, 3)
    assert torch.all(adv[:3] == 0) and torch.all(adv[6:] == 0) and torch.all(adv[3:6] != 0)
    assert torch.all(rloo_advantages(torch.full((4,), 0.7), 4) == 0)
    assert torch.all(group_advantages(torch.zeros(5), 5, scale=False) == 0)


def test_rloo_advantages_hand_computed() -> None:
    adv = rloo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4)
    assert adv.tolist() == pytest.approx([1 - 1 / 3, -2 / 3, -2 / 3, 1 - 1 / 3])
    with pytest.raises(ValueError, match="group_size >= 2"):
        rloo_advantages(torch.ones(3), 1)
    logp = torch.tensor([[-1.0, -2.0], [-1.0, -1.0]])
    assert float(rloo_loss(logp, torch.tensor([1.0, -1.0]), torch.tensor([[1, 1], [1, 0]]))) == pytest.approx(-(1 * -3 + -1 * -1) / 2)


def test_k3_kl_is_zero_for_identical_policies_and_positive_otherwise() -> None:
    logp = torch.randn(4, 7)
    assert torch.all(k3_kl(logp, logp) == 0)
    assert torch.all(k3_kl(logp, logp + 0.3) > 0) and torch.all(k3_kl(logp, logp - 0.3) > 0)


def test_dpo_loss() -> None:
    zero = torch.zeros(3)
    loss, info = dpo_loss(zero, zero, zero, zero, beta=0.1)
    assert float(loss) == pytest.approx(math.log(2)) and info["reward_margin"] == 0
    loss, info = dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.5)
    assert float(loss) == pytest.approx(-math.log(1 / (1 + math.exp(-0.5 * 2.0))))
    assert info["pair_accuracy"] == 1.0


def test_unknown_loss_type() -> None:
    with pytest.raises(ValueError, match="loss_type"):
        grpo_loss(torch.zeros(1, 1), torch.zeros(1, 1), None, torch.zeros(1), torch.ones(1, 1), loss_type="ppo")


def _ragged_batch() -> tuple[torch.Tensor, ...]:
    """Eight sequences of lengths 1..6 (ragged: the case where micro-batch means go wrong)."""
    torch.manual_seed(0)
    lengths = torch.tensor([1, 6, 2, 5, 3, 6, 1, 4])
    mask = (torch.arange(6)[None] < lengths[:, None]).float()
    logp = (torch.randn(8, 6) * 0.3 - 1.0).requires_grad_()
    old = logp.detach() + torch.randn(8, 6) * 0.1
    ref = logp.detach() + torch.randn(8, 6) * 0.1
    adv = group_advantages(torch.tensor([1.0, 0, 0, 1, 1, 1, 0, 0]), 4)
    return logp, old, ref, adv, mask


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
@pytest.mark.parametrize("micro", [1, 2, 3])
def test_micro_batch_losses_add_up_to_the_full_batch_loss(loss_type, micro) -> None:
    logp, old, ref, adv, mask = _ragged_batch()
    full, _ = grpo_loss(logp, old, ref, adv, mask, beta=0.1, loss_type=loss_type)
    (full_grad,) = torch.autograd.grad(full, logp)
    norm = loss_normalizer([mask[i : i + micro] for i in range(0, 8, micro)], loss_type)
    parts = [grpo_loss(logp[i : i + micro], old[i : i + micro], ref[i : i + micro], adv[i : i + micro], mask[i : i + micro],
                       beta=0.1, loss_type=loss_type, normalizer=norm)[0] for i in range(0, 8, micro)]
    total = sum(parts)
    (grad,) = torch.autograd.grad(total, logp)
    assert total.item() == pytest.approx(full.item(), rel=1e-6, abs=1e-7)
    assert torch.allclose(grad, full_grad, atol=1e-7)
    # the old way (mean of micro-batch means) differs from the batch loss on ragged dapo batches
    if loss_type == "dapo" and micro == 2:
        mean_of_means = sum(grpo_loss(logp[i : i + 2], old[i : i + 2], ref[i : i + 2], adv[i : i + 2], mask[i : i + 2], beta=0.1,
                                      loss_type="dapo")[0] for i in range(0, 8, 2)) / 4
        assert abs(float(mean_of_means) - float(full)) > 1e-2


def test_loss_normalizer_counts_the_whole_batch() -> None:
    masks = [torch.tensor([[1, 1, 0], [1, 0, 0]]), torch.tensor([[1, 1, 1]])]
    assert loss_normalizer(masks, "dapo") == 6.0  # tokens
    assert loss_normalizer(masks, "grpo") == 3.0  # sequences
    assert loss_normalizer(masks, "sequence") == 3.0
    assert loss_normalizer([torch.zeros(2, 3)], "dapo") == 1.0  # no token: never a division by zero
    with pytest.raises(ValueError, match="loss_type"):
        loss_normalizer(masks, "bnpo")


def test_rloo_and_dpo_micro_batches_add_up() -> None:
    logp, _, _, adv, mask = _ragged_batch()
    full = rloo_loss(logp, adv, mask)
    halves = rloo_loss(logp[:3], adv[:3], mask[:3], normalizer=8.0) + rloo_loss(logp[3:], adv[3:], mask[3:], normalizer=8.0)
    assert float(halves) == pytest.approx(float(full), rel=1e-6)
    chosen, rejected, zero = torch.tensor([-1.0, -2.0, -0.5]), torch.tensor([-3.0, -1.0, -0.5]), torch.zeros(3)
    full, _ = dpo_loss(chosen, rejected, zero, zero, beta=0.5)
    split = dpo_loss(chosen[:1], rejected[:1], zero[:1], zero[:1], 0.5, normalizer=3.0)[0] + \
        dpo_loss(chosen[1:], rejected[1:], zero[1:], zero[1:], 0.5, normalizer=3.0)[0]
    expected = -sum(math.log(1 / (1 + math.exp(-0.5 * m))) for m in (2.0, -1.0, 0.0)) / 3
    assert float(full) == pytest.approx(expected, rel=1e-6) and float(split) == pytest.approx(expected, rel=1e-6)
