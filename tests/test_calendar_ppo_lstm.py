"""ppo_lstm (sb3-contrib RecurrentPPO) on CalendarConflict-v0: the shipped entry builds, trains over
several training users, carries its LSTM state through a year, and its checkpoint round-trips."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sb3_contrib")
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from selfgym.agents import make_agent  # noqa: E402
from selfgym.config import TRAINER_KEYS, load_hyperparams  # noqa: E402
from selfgym.envs.calendar.env import CalendarConflictEnv  # noqa: E402

KW = dict(n_users=20, n_rounds=8)


class CountingEnv(CalendarConflictEnv):
    """Records the user of every episode."""

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        self.seen = getattr(self, "seen", []) + [info["user_id"]]
        return obs, info


def shipped_entry() -> dict:
    entry = load_hyperparams("ppo_lstm", "selfgym/CalendarConflict-v0")
    assert entry["policy"] == "MlpLstmPolicy" and entry["n_steps"] == 208
    return {k: v for k, v in entry.items() if k not in TRAINER_KEYS}


def agent_on(n_envs: int, **overrides):
    venv = DummyVecEnv([lambda: CountingEnv(**KW) for _ in range(n_envs)])
    params = shipped_entry() | dict(n_steps=16, batch_size=32, n_epochs=1) | overrides
    return make_agent("ppo_lstm", venv, params, device="cpu", seed=0), venv


class Hooks:
    def on_step(self, n: int) -> bool:
        return True


def test_ppo_lstm_trains_over_training_users_and_round_trips():
    agent, venv = agent_on(2)
    assert type(agent.model).__name__ == "RecurrentPPO" and agent.model.gamma == 0.0
    agent.learn(64, Hooks())  # 2 envs x 4 years of 8 rounds
    seen = [u for e in venv.envs for u in e.seen]
    assert agent.num_timesteps == 64 and len(seen) >= 8 and len(set(seen)) >= 4
    assert set(seen) <= set(venv.envs[0].user_ids)  # training users only
    state = agent.state_dict()
    other, _ = agent_on(2)
    other.load_state_dict(state)
    env = CalendarConflictEnv(split="test", **KW)
    obs, _ = env.reset(seed=1)
    lstm, start = None, np.ones(1, dtype=bool)
    actions = []
    for _ in range(8):
        a1, lstm1 = agent.predict(obs[None], state=lstm, episode_start=start, deterministic=True)
        a2, _ = other.predict(obs[None], state=lstm, episode_start=start, deterministic=True)
        assert a1[0] == a2[0]
        lstm, start = lstm1, np.zeros(1, dtype=bool)
        actions.append(int(a1[0]))
        obs, _, done, _, info = env.step(int(a1[0]))
    assert done and 0.0 <= info["aer"] <= 1.0 and lstm[0].shape == (1, 1, 128)


def test_the_lstm_state_changes_what_the_policy_sees():
    """Same observation, different carried state -> different action distribution (memory is used)."""
    import torch

    agent, _ = agent_on(1)
    env = CalendarConflictEnv(**KW)
    obs, _ = env.reset(seed=0)
    policy = agent.model.policy
    _, state_a = agent.predict(obs[None], state=None, episode_start=np.ones(1, dtype=bool))
    obs_t = torch.as_tensor(obs[None])
    start = torch.zeros(1)
    zero = tuple(torch.zeros_like(torch.as_tensor(s)) for s in state_a)
    carried = tuple(torch.as_tensor(s) for s in state_a)
    with torch.no_grad():
        d0 = policy.get_distribution(obs_t, zero, start)[0].distribution.probs
        d1 = policy.get_distribution(obs_t, carried, start)[0].distribution.probs
    assert not torch.allclose(d0, d1)
