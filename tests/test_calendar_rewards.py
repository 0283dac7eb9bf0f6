"""CalendarConflict rewards and metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from selfgym.envs.calendar.metrics import episode_metrics, error_reduction_rate, expected_ord, ord_score, quarter_errors, summarize
from selfgym.rewards import make_reward
from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.calendar import curriculum_weights, pearl_round_reward, roundwise_advantages


def test_ord_hand_computed():
    assert ord_score([2, 0, 1, 3, 4], 2) == 1.0
    assert ord_score([2, 0, 1, 3, 4], 4) == 0.0
    assert ord_score([2, 0, 1, 3, 4], 1) == pytest.approx(0.5)   # 1 - 2/4
    assert ord_score([1, 0, 2], 0) == pytest.approx(0.5)         # 1 - 1/2
    assert expected_ord(3, 3, 5) == 1.0 and expected_ord(1, 3, 5) == pytest.approx(0.375)
    with pytest.raises(ValueError):
        ord_score([0], 0)


def test_err_hand_computed():
    errors = [1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0]  # N=12: quarters of 3 rounds
    assert quarter_errors(errors) == (1.0, 0.0)
    m = episode_metrics(errors, [0.5] * 12)
    assert m["aer"] == pytest.approx(5 / 12) and m["err"] == 1.0 and m["ord"] == 0.5
    assert error_reduction_rate(0.4, 0.1) == pytest.approx(0.75)
    assert error_reduction_rate(0.2, 0.3) == pytest.approx(-0.5)
    assert error_reduction_rate(0.0, 0.2) == 0.0
    # pooled over episodes: (mean first - mean last) / mean first = (0.75 - 0.25) / 0.75
    s = summarize([{"user_id": 1, "per_round_error": [1, 0, 0, 0], "per_round_ord": [0, 1, 1, 1]},
                   {"user_id": 2, "per_round_error": [1, 1, 0, 1], "per_round_ord": [0, 0, 1, 0]},
                   {"user_id": 2, "per_round_error": [0, 0, 0, 0], "per_round_ord": [1, 1, 1, 1]}])
    assert s["error_first_quarter"] == pytest.approx(2 / 3) and s["error_last_quarter"] == pytest.approx(1 / 3)
    assert s["err"] == pytest.approx(0.5)
    assert s["per_user"]["2"]["aer"] == pytest.approx(3 / 8) and s["per_round_error"][0] == pytest.approx(2 / 3)


def test_curriculum_weights():
    assert curriculum_weights(0, 10) == (0.0, 0.5)
    assert curriculum_weights(5, 10) == (0.25, 0.25)
    assert curriculum_weights(10, 10) == (0.5, 0.0)
    comps = {"format": 1.0, "decision": 1.0, "ranking": 0.5, "hub_use": 1.0}
    assert pearl_round_reward(comps, 2, 8, format_coef=0.2, decision_coef=1.0) == pytest.approx(0.2 + 1 + 0.125 * 0.5 + 0.375)


def test_roundwise_advantages_hand_computed():
    r = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])  # G=3 rollouts, T=2 rounds, gamma=1
    # returns to go: [[1,0],[0,0],[2,1]]; round 0: mean 1, std sqrt(2/3); round 1: mean 1/3, std sqrt(2)/3
    adv = roundwise_advantages(r, gamma=1.0)
    np.testing.assert_allclose(adv[:, 0], np.array([0, -1, 1]) / np.sqrt(2 / 3), atol=1e-5)
    np.testing.assert_allclose(adv[:, 1], (np.array([0, 0, 1]) - 1 / 3) / (np.sqrt(2) / 3), atol=1e-5)
    half = roundwise_advantages(r, gamma=0.5)
    np.testing.assert_allclose(half[:, 0], (np.array([1, 0, 1.5]) - 2.5 / 3) / np.std([1, 0, 1.5]), atol=1e-5)
    masked = roundwise_advantages(r, mask=np.array([[1, 1], [1, 0], [1, 1]], dtype=bool))
    assert masked[1, 1] == 0.0
    with pytest.raises(ValueError, match="G rollouts"):
        roundwise_advantages(np.zeros(3))


def _batch(components, rounds):
    infos = [{"reward_components": c, "feedback": {"round": t, "n_rounds": 4}} for c, t in zip(components, rounds)]
    n = len(infos)
    return TransitionBatch(np.zeros((n, 1)), np.zeros(n), np.zeros((n, 1)), np.zeros(n), np.zeros(n), infos)


def test_reward_modules_from_the_registry():
    comps = [{"format": 1.0, "decision": 0.0, "ranking": 0.25, "hub_use": 1.0},
             {"format": 0.0, "decision": 0.0, "ranking": 0.0, "hub_use": 0.0},
             {"format": 1.0, "decision": 1.0, "ranking": 1.0, "hub_use": 1.0}]
    batch = _batch(comps, [1, 2, 4])
    np.testing.assert_allclose(make_reward("calendar_format")(batch), [1, 0, 1])
    np.testing.assert_allclose(make_reward("calendar_decision")(batch), [0, 0, 1])
    np.testing.assert_allclose(make_reward("calendar_ranking")(batch), [0.25, 0, 1])
    np.testing.assert_allclose(make_reward("calendar_ranking:curriculum=True")(batch), [0.25 * 0.125, 0, 0.5])
    np.testing.assert_allclose(make_reward("calendar_hub_use:curriculum=True")(batch), [0.375, 0, 0.0])
    with pytest.raises(ValueError, match="no curriculum"):
        make_reward("calendar_format:curriculum=True")
    with pytest.raises(KeyError, match="CalendarConflict"):
        make_reward("calendar_decision")(_batch([{"other": 1.0}], [1]))
