"""GRPO, RLOO and self-rewarding DPO agents on a tiny random Llama saved to a temp folder."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from selfgym import agents  # noqa: E402
import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.envs.text.spaces import texts  # noqa: E402
from selfgym.rewards import make_reward  # noqa: E402
from selfgym.rewards.base import RewardModule  # noqa: E402
from selfgym.env_factory import make_vec_env  # noqa: E402

torch.set_num_threads(1)
ENV = "selfgym/TextReasoning-v0"


class _Hooks:
    def __init__(self, stop_at: int = 10**9) -> None:
        self.calls, self.stop_at = [], stop_at

    def on_step(self, n: int) -> bool:
        self.calls.append(n)
        return n < self.stop_at


def _agent(name, tiny_dir, n_envs=4, rewards=(), env_kwargs=None, **hp):
    venv = make_vec_env(ENV, n_envs, 0, env_kwargs or {"split": "test", "test_size": 4})
    params = dict(model=tiny_dir, group_size=2, max_new_tokens=6, heldout_size=4, eval_every=1, learning_rate=1e-3)
    params.update(hp)
    return agents.make_agent(name, venv, params, device="cpu", seed=0, reward_modules=[make_reward(r) for r in rewards])


def test_groups_share_a_question_and_learn_counts_completions(tiny_dir) -> None:
    agent = _agent("grpo", tiny_dir, n_envs=4, rewards=["majority_vote"])
    roll = agent.rollout()
    prompts = roll.prompts[0]
    assert prompts[0] == prompts[1] and prompts[2] == prompts[3]
    assert roll.returns.shape == (4,) and "majority_vote" in roll.streams
    hooks = _Hooks(stop_at=8)
    agent.learn(100, hooks)
    assert hooks.calls == [4, 8] and agent.num_timesteps == 8
    assert agent.last_heldout is not None


def test_group_size_must_divide_n_envs(tiny_dir) -> None:
    agent = _agent("grpo", tiny_dir, n_envs=3)
    with pytest.raises(ValueError, match="multiple of group_size"):
        agent.learn(3, _Hooks())


def test_state_dict_round_trip_through_torch_save(tiny_dir, tmp_path) -> None:
    agent = _agent("rloo", tiny_dir, lora={"r": 4})
    agent.learn(4, _Hooks())
    torch.save(agent.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    other = _agent("rloo", tiny_dir, lora={"r": 4})
    other.load_state_dict(state)
    obs = np.stack([o for o in agent.env.reset()])
    a, _ = agent.predict(obs, deterministic=True)
    b, _ = other.predict(obs, deterministic=True)
    assert a.dtype == object and a.shape == (4,) and list(a) == list(b) and other.num_timesteps == 4


def _lower_fraction(text: str) -> float:
    return sum(c in "abcdefghijklmnopqrstuvwxyz" for c in text) / max(len(text), 1)


class _CountA(RewardModule):
    """Fraction of lower-case letters in a completion: learnable by a random byte-level model."""

    def compute(self, batch):
        return np.array([_lower_fraction(t) for t in batch.actions], dtype=np.float32)


@pytest.mark.parametrize("name", ["grpo", "rloo"])
def test_policy_gradient_raises_a_simple_reward(tiny_dir, name) -> None:
    agent = _agent(name, tiny_dir, n_envs=16, group_size=8, heldout_size=0, learning_rate=3e-2, max_new_tokens=8,
                   temperature=1.0, beta=0.0)
    agent.reward_modules = [_CountA(name="count_a")]
    prompts = texts(agent.env.reset())[:1] * 64

    def score() -> float:
        torch.manual_seed(0)
        return float(np.mean([_lower_fraction(t) for t in agent.policy.sample(prompts).texts]))

    before = score()
    agent.learn(16 * 12, _Hooks())
    after = score()
    assert after > before + 0.15, (before, after)


def test_self_rewarding_dpo_pairs_and_temporal_variant(tiny_dir) -> None:
    agent = _agent("self_rewarding_dpo", tiny_dir, n_envs=4, lora={"r": 4}, rejected_from="initial")
    agent.reward_modules = [_CountA(name="count_a")]
    roll = agent.rollout()
    roll.returns = np.array([0.2, 0.5, 0.1, 0.1])
    anchor = agent.rollout(tasks=agent.last_tasks, reference=True)
    anchor.returns = np.array([0.0, 0.3, 0.1, 0.1])
    pairs = agent.pairs(roll, anchor)
    assert len(pairs) == 1  # group 1 ties (0.1 vs 0.1) and is dropped
    assert pairs[0][1] == roll.turns[0].texts[1] and pairs[0][2] == anchor.turns[0].texts[0]
    agent.learn(8, _Hooks())
    assert agent.num_timesteps == 8


def test_dpo_rejects_two_turn_envs_and_bad_options(tiny_dir) -> None:
    with pytest.raises(ValueError, match="rejected_from"):
        _agent("self_rewarding_dpo", tiny_dir, rejected_from="future")
    agent = _agent("self_rewarding_dpo", tiny_dir, env_kwargs={"split": "test", "test_size": 4, "two_turn": True})
    with pytest.raises(ValueError, match="single-turn"):
        agent.learn(4, _Hooks())


def test_grpo_runs_the_two_turn_env(tiny_dir) -> None:
    agent = _agent("grpo", tiny_dir, env_kwargs={"split": "test", "test_size": 4, "two_turn": True}, heldout_size=0)
    roll = agent.rollout()
    assert len(roll.turns) == 2 and "Find your mistakes" in roll.prompts[1][0]
    agent.update(roll)


def test_sampled_heldout_evaluation_is_seeded_and_leaves_training_rng_alone(tiny_dir) -> None:
    agent = _agent("grpo", tiny_dir, temperature=1.0)
    tasks, greedy = agent.heldout_completions(samples=0)
    assert len(tasks) == 4 and all(len(c) == 1 for c in greedy)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    _, sampled = agent.heldout_completions(samples=3, seed=7)
    assert torch.equal(torch.rand(3), expected_next)  # the training run's RNG stream is untouched
    assert all(len(c) == 3 for c in sampled)
    assert agent.heldout_completions(samples=3, seed=7)[1] == sampled
    assert agent.heldout_completions(samples=3, seed=8)[1] != sampled
    acc = agent.heldout_accuracy(samples=3, seed=7)
    scores = [agent.env.env_method("score_task", t, c, indices=[0])[0][0] >= 1.0 for t, cs in zip(tasks, sampled) for c in cs]
    assert acc == pytest.approx(np.mean(scores))
    with pytest.raises(ValueError, match="samples must be >= 0"):
        agent.heldout_accuracy(samples=-1)
    with pytest.raises(ValueError, match="samples must be >= 0 and a whole number"):
        agent.heldout_accuracy(samples=1.5)  # not silently read as 1
