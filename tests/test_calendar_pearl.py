"""pearl (agents/llm/pearl.py): lockstep group rollouts over whole rounds, the StrategyHub across
rounds, malformed answers, round-wise advantages per turn, the update, and the refusals
(over-long prompts before any step, init_run of another agent or model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402
import yaml  # noqa: E402

from selfgym import agents, runs  # noqa: E402
from selfgym.agents.llm.pearl import PearlAgent  # noqa: E402
from selfgym.env_factory import make_vec_env  # noqa: E402
from selfgym.llm.tiny import byte_tokenizer, tiny_llama  # noqa: E402

torch.set_num_threads(1)
ENV = "selfgym/CalendarConflict-v0"
ENV_KW = dict(obs_mode="text", text_style="compact", n_users=20, n_rounds=4, window=1, hub_turns=1)


@pytest.fixture(scope="module")
def long_tiny(tmp_path_factory) -> str:
    """The tiny random Llama with a 16,384-token context: in byte tokens a full hub shown twice is ~7,000."""
    path = tmp_path_factory.mktemp("tiny_16k")
    tok = byte_tokenizer()
    tiny_llama(len(tok), context=16384).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


class Hooks:
    def on_step(self, n: int) -> bool:
        return True


def pearl(model: str, env_kw=None, **hp) -> PearlAgent:
    venv = make_vec_env(ENV, 1, 0, env_kw or ENV_KW)
    params = dict(model=model, group_size=3, train_rounds=3, max_new_tokens=8, learning_rate=1e-2, temperature=1.0) | hp
    return agents.make_agent("pearl", venv, params, device="cpu", seed=0)


class Scripted:
    """Stands in for the LLMPolicy's sampling: ``answer(copy, prompt)`` per row, real token tensors."""

    def __init__(self, agent: PearlAgent, answer) -> None:
        self.agent, self.answer, self.prompts = agent, answer, []
        self.real = agent.policy.sample

    def __call__(self, prompts, **kw):
        self.prompts.append(list(prompts))
        texts = [self.answer(p) for p in prompts]
        samples = self.agent.policy.text_samples(prompts, texts)
        samples.logprobs = torch.zeros(samples.completion_ids.shape)
        return samples


def decide(p: str) -> str:
    return json.dumps({"priority_ranking": [0, 1, 2, 3, 4], "selected_event_to_accept": 0})


def test_lockstep_keeps_the_copies_on_the_same_round(long_tiny):
    agent = pearl(long_tiny)
    calls = {"n": 0}

    def answer(p: str) -> str:  # copies differ: some call the hub first, some decide at once
        calls["n"] += 1
        return '{"action": "list"}' if calls["n"] % 2 and "1 calls left" in p else decide(p)

    agent.policy.sample = Scripted(agent, answer)
    roll = agent.rollout(user_id=agent.settings["users"][0], seed=5)
    assert roll.rounds_in_step == [[1, 1, 1], [2, 2, 2], [3, 3, 3]]
    assert roll.hub_calls > 0 and roll.rewards.shape == (3, 3) and roll.format_failures == 0
    assert {env.data.user.user_id for env in agent.envs} == {agent.settings["users"][0]}  # the same user
    assert len({env.data.winners.tobytes() for env in agent.envs}) == 1
    rounds = [turn.round_index for turn in roll.turns]
    assert rounds == sorted(rounds)  # no turn of round t+1 before every copy decided round t


def test_hub_carries_across_rounds_and_its_limits_hold(long_tiny):
    agent = pearl(long_tiny)

    def answer(p: str) -> str:
        if "Round 1/3" in p and "1 calls left" in p:
            return '{"action": "update", "strategies": ["Deadlines beat syncs."]}'
        if "Round 2/3" in p and "1 calls left" in p:
            return json.dumps({"action": "update", "strategies": ["s"] * 11})  # over the 10-strategy limit
        if "Round 3/3" in p:
            return '{"action": "list"}'  # every turn: the 2nd call is over the 1-call limit -> format failure
        return decide(p)

    scripted = Scripted(agent, answer)
    agent.policy.sample = scripted
    roll = agent.rollout(user_id=agent.settings["users"][1], seed=0)
    round2 = [p for batch in scripted.prompts for p in batch if "Round 2/3" in p]
    assert round2 and all("Deadlines beat syncs." in p for p in round2)  # carried into round 2
    round3 = [p for batch in scripted.prompts for p in batch if "Round 3/3" in p]
    assert all("Deadlines beat syncs." in p for p in round3)  # the refused 11-strategy update changed nothing
    assert roll.format_failures == 3  # round 3: the second hub call of each copy is a failed decision
    assert np.all(roll.rewards[:, 2] == 0.0) and np.all(roll.rewards[:, :2] > 0.0)


@pytest.mark.parametrize("garbage", ["", "I would go to the dentist", '{"selected_event_to_accept": 9}', "{" * 500,
                                     'Sure: {"selected_event_to_accept": 0}'])
def test_malformed_answers_are_format_failures_never_exceptions(long_tiny, garbage):
    agent = pearl(long_tiny)
    agent.policy.sample = Scripted(agent, lambda p: garbage)
    roll = agent.rollout(user_id=agent.settings["users"][0], seed=0)
    assert roll.format_failures == 9 and np.all(roll.rewards == 0.0)
    assert agent.update([roll]) == {"advantage_nonzero": 0.0}  # equal rewards: no step


