"""llm_sft (agents/llm/calendar_sft.py) on CalendarConflict-v0 with the tiny random Llama: the
pairs are the correct answers, the loss on a fixed batch falls, a resumed run goes on exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from selfgym import agents  # noqa: E402
from selfgym.agents.llm.calendar_sft import sft_loss  # noqa: E402
from selfgym.env_factory import make_vec_env  # noqa: E402
from selfgym.envs.calendar.text import parse_decision  # noqa: E402

torch.set_num_threads(1)
ENV = "selfgym/CalendarConflict-v0"
#: short prompts for the tiny model's 2,048-byte context: 3 training users x 4 rounds, window 1, no hub
ENV_KW = dict(obs_mode="text", text_style="compact", n_users=20, n_rounds=4, window=1, hub_turns=0)


class Hooks:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def on_step(self, n: int) -> bool:
        self.calls.append(n)
        return True


def sft_agent(tiny_dir, users=(0, 1, 2), **hp):
    venv = make_vec_env(ENV, 1, 0, ENV_KW | {"users": list(users)})
    params = dict(model=tiny_dir, learning_rate=1e-2, batch_size=2, train_batch_size=2, max_new_tokens=8) | hp
    return agents.make_agent("llm_sft", venv, params, device="cpu", seed=0)


def test_pairs_are_the_correct_answers_with_the_true_ranking(tiny_dir):
    agent = sft_agent(tiny_dir)
    agent.prepare_data()
    assert len(agent.prompts) == 12 and all(a.endswith(agent.eos) for a in agent.answers)
    answer = json.loads(agent.answers[0][: -len(agent.eos)])
    ranking = answer["priority_ranking"]
    assert ranking[0] == answer["selected_event_to_accept"] and sorted(ranking) == list(range(5))
    assert "Round 1/4" in agent.prompts[0] and "Round 2/4" in agent.prompts[1]
    assert "ok" in agent.prompts[1]  # the history shows a correct pick (the gold trajectory)
    assert parse_decision(agent.answers[0][: -len(agent.eos)], 5).valid


def test_sft_lowers_the_loss_on_a_fixed_batch_and_resume_goes_on_exactly(tiny_dir):
    agent = sft_agent(tiny_dir)
    agent.prepare_data()
    fixed = np.arange(2)
    before = agent.batch_loss(fixed)
    agent.learn(4, Hooks())
    after = agent.batch_loss(fixed)
    assert agent.num_timesteps == 4 and after < 0.85 * before, (before, after)
    state = agent.state_dict()
    resumed = sft_agent(tiny_dir)
    resumed.load_state_dict(state)
    agent.learn(6, Hooks())
    hooks = Hooks()
    resumed.learn(6, hooks)
    assert hooks.calls == [5, 6] and resumed.epoch == agent.epoch and resumed.cursor == agent.cursor
    assert resumed.batch_loss(fixed) == pytest.approx(agent.batch_loss(fixed), rel=1e-5)


def test_resuming_on_other_data_is_refused_but_acting_elsewhere_is_not(tiny_dir):
    agent = sft_agent(tiny_dir)
    agent.prepare_data()
    state = agent.state_dict()
    other = sft_agent(tiny_dir, users=(0, 1, 4))
    other.load_state_dict(state)  # as evaluate.py does on the test users: no data needed
    assert other.predict(np.array([["Round 1/4"]], dtype=object), deterministic=True)[0].shape == (1,)
    with pytest.raises(ValueError, match="trained on SFT pairs with SHA-256"):
        other.learn(10, Hooks())
    assert other.num_timesteps == 0


def test_over_long_prompts_are_refused_before_training_naming_tokens_and_limit(tiny_dir):
    venv = make_vec_env(ENV, 1, 0, dict(ENV_KW, users=[0], text_style="verbose", window=5, n_rounds=8))
    with pytest.raises(ValueError, match=r"prompt \d+ is \d+ tokens.*context window of 2048 tokens"):
        agents.make_agent("llm_sft", venv, dict(model=tiny_dir), device="cpu", seed=0).learn(1, Hooks())


def test_structured_env_is_refused_naming_the_fix(tiny_dir):
    venv = make_vec_env(ENV, 1, 0, dict(n_users=20, n_rounds=4))
    with pytest.raises(ValueError, match="obs_mode:text"):
        agents.make_agent("llm_sft", venv, dict(model=tiny_dir), device="cpu", seed=0)


def test_sft_loss_is_the_token_mean_nll():
    logp = torch.tensor([[-1.0, -2.0, -9.0], [-3.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert float(sft_loss(logp, mask)) == pytest.approx(2.0)
    assert float(sft_loss(logp, mask, normalizer=6.0)) == pytest.approx(1.0)


@pytest.mark.slow
def test_train_resume_and_evaluate_through_the_clis(tiny_dir, run_cli):
    """train.py -> train.py -i -> evaluate.py --env-kwargs split:test, with the tiny model (~1 min)."""
    env_kw = ["--env-kwargs", "n_rounds:4", "users:[0,1]", "window:1", "hub_turns:0"]
    first = run_cli("train.py", "--env", ENV, "--agent", "llm_sft", "-n", "4", "--seed", "0", "--save-freq", "2",
                    "--no-final-eval", "-params", f"model:{tiny_dir}", "lora:None", "batch_size:2", *env_kw)
    assert first.returncode == 0, first.stderr[-2000:]
    run = "logs/llm_sft/selfgym-CalendarConflict-v0_1"
    again = run_cli("train.py", "-i", run, "-n", "6", "--no-final-eval")
    assert again.returncode == 0 and "Resuming" in again.stdout + again.stderr, again.stderr[-2000:]
    ev = run_cli("evaluate.py", "--run", run, "-n", "1", "--env-kwargs", "split:test", "users:null")
    assert ev.returncode == 0, ev.stderr[-2000:]
    for metric in ("aer", "ord", "err"):
        assert metric in ev.stdout
