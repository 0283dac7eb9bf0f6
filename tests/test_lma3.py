"""LMA3: mastery bookkeeping, LM-role parsing / batching / caching, the loop with oracle roles and
with a tiny random LM (unparsable answers counted, never a crash), train.py + evaluate.py."""

from __future__ import annotations

import io
import json
import random

import pytest
import torch

from selfgym.agents.lma3 import LMA3Agent
from selfgym.agents.lma3_parts import GoalLibrary
from selfgym.agents.lma3_roles import (EMPTY_TRAJECTORY, REWARD_PROMPT, LMRoles, OracleRoles, Trajectory,
                                       parse_generated, parse_goal_list)
from selfgym.env_factory import make_vec_env


class Hooks:
    def __init__(self) -> None:
        self.calls = 0

    def on_step(self, num_timesteps: int) -> bool:
        self.calls += 1
        return True


def test_mastery_needs_the_window_and_the_threshold_and_is_remembered() -> None:
    library = GoalLibrary(window=3, threshold=0.6)
    assert library.add("slice the carrot", "relabelled", 1) and not library.add("slice the carrot", "relabelled", 2)
    assert library.goals["slice the carrot"].achieved_seen == 2
    for episode, outcome in enumerate([True, True], start=3):
        library.record("slice the carrot", outcome, episode)
    assert not library.is_mastered("slice the carrot")  # 2 attempts < window
    library.record("slice the carrot", False, 5)  # 2/3 >= 0.6
    stats = library.goals["slice the carrot"]
    assert library.is_mastered("slice the carrot") and stats.mastered_at == 5 and (stats.attempts, stats.successes) == (3, 2)
    library.record("slice the carrot", False, 6)  # T F F: 1/3
    assert not library.is_mastered("slice the carrot") and stats.mastered_at == 5 and library.mastered() == []
    with pytest.raises(ValueError, match="window >= 2"):
        GoalLibrary(window=1)


def test_learning_progress_sampling_prefers_goals_that_change() -> None:
    library = GoalLibrary(window=2, threshold=0.5, seed=0)
    for goal, outcomes in (("flat", [0, 0, 0, 0]), ("rising", [0, 0, 1, 1])):
        library.add(goal, "relabelled", 0)
        for o in outcomes:
            library.record(goal, bool(o), 1)
    assert library.learning_progress("rising") == 1.0 and library.learning_progress("flat") == 0.0
    draws = [library.sample(epsilon=0.05) for _ in range(400)]
    assert draws.count("rising") > 0.8 * len(draws)


def test_goal_parsers_take_what_they_can_and_refuse_junk() -> None:
    assert parse_goal_list("1. Slice the carrot.\n- go to the garden\n\u00bf\u00bf\nx\n- slice the carrot") == [
        "slice the carrot", "go to the garden"]
    assert parse_goal_list("\x00\x01 ###") == []
    assert parse_generated("Goal: eat the fried carrot\nSteps: fry the carrot; eat the carrot") == (
        "eat the fried carrot", ["fry the carrot", "eat the carrot"])
    assert parse_generated("The new goal is to eat the apple.") == ("eat the apple", [])
    assert parse_generated("Invent one new goal that combines two of the mastered goals:\n- take the knife\n"
                           "- take the knife\n- fry the carrot\n- open the fridge") == (
        "take the knife and fry the carrot", ["take the knife", "fry the carrot"])
    assert parse_generated("I think you should cook.") is None
    assert parse_generated("<new goal>") is None


class FakePolicy:
    """Stands in for LLMPolicy: canned answers, and a count of batched calls."""

    def __init__(self, answer: str) -> None:
        self.answer, self.generate_calls = answer, 0

    def generate(self, prompts, *, greedy, batch_size, max_new_tokens):
        self.generate_calls += 1
        return [self.answer] * len(prompts)



def _trajectory(commands: list[str]) -> Trajectory:
    return Trajectory("", [], commands=commands, feedback=["ok"] * len(commands))