def test_each_turn_gets_the_round_wise_advantage_of_its_copy_and_round(long_tiny):
    agent = pearl(long_tiny, gamma=1.0)
    agent.policy.sample = Scripted(agent, decide)
    roll = agent.rollout(user_id=agent.settings["users"][0], seed=0)
    roll.rewards = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    returns = np.array([[2.0, 1.0, 1.0], [1.0, 1.0, 1.0], [2.0, 1.0, 0.0]])  # return to go
    expected = (returns - returns.mean(0)) / (returns.std(0) + 1e-6)
    advantages = agent.turn_advantages([roll])[0]
    for turn, adv in zip(roll.turns, advantages):
        np.testing.assert_allclose(adv.numpy(), expected[turn.copies, turn.round_index], rtol=1e-5)


def test_learn_samples_updates_and_round_trips(long_tiny):
    agent = pearl(long_tiny, group_size=2, train_rounds=2)
    before = {k: v.clone() for k, v in agent.policy.trainable_state().items()}
    rolls = [agent.rollout(agent.settings["users"][0], 0)]
    rolls[0].rewards = np.array([[1.0, 0.0], [0.0, 1.0]])  # unequal, so the step is taken
    stats = agent.update(rolls)
    assert stats["advantage_nonzero"] > 0 and np.isfinite(stats["loss"])
    after = agent.policy.trainable_state()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    agent.learn(4, Hooks())
    assert agent.num_timesteps == 4 and agent.iteration == 1  # 2 copies x 2 rounds
    other = pearl(long_tiny, group_size=2, train_rounds=2)
    other.load_state_dict(agent.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(agent.policy.trainable_state().values(),
                                                 other.policy.trainable_state().values()))


def test_an_over_long_prompt_is_refused_before_any_step(tiny_dir):
    agent = pearl(tiny_dir, env_kw=dict(ENV_KW, text_style="verbose", window=5))  # 2,048-token context
    agent.policy.sample = lambda *a, **k: pytest.fail("sampled before the length check")
    with pytest.raises(ValueError, match=r"prompt \d+ is \d+ tokens.* over the context window of 2048 tokens.*"
                                         r"text_style:compact, a smaller window \(window 5\)"):
        agent.learn(100, Hooks())
    assert agent.num_timesteps == 0


def test_the_over_long_prompt_advice_names_only_levers_not_pulled_yet():
    from types import SimpleNamespace

    from selfgym.agents.llm.calendar_common import check_prompt_lengths

    words = SimpleNamespace(render=lambda p: p, context_length=4, name="m",
                            tokenizer=lambda texts, add_special_tokens: {"input_ids": [t.split() for t in texts]})
    assert check_prompt_lengths(words, ["a b", "a b c"], 1, "x") == 3  # fits: the longest prompt's length
    with pytest.raises(ValueError) as verbose:
        check_prompt_lengths(words, ["a b c d"], 2, "x", {"text_style": "verbose", "window": 5, "hub_turns": 3})
    assert "prompt 0 is 4 tokens, plus 2 answer tokens = 6" in str(verbose.value)
    assert "text_style:compact" in str(verbose.value) and "fewer hub turns (hub_turns 3)" in str(verbose.value)
    with pytest.raises(ValueError) as compact:
        check_prompt_lengths(words, ["a b c d"], 2, "x", {"text_style": "compact", "window": 5, "hub_turns": 0})
    assert "text_style:compact" not in str(compact.value) and "hub turns" not in str(compact.value)
    assert "a smaller window (window 5), or a model with a longer context" in str(compact.value)


def fake_run(folder, agent_name: str, model: str, lora=None, state=None):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"agent": agent_name, "env": ENV,
                                                        "hyperparams": {"model": model, "lora": lora}}))
    if state is not None:
        runs.save_checkpoint(folder / "model", {"agent": state}, {})
    return folder


def test_init_run_of_another_agent_or_model_is_refused_naming_both(long_tiny, tiny_dir, tmp_path):
    ppo_run = fake_run(tmp_path / "ppo_run", "ppo", long_tiny)
    with pytest.raises(ValueError, match=r"run of agent 'ppo'; pearl starts only from a run of 'llm_sft' or 'pearl'"):
        PearlAgent.resolve_hyperparams({"model": long_tiny, "init_run": str(ppo_run)}, ENV)
    other_model = fake_run(tmp_path / "sft_other", "llm_sft", tiny_dir)
    with pytest.raises(ValueError, match="trained model .* but this run's model is"):
        PearlAgent.resolve_hyperparams({"model": long_tiny, "init_run": str(other_model)}, ENV)


def test_init_run_from_an_sft_run_loads_its_weights(long_tiny, tmp_path):
    sft = pearl(long_tiny)
    with torch.no_grad():
        for p in sft.policy.trainable_parameters():
            p.add_(0.5)
    run = fake_run(tmp_path / "sft_run", "llm_sft", long_tiny, state={"policy": sft.policy.trainable_state()})
    resolved = PearlAgent.resolve_hyperparams({"model": long_tiny, "init_run": str(run)}, ENV)
    started = pearl(long_tiny, init_run=resolved["init_run"])
    assert all(torch.equal(a, b) for a, b in zip(sft.policy.trainable_state().values(),
                                                 started.policy.trainable_state().values()))
