"""GRPO/RLOO/DPO update rules against hand-computed values (no model needed)."""

from __future__ import annotations

import math

import pytest
import torch

from selfgym.agents.llm.losses import dpo_loss, group_advantages, grpo_loss, k3_kl, rloo_advantages, rloo_loss


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
