"""PreferenceLearnerAgent: its error falls within an episode; priors learn; state round-trips."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from selfgym.agents import get_agent_class
from selfgym.envs.calendar.env import CalendarConflictEnv

KW = dict(n_users=20, n_rounds=48)


class Hooks:
    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at, self.calls = stop_at, 0

    def on_step(self, n: int) -> bool:
        self.calls += 1
        return self.stop_at is None or n < self.stop_at


def _agent(split: str = "train", **params):
    venv = DummyVecEnv([lambda: CalendarConflictEnv(split=split, **KW)])
    return get_agent_class("preference_learner")(venv, device="cpu", seed=0, logger=None, reward_modules=[], **params), venv


def _episode(agent, env, user_id):
    obs, _ = env.reset(options={"user_id": user_id})
    start, done = True, False
    while not done:
        action, _ = agent.predict(obs[None], episode_start=np.array([start]))
        start = False
        obs, _, done, _, info = env.step(int(action[0]))
    return info


def test_error_falls_within_an_episode_on_held_out_users():
    agent, _ = _agent(use_prior=False)
    env = CalendarConflictEnv(split="test", **KW)
    infos = [_episode(agent, env, u) for u in env.user_ids]
    first = np.mean([i["error_first_quarter"] for i in infos])
    last = np.mean([i["error_last_quarter"] for i in infos])
    assert first > 0.2 and last < 0.5 * first, (first, last)


def test_learn_fits_role_priors_and_state_round_trips():
    agent, _ = _agent()
    hooks = Hooks(stop_at=48 * 3)
    agent.learn(48 * 10, hooks)
    assert agent.num_timesteps == 48 * 3 and hooks.calls == 48 * 3  # stopped by the hook
    assert agent.prior_count.sum() == 3 and np.abs(agent.prior).sum() > 0
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    other, _ = _agent()
    other.load_state_dict(torch.load(buf, weights_only=True))
    np.testing.assert_allclose(other.prior, agent.prior)
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict({"prior": torch.zeros(2, 2), "prior_count": torch.zeros(2)})


def test_rejects_wrong_observations_and_settings():
    agent, _ = _agent()
    with pytest.raises(ValueError, match="observations of size"):
        agent.predict(np.zeros((1, 10)))
    venv = DummyVecEnv([lambda: CalendarConflictEnv(window=0, **KW)])
    with pytest.raises(ValueError, match="window >= 1"):
        get_agent_class("preference_learner")(venv, device="cpu", seed=0, logger=None, reward_modules=[])
