"""Temporal self-rewarding DPO (issue 22 item 5): the rejected answers come from the stored past
(initial) model, not from the policy being trained."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")
import torch  # noqa: E402

import selfgym  # noqa: E402,F401
from selfgym import agents  # noqa: E402
from selfgym.env_factory import make_vec_env  # noqa: E402
from selfgym.rewards.base import RewardModule  # noqa: E402

torch.set_num_threads(1)


class _Length(RewardModule):
    def compute(self, batch):
        return np.array([float(len(a)) for a in batch.actions], dtype=np.float32)


def test_rejected_answers_are_sampled_from_the_initial_model(tiny_dir) -> None:
    venv = make_vec_env("selfgym/TextReasoning-v0", 4, 0, {"split": "test", "test_size": 4})
    params = dict(model=tiny_dir, group_size=2, max_new_tokens=6, heldout_size=0, lora={"r": 4}, rejected_from="initial")
    agent = agents.make_agent("self_rewarding_dpo", venv, params, device="cpu", seed=0, reward_modules=[_Length(name="length")])
    with torch.no_grad():  # the policy moves away from the initial model, as after training
        gen = torch.Generator().manual_seed(0)
        for p in agent.policy.trainable_parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=gen))
    anchors, made = [], []
    rollout, pairs = agent.rollout, agent.pairs
    agent.rollout = lambda *a, **k: anchors.append(rollout(*a, **k)) or anchors[-1]
    agent.pairs = lambda roll, anchor=None: made.append(pairs(roll, anchor)) or made[-1]
    roll = agent.rollout()
    agent.update(roll)
    anchor = anchors[-1]
    assert len(anchors) == 2 and anchor is not roll  # update() made one more rollout: the anchor
    s = anchor.turns[0]
    # sampled from the past model: its recorded log-probs are the reference's, not the policy's
    assert torch.allclose(s.logprobs, agent.policy.reference_logprobs(s), atol=1e-4)
    assert not torch.allclose(s.logprobs, agent.policy.logprobs(s).detach(), atol=1e-2)
    assert anchor.prompts[0] == roll.prompts[0]  # the same questions, group by group
    for prompt, chosen, rejected in made[-1]:
        g = roll.prompts[0].index(prompt) // agent.group_size
        group = slice(g * agent.group_size, (g + 1) * agent.group_size)
        assert chosen in roll.turns[0].texts[group]
        assert rejected == anchor.turns[0].texts[group][int(np.argmin(anchor.returns[group]))]