def test_lm_roles_batch_cache_and_count_parse_failures() -> None:
    trajs = [_trajectory(["take carrot"]), _trajectory(["go north"]), _trajectory(["take carrot"])]
    roles = LMRoles(lambda: FakePolicy("1. take the carrot\n2. go to the garden"), batch_size=8)
    assert roles.relabel(trajs) == [["take the carrot", "go to the garden"]] * 3
    assert roles.policy.generate_calls == 1 and roles.stats["relabeler"].prompts == 2  # one batch, one duplicate
    roles.relabel(trajs)
    assert roles.policy.generate_calls == 1 and roles.stats["relabeler"].cached == 4
    junk = LMRoles(lambda: FakePolicy("\x07\x07 !!"))
    assert junk.relabel(trajs[:1]) == [[]] and junk.stats["relabeler"].parse_failures == 1
    assert junk.generate(["take the carrot", "go to the garden"], trajs, 2, random.Random(0)) == []
    assert junk.stats["generator"].parse_failures == 2 and junk.stats["generator"].failure_examples


def test_lm_reward_is_a_probability_from_one_batched_forward_pass_and_cached() -> None:
    pytest.importorskip("transformers")
    from selfgym.llm.tiny import tiny_policy

    trajs = [_trajectory(["take carrot"]), _trajectory(["go north"])]
    pairs = [("take the carrot", trajs[0]), ("go to the garden", trajs[1]), ("take the carrot", trajs[0])]
    plain = LMRoles(tiny_policy, calibrate=False)
    judged = plain.reward(pairs)
    assert all(0.0 < p < 1.0 and ok == (p > 0.5) for ok, p in judged) and judged[0] == judged[2]
    assert (plain.stats["reward"].calls, plain.stats["reward"].prompts, plain.stats["reward"].cached) == (1, 2, 1)
    calibrated = LMRoles(tiny_policy, batch_size=8)  # + each goal after an empty trajectory, same batch
    judged_c = calibrated.reward(pairs)
    assert [p for _, p in judged_c] == pytest.approx([p for _, p in judged])
    assert (calibrated.stats["reward"].calls, calibrated.stats["reward"].prompts) == (1, 4)
    bars = [calibrated._cache[("reward", REWARD_PROMPT.format(trajectory=EMPTY_TRAJECTORY, goal=g))] for g, _ in pairs]
    assert [ok for ok, _ in judged_c] == [p > bar for (_, p), bar in zip(judged_c, bars)]
    assert calibrated.reward(pairs[:1]) == judged_c[:1] and calibrated.stats["reward"].calls == 1


def test_oracle_generator_composes_mastered_goals() -> None:
    out = OracleRoles().generate(["take the knife", "open the fridge", "go to the garden"], [], 3, random.Random(0))
    assert len(out) == 3 and all(goal == " and ".join(steps) and len(steps) == 2 for goal, steps in out)


def _env():
    return make_vec_env("selfgym/CookingWorld-v0", 1, 0, {"state_in_info": True, "num_rooms": 2, "num_foods": 2})


def test_the_loop_runs_with_oracle_roles_and_saves_and_loads() -> None:
    env = _env()
    agent = LMA3Agent(env, seed=0, relabeler="oracle", reward="oracle", generator="oracle", episodes_per_update=2,
                      eval_layouts=1)
    hooks = Hooks()
    agent.learn(300, hooks)
    assert agent.num_timesteps == hooks.calls == 300 and agent.episodes == 6
    report = agent.goal_report()
    assert report["goals_discovered"] > 0 and len(agent.curve) == 3 and agent.policy.buffer
    # with the oracle as the reward role, the oracle's shadow record agrees with the library
    assert report["goals_mastered_oracle"] == report["goals_mastered"]
    assert all(agent.oracle_check.goals[g].recent == agent.library.goals[g].recent for g in agent.oracle_check.goals)
    assert any(g.startswith("go to the ") for g in report["discovered_examples"])
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    twin = LMA3Agent(_env(), seed=1, relabeler="oracle", reward="oracle", generator="oracle")
    twin.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    assert twin.library.state_dict() == agent.library.state_dict() and (twin.policy.weights == agent.policy.weights).all()
    # the roles' counters travel with the agent (evaluate.py reports the training's, not zeros)
    assert twin.goal_report()["oracle_stats"] == report["oracle_stats"] and report["oracle_stats"]["relabeler"]["calls"] == 3
    assert [twin.library.sample(), twin.policy.rng.random(), twin.rng.random()] == [
        agent.library.sample(), agent.policy.rng.random(), agent.rng.random()]  # a resumed run draws the same numbers
    action, _ = twin.predict(twin.env.reset())
    assert action.shape == (1,) and 0 <= int(action[0]) < len(twin.env.env_method("valid_commands")[0])
    suite = agent.evaluate_task_suite()
    assert {r["status"] for r in suite["results"]} <= {"scored", "unknown_in_layout"} and "held-out success" in suite["table"]


