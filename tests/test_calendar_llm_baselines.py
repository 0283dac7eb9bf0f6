"""The LLM-baseline loop of benchmarks/calendar_llm_baselines.py, driven by scripted answers
(no model): hub calls, the turn limit, format failures and subset metrics."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import torch

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "calendar_llm_baselines.py"
_spec = importlib.util.spec_from_file_location("calendar_llm_baselines", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)  # type: ignore[union-attr]


class ScriptedPolicy:
    """Answers every prompt with ``answer(prompt)``; mimics LLMPolicy.sample's return fields."""

    def __init__(self, answer):
        self.answer, self.prompts = answer, []

    def sample(self, prompts, greedy=True, max_new_tokens=8):
        self.prompts += prompts
        b = len(prompts)
        return SimpleNamespace(texts=[self.answer(p) for p in prompts], prompt_mask=torch.ones(b, 3, dtype=torch.long),
                               lengths=torch.full((b,), 2))


def test_valid_answers_and_format_failures():
    users = [0, 11]
    ok = bench.run_llm(ScriptedPolicy(lambda p: '{"selected_event_to_accept": 0}'), users, 4, 0, 8)
    assert ok["format_failure_rate"] == 0.0 and ok["episodes"] == 2
    bad = bench.run_llm(ScriptedPolicy(lambda p: "I think the meeting"), users, 4, 0, 8)
    assert bad["format_failure_rate"] == 1.0 and bad["aer"] == 1.0 and bad["ord"] == 0.0
    assert bad["format_failure_messages"] == {"unparsable answer": 8}


def test_hub_calls_then_turn_limit():
    # always a hub call: with hub_turns=3 each round has 3 valid calls, then the 4th answer is a format failure
    policy = ScriptedPolicy(lambda p: '{"action": "update", "strategies": ["deadlines first"]}')
    r = bench.run_llm(policy, [0], 2, 3, 8)
    assert r["hub"]["calls"] == 6 and r["hub"]["valid_calls"] == 6 and r["hub"]["update"] == 6
    assert r["hub"]["rounds_with_valid_call"] == 2
    assert r["format_failure_rate"] == 1.0
    assert r["hub_strategies_at_end"] == {"0": ["deadlines first"]}
    assert "deadlines first" in policy.prompts[-1]  # the stored strategy is shown in later prompts


def test_hub_then_decision_and_zero_turns():
    def answer(p: str) -> str:  # one list call per round, then a decision
        return '{"action": "list"}' if "calls left this round: 3" in p else '{"selected_event_to_accept": 1}'

    r = bench.run_llm(ScriptedPolicy(answer), [0], 3, 3, 8)
    assert r["hub"]["list"] == 3 and r["format_failure_rate"] == 0.0
    z = bench.run_llm(ScriptedPolicy(lambda p: '{"action": "list"}'), [0], 3, 0, 8)
    assert z["hub"]["calls"] == 0 and z["format_failure_rate"] == 1.0  # no hub allowed: a call is a failure


def test_random_subset_is_reproducible():
    a, b = bench.run_random([0, 11], 8, seed=0), bench.run_random([0, 11], 8, seed=0)
    assert a["aer"] == b["aer"] and a["per_round_error"] == b["per_round_error"]
    assert 0.0 <= a["ord"] <= 1.0
