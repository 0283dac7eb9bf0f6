"""CalendarConflict-v0: env checkers, seeding, feedback, malformed actions, metrics, StrategyHub."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.envs.calendar.env import CalendarConflictEnv
from selfgym.envs.text.spaces import as_text
from selfgym.envs.calendar.hub import StrategyHub
from selfgym.envs.calendar.schema import N_FEATURES

SMALL = dict(n_users=20, n_rounds=8)


def test_registered_id_passes_both_checkers():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(gym.make("selfgym/CalendarConflict-v0", **SMALL).unwrapped)
        sb3_check_env(gym.make("selfgym/CalendarConflict-v0", **SMALL).unwrapped)
        check_env(gym.make("selfgym/CalendarConflict-v0", obs_mode="text", **SMALL).unwrapped)


def test_reset_seed_is_reproducible_and_splits_differ():
    a, b = CalendarConflictEnv(**SMALL), CalendarConflictEnv(**SMALL)
    oa, ia = a.reset(seed=5)
    ob, ib = b.reset(seed=5)
    np.testing.assert_array_equal(oa, ob)
    assert ia["user_id"] == ib["user_id"]
    test = CalendarConflictEnv(split="test", **SMALL)
    assert not set(test.user_ids) & set(a.user_ids)
    with pytest.raises(ValueError, match="split"):
        CalendarConflictEnv(split="dev")
    with pytest.raises(ValueError, match="obs_mode"):
        CalendarConflictEnv(obs_mode="pixels")


def test_feedback_appears_in_history_window():
    env = CalendarConflictEnv(window=2, **SMALL)
    obs, _ = env.reset(seed=0)
    lo, hi = env.obs_layout["history"]
    assert not obs[lo:hi].any()
    first_round = obs[:5 * N_FEATURES].copy()
    obs, _, _, _, info = env.step(3)
    winner = info["feedback"]["correct_event"]
    slot = obs[lo:lo + env.slot_size]
    np.testing.assert_array_equal(slot[:5 * N_FEATURES], first_round)
    assert np.argmax(slot[5 * N_FEATURES:5 * N_FEATURES + 5]) == winner
    assert np.argmax(slot[5 * N_FEATURES + 5:5 * N_FEATURES + 10]) == 3 and slot[-1] == 1.0
    assert obs[-1] == pytest.approx(1 / 8)


@pytest.mark.parametrize("action, fragment", [
    (7, "not an event id in 0..4"),
    (-1, "not an event id"),
    (np.nan, "not a finite event id"),
    ([0, 0, 1, 2, 3], "not a permutation"),
    (np.array([4, 3, 2, 1]), "not a permutation"),
    ("I would pick the lab meeting", "unparsable answer"),
    ('{"selected_event_to_accept": 9}', "not an event id"),
    ('{"priority_ranking": [1, 0, 2, 3, 4], "selected_event_to_accept": 2}', "not first in priority_ranking"),
    ({"reasoning": "hmm"}, "neither"),
])
def test_malformed_actions_are_format_failures(action, fragment):
    env = CalendarConflictEnv(**SMALL)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(action)
    assert fragment in info["message"]
    assert info["reward_components"]["format"] == 0.0 and info["reward_components"]["decision"] == 0.0
    assert reward == 0.0 and not terminated and info["feedback"]["valid"] is False


def test_valid_action_forms_and_ord():
    env = CalendarConflictEnv(**SMALL)
    env.reset(seed=0)
    w = int(env.data.winners[0])
    others = [i for i in range(5) if i != w]
    ranking = [others[0], others[1], w, others[2], others[3]]  # winner at position 2 -> ORD 0.5
    _, r, _, _, info = env.step('```json\n{"priority_ranking": %s, "reasoning": "x", "selected_event_to_accept": %d}\n```'
                                % (ranking, others[0]))
    assert info["message"] == "" and r == 0.0
    assert info["reward_components"]["ranking"] == pytest.approx(0.5)
    w = int(env.data.winners[1])
    _, r, _, _, info = env.step(np.int64(w))
    assert r == 1.0 and info["is_success"] and info["reward_components"]["ranking"] == 1.0
    w = int(env.data.winners[2])
    _, _, _, _, info = env.step((w + 1) % 5)  # wrong, no ranking: winner at mean position M/2
    assert info["reward_components"]["ranking"] == pytest.approx(1 - 2.5 / 4)


def test_episode_metrics_hand_computed():
    env = CalendarConflictEnv(**SMALL)  # N = 8: quarters are rounds 0-1 and 6-7
    env.reset(seed=1)
    wrong_rounds = {0, 1, 6}
    for t in range(8):
        w = int(env.data.winners[t])
        _, _, terminated, _, info = env.step((w + 1) % 5 if t in wrong_rounds else w)
    assert terminated
    assert info["aer"] == pytest.approx(3 / 8)
    assert info["error_first_quarter"] == 1.0 and info["error_last_quarter"] == 0.5
    assert info["err"] == pytest.approx(0.5)
    assert info["ord"] == pytest.approx((5 + 3 * 0.375) / 8)
    assert info["error_q1"] == 1.0 and info["error_q2"] == 0.0 and info["error_q4"] == 0.5
    assert info["user_id"] == env.data.user.user_id and len(info["per_round_error"]) == 8
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(0)


def test_pearl_reward_mode_uses_curriculum():
    env = CalendarConflictEnv(reward="pearl", **SMALL)
    env.reset(seed=0)
    _, r, _, _, _ = env.step(int(env.data.winners[0]))
    assert r == pytest.approx(0.5 + 1.0 + 0.5 * (1 / 8) * 1.0 + 0.0)


def test_text_mode_hub_calls_and_turn_limit():
    env = CalendarConflictEnv(obs_mode="text", hub_turns=2, **SMALL)
    obs, _ = env.reset(seed=0)
    obs = as_text(obs)
    assert "Round 1 of 8" in obs and "[4]" in obs and env.observation_space.contains(obs)
    obs, r, _, _, info = env.step('{"action": "update", "strategies": ["Deadlines first."]}')
    obs = as_text(obs)
    assert info["feedback"]["hub_step"] and r == 0.0 and "Deadlines first." in obs and "Round 1 of 8" in obs
    _, _, _, _, info = env.step('{"action": "update", "strategies": ["%s"]}' % ("x" * 351))
    assert "at most 350" in info["message"]
    _, _, _, _, info = env.step('{"action": "list"}')  # third call: over the limit of 2
    assert not info["feedback"]["hub_step"] and "turn limit" in info["message"]
    assert info["reward_components"]["hub_use"] == 1.0 and info["feedback"]["round"] == 1
    obs, _, _, _, info = env.step('{"selected_event_to_accept": 0}')
    obs = as_text(obs)
    assert info["reward_components"]["hub_use"] == 0.0 and "Round 3 of 8" in obs and "Deadlines first." in obs


def test_strategy_hub_limits():
    hub = StrategyHub()
    assert hub.call({"action": "update", "strategies": ["a"] * 11}).ok is False
    assert hub.call('{"action": "update", "strategies": "a"}').message.startswith("update needs")
    assert hub.call("not json").ok is False and hub.call({"action": "delete"}).ok is False
    res = hub.call({"action": "update", "strategies": ["Manager first.", "Then deadlines."]})
    assert res.ok and hub.call({"action": "list"}).strategies == ["Manager first.", "Then deadlines."]


@pytest.mark.parametrize("mode", ["ansi", "rgb_array"])
def test_render(mode):
    env = CalendarConflictEnv(render_mode=mode, **SMALL)
    env.reset(seed=0)
    out = env.render()
    if mode == "ansi":
        assert "Conflicting events" in out
    else:
        assert out.dtype == np.uint8 and out.shape == (656, 880, 3)