def test_the_loop_runs_with_a_tiny_random_lm_counting_unparsable_answers(tiny_dir: str) -> None:
    agent = LMA3Agent(_env(), seed=0, model=tiny_dir, max_new_tokens=12, episodes_per_update=2, device="cpu")
    assert agent.lm._policy is None  # loaded on the first LM call: evaluate.py never loads it
    agent.learn(200, Hooks())
    stats = agent.lm.stats
    assert agent.episodes == 4 and stats["relabeler"].prompts == 4 and stats["relabeler"].seconds > 0
    assert stats["relabeler"].parse_failures >= 1 and stats["relabeler"].failure_examples  # random bytes
    report = json.loads(json.dumps(agent.goal_report()))
    assert report["lm_stats"]["relabeler"]["parse_failures"] == stats["relabeler"].parse_failures
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    twin = LMA3Agent(_env(), seed=0, model=tiny_dir, max_new_tokens=12, episodes_per_update=2, device="cpu")
    twin.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    assert twin.goal_report()["lm_stats"] == report["lm_stats"] and twin.lm._policy is None  # counters, no model load


def test_hand_coded_goal_baseline_keeps_to_its_goal_space() -> None:
    env = make_vec_env("selfgym/CookingWorld-v0", 1, 0, {"state_in_info": True, "num_rooms": 2, "num_foods": 2,
                                                       "num_layouts": 2})
    agent = LMA3Agent(env, seed=0, relabeler="oracle", reward="oracle", generator="none", goal_space="hand")
    start = set(agent.library.goals)
    assert "go to the kitchen" in start and all(s.source == "hand" for s in agent.library.goals.values())
    agent.learn(200, Hooks())
    assert set(agent.library.goals) == start and sum(s.attempts for s in agent.library.goals.values()) == 4
    with pytest.raises(ValueError, match="needs relabeler=oracle"):
        LMA3Agent(env, goal_space="hand")
    with pytest.raises(ValueError, match="num_layouts > 0"):
        LMA3Agent(_env(), relabeler="oracle", reward="oracle", generator="none", goal_space="hand")


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="relabeler='gpt'"):
        LMA3Agent(_env(), relabeler="gpt")
    assert LMA3Agent(_env(), relabeler="oracle", reward="oracle", generator=None).names["generator"] == "none"
    with pytest.raises(ValueError, match="state_in_info=True"):
        LMA3Agent(make_vec_env("selfgym/CookingWorld-v0", 1, 0, {}), relabeler="oracle", reward="oracle", generator="none")


@pytest.mark.slow  # two CLI processes (about 30 s on a busy 2-core machine)
def test_train_and_evaluate_cli_report_goals(run_cli) -> None:
    params = ["-params", "relabeler:oracle", "reward:oracle", "generator:oracle", "eval_layouts:1"]
    result = run_cli("train.py", "--env", "selfgym/CookingWorld-v0", "--agent", "lma3", "-n", "300", *params)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "goals discovered" in result.stdout and "held-out success" in result.stdout
    run = next(p for p in result.stdout.split() if "logs/lma3/" in p)
    evaluated = run_cli("evaluate.py", "--run", run, "-n", "1")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "goals discovered" in evaluated.stdout and "held-out success" in evaluated.stdout
