"""TextReasoning-v0: spaces, verifiers, answer extraction, held-out sets, two-turn mode."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.envs.text.extract import NUMBER, extract_answer, parse_int_list, parse_number
from selfgym.envs.text.reasoning import TextReasoningEnv
from selfgym.envs.text.spaces import as_text
from selfgym.envs.text.tasks import FAMILIES, Task, score, stated_answer

ENV_ID = "selfgym/TextReasoning-v0"


def test_registered_and_passes_both_env_checkers(monkeypatch: pytest.MonkeyPatch) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common import env_checker as sb3_checker

    # SB3's last check wraps the env in VecCheckNan, which calls np.isnan on the actions: it
    # cannot apply to text. Every other SB3 check (spaces, reset/step values, seeding) runs.
    monkeypatch.setattr(sb3_checker, "_check_nan", lambda env: None)
    for kwargs in ({}, {"two_turn": True}, {"split": "test", "task": "countdown,list"}):
        env = gym.make(ENV_ID, **kwargs)
        check_env(env.unwrapped, skip_render_check=True)
        sb3_checker.check_env(env.unwrapped, warn=False)


def test_sb3_vec_env_batches_text_as_object_array() -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: gym.make(ENV_ID) for _ in range(3)])
    venv.set_options({"split": "train", "task_index": 7})
    obs = venv.reset()
    texts = [as_text(o) for o in obs]
    assert obs.dtype == object and obs.shape == (3, 1) and len(set(texts)) == 1 and "What is" in texts[0]
    _, rewards, dones, infos = venv.step(np.array(["<answer>0</answer>", "garbage", ""], dtype=object))
    assert rewards.dtype == np.float32 and dones.all() and all("is_success" in i for i in infos)


def test_render_modes() -> None:
    env = TextReasoningEnv(render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (160, 480, 3) and img.dtype == np.uint8 and img.min() == 0
    env = TextReasoningEnv(render_mode="ansi")
    obs, _ = env.reset(seed=0)
    assert env.render() == as_text(obs)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("level", [1, 2, 4])
def test_reference_answer_scores_one_and_junk_scores_zero(family: str, level: int) -> None:
    env = TextReasoningEnv(task=family, level=level, test_size=5)
    for task in env.heldout_tasks():
        ref = task["data"]["solution"] if family == "countdown" else task["target"]
        assert env.score_task(task, f"Let me think.\n<answer>{ref}</answer>")[0] == 1.0
        for junk in ["", "no idea", "<answer></answer>", "<answer>((((</answer>", "x" * 10_000, "<answer>1/0</answer>", "\x00\uffff"]:
            reward, _ = env.score_task(task, junk)
            assert reward == 0.0 or (family == "logic" and junk == "no idea")  # "no" reads as False


def test_malformed_actions_never_crash_the_env() -> None:
    env = TextReasoningEnv(task="countdown")
    for action in [None, 12, "", "<answer>2**99999999</answer>", "<answer>__import__('os')</answer>", "(" * 500]:
        env.reset(seed=0)
        _, reward, terminated, _, info = env.step(action)
        assert reward == 0.0 and terminated and info["is_success"] is False


def test_countdown_rejects_reused_or_foreign_numbers() -> None:
    task = Task("countdown", 1, "", "12", {"numbers": [3, 4, 5]})
    assert score(task, "<answer>3 * 4</answer>")[0] == 1.0
    assert score(task, "<answer>3 * 4 = 12</answer>")[0] == 1.0
    assert score(task, "<answer>4 + 4 + 4</answer>")[0] == 0.0  # 4 used three times
    assert score(task, "<answer>6 * 2</answer>")[0] == 0.0  # numbers not given


def test_extraction_rules_in_order() -> None:
    assert extract_answer("<answer>1</answer> then <answer> 2. </answer>") == "2"
    assert extract_answer("so \\boxed{17}") == "17"
    assert extract_answer("The answer is: **42**.") == "42"
    assert extract_answer("I get 3 then 5", numeric=True) == "5"
    assert extract_answer("I get 3 then 5") is None
    assert extract_answer("<answer>7") == "7"  # unclosed final tag
    assert extract_answer(None) is None and extract_answer("   ") is None
    assert parse_number("x = 1,234.") == 1234 and parse_number("-3/4") == parse_number("-0.75")
    assert parse_int_list("[3, 1, 2]") == [3, 1, 2] and parse_int_list("none") is None


def test_thousands_separators_make_one_number_but_lists_stay_lists() -> None:
    arith = Task("arithmetic", 3, "", "1234", {})
    assert score(arith, "The total is 1,234")[0] == 1.0  # the last-number rule once read "234"
    assert score(arith, "so x = 1,234 apples")[0] == 1.0
    assert stated_answer("arithmetic", "= 1,234") == "1234"
    assert parse_number("3,100,2") == 2 and NUMBER.findall("3,100,2") == ["3", "100", "2"]
    assert NUMBER.findall("1,23 and 12,345,678") == ["1", "23", "12,345,678"]
    assert stated_answer("arithmetic", "3,100,2") is None  # a list states no single number
    assert parse_int_list("3,100,2") == [3, 100, 2]


def test_a_bare_true_or_false_is_a_stated_logic_answer() -> None:
    assert stated_answer("logic", "False") == "False" and stated_answer("logic", " true. ") == "True"
    assert stated_answer("logic", "It might be true or false") is None  # no commitment
    assert stated_answer("arithmetic", "True") is None


def test_logic_and_numeric_fallbacks() -> None:
    logic = Task("logic", 1, "", "False", {})
    assert score(logic, "False")[0] == 1.0 and score(logic, "It is true.")[0] == 0.0
    arith = Task("arithmetic", 1, "", "11", {})
    assert score(arith, "7 + 4 = 11")[0] == 1.0 and score(arith, "<answer>11.0</answer>")[0] == 1.0


def test_heldout_set_is_fixed_and_never_served_for_training() -> None:
    a, b = TextReasoningEnv(test_size=50), TextReasoningEnv(test_size=50, train_seed=5)
    assert a.heldout_tasks() == b.heldout_tasks()
    held = {t["question"] for t in a.heldout_tasks()}
    questions = [as_text(a.reset(options={"split": "train", "task_index": k})[0]) for k in range(300)]
    assert not held & set(questions)
    assert len(set(questions)) > 50  # level-1 arithmetic has ~160 distinct questions


def test_test_split_serves_heldout_in_order_and_seeding_is_reproducible() -> None:
    env = TextReasoningEnv(split="test", test_size=10)
    tasks = env.heldout_tasks()
    served = [as_text(env.reset(seed=0 if i == 0 else None)[0]) for i in range(12)]
    assert served[:10] == [t["question"] for t in tasks] and served[10] == served[0]
    train = TextReasoningEnv(task="word", level=2)
    first = [as_text(train.reset(seed=3)[0])] + [as_text(train.reset()[0]) for _ in range(3)]
    again = [as_text(train.reset(seed=3)[0])] + [as_text(train.reset()[0]) for _ in range(3)]
    assert first == again


def test_two_turn_self_correction() -> None:
    env = TextReasoningEnv(two_turn=True, correction_bonus=2.0)
    _, info = env.reset(seed=0, options={"split": "train", "task_index": 1})
    obs, r1, terminated, _, _ = env.step("<answer>-999</answer>")
    assert r1 == 0.0 and not terminated
    assert "-999" in as_text(obs) and "Find your mistakes" in as_text(obs)
    _, r2, terminated, _, info = env.step(f"<answer>{info['target']}</answer>")
    assert terminated and r2 == 1.0 + 2.0 * (1.0 - 0.0) and info["first_turn_correct"] == 0.0


def test_bad_kwargs_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown task family 'algebra'"):
        TextReasoningEnv(task="algebra")
    with pytest.raises(ValueError, match="split"):
        TextReasoningEnv(split="val")
    env = TextReasoningEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step("1")


def test_reasoning_gym_adapter() -> None:
    pytest.importorskip("reasoning_gym")
    env = TextReasoningEnv(task="rg:chain_sum", test_size=5)
    obs, info = env.reset(seed=0)
    _, reward, _, _, step_info = env.step(f"<answer>{info['target']}</answer>")
    assert reward == 1.0 and step_info["is_success"]
    env.reset()
    assert env.step("nonsense")[1] == 0.0
