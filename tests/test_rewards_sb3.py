"""Reward modules inside SB3: before GAE on-policy, at sampling time off-policy, streams logged."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger

from selfgym.rewards import make_reward
from selfgym.rewards.base import FunctionReward, RewardModule, TransitionBatch
from selfgym.rewards.intrinsic.diayn import SkillWrapper
from selfgym.rewards.sb3 import RewardStreamsCallback, attach

torch.set_num_threads(1)


class KnownLearned(RewardModule):
    """A 'learned' module whose reward we can compute by hand; counts its updates."""

    learned = True

    def __init__(self, **kwargs):
        kwargs.setdefault("name", "known")
        super().__init__(**kwargs)
        self.version, self.batch_sizes = 0, []

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        return 10.0 * np.asarray(batch.next_obs)[:, 0] + self.version

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        self.version += 1
        self.batch_sizes.append(len(batch))
        return {"version": float(self.version)}


class MemoryLogger(Logger):
    def __init__(self):
        super().__init__(folder=None, output_formats=[])
        self.seen: dict[str, float] = {}

    def record(self, key, value, exclude=None):
        self.seen[key] = value
        super().record(key, value, exclude)


class Capture(BaseCallback):
    """Copies what PPO stores per step and the rollout buffer at rollout end (runs after ours)."""

    def __init__(self):
        super().__init__()
        self.env_rewards, self.next_obs, self.buffers = [], [], []

    def _on_step(self) -> bool:
        infos, new_obs = self.locals["infos"], self.locals["new_obs"].copy()
        for i, done in enumerate(self.locals["dones"]):
            if done:
                new_obs[i] = infos[i]["terminal_observation"]
        self.env_rewards.append(self.locals["rewards"].copy())
        self.next_obs.append(new_obs)
        return True

    def _on_rollout_end(self) -> None:
        buf = self.locals["rollout_buffer"]
        self.buffers.append({k: np.array(getattr(buf, k)) for k in ("rewards", "values", "episode_starts", "advantages")}
                            | {"last_values": self.locals["values"].numpy().ravel(), "dones": self.locals["dones"].copy()})


def gae(rewards, values, episode_starts, last_values, dones, gamma, lam):
    """Textbook GAE(lambda), written independently of SB3."""
    T = len(rewards)
    adv, last = np.zeros_like(rewards), 0.0
    for t in reversed(range(T)):
        next_v = last_values if t == T - 1 else values[t + 1]
        nonterminal = 1.0 - (dones.astype(np.float32) if t == T - 1 else episode_starts[t + 1])
        delta = rewards[t] + gamma * next_v * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv


def test_on_policy_learned_reward_enters_before_gae():
    venv = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    module = KnownLearned(coef=0.5)
    venv, callbacks = attach(venv, [module], PPO)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, gamma=0.9, gae_lambda=0.8, seed=0)
    capture = Capture()
    model.learn(64, callback=[*callbacks, capture])
    env_r = np.array(capture.env_rewards)  # (T, n_envs): the non-learned part (here: task) per step
    intrinsic = 10.0 * np.array(capture.next_obs)[..., 0] + 0  # version 0 while the first rollout is scored
    buf = capture.buffers[0]
    total = env_r + 0.5 * intrinsic
    np.testing.assert_allclose(buf["rewards"], total, rtol=1e-5, atol=1e-5)
    expected = gae(total, buf["values"], buf["episode_starts"], buf["last_values"], buf["dones"], 0.9, 0.8)
    np.testing.assert_allclose(buf["advantages"], expected, rtol=1e-4, atol=1e-4)
    # ... which is not what adding the bonus to the advantages afterwards (rllte's recipe) gives
    after = gae(env_r, buf["values"], buf["episode_starts"], buf["last_values"], buf["dones"], 0.9, 0.8) + 0.5 * intrinsic
    assert np.abs(buf["advantages"] - after).max() > 0.1
    # the module learned once per rollout, from the whole rollout
    assert module.batch_sizes == [64]
    assert capture.buffers[0]["rewards"].shape == (32, 2)


def test_off_policy_learned_reward_is_computed_when_sampled():
    venv = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    module = KnownLearned(coef=2.0)
    venv, callbacks = attach(venv, [module], DQN)
    model = DQN("MlpPolicy", venv, learning_starts=50, batch_size=16, train_freq=4, seed=0)
    logger = MemoryLogger()
    model.set_logger(logger)
    model.learn(120, callback=callbacks)
    assert module.batch_sizes and set(module.batch_sizes) == {16}  # learns from the sampled batches
    # stored rewards hold only the task stream (CartPole: 1 per step), not the learned bonus
    stored = model.replay_buffer.rewards[: model.replay_buffer.pos]
    assert np.all(stored == 1.0)
    for _ in range(2):  # each sample is scored by the module as it is now
        version = module.version
        data = model.replay_buffer.sample(16)
        expected = 1.0 + 2.0 * (10.0 * data.next_observations[:, 0].numpy() + version)
        np.testing.assert_allclose(data.rewards.numpy().ravel(), expected, rtol=1e-5)
    assert "reward/known" in logger.seen and "reward/task" in logger.seen
    assert logger.seen["reward/known/version"] > 0


def test_streams_go_to_info_and_logs_and_task_is_kept_by_default():
    def half_x(obs, action, next_obs, info):
        return 0.5 * float(next_obs[0])

    venv = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    venv, callbacks = attach(venv, [FunctionReward(half_x, coef=3.0), make_reward("simhash")], PPO)
    names = [m.name for m in callbacks[0].wrapper.modules]
    assert names == ["task", "half_x", "simhash"]
    venv.reset()
    obs, reward, dones, infos = venv.step(np.array([0, 1]))
    for i in range(2):
        comp = infos[i]["reward_components"]
        next_x = (infos[i]["terminal_observation"] if dones[i] else obs[i])[0]
        assert comp["task"] == 1.0 and comp["half_x"] == pytest.approx(0.5 * next_x)
        assert comp["simhash"] == 1.0  # first visit of that cell
        assert reward[i] == pytest.approx(1.0 + 3.0 * 0.5 * next_x + 1.0)
    # an env stream given explicitly replaces the implicit task stream
    _, callbacks = attach(make_vec_env("CartPole-v1", n_envs=1), [make_reward("task:coef=0"), FunctionReward(half_x)], PPO)
    assert [m.name for m in callbacks[0].wrapper.modules] == ["task", "half_x"]
    assert callbacks[0].wrapper.modules[0].coef == 0.0


def test_ppo_logs_each_stream_and_module_metrics_through_sb3_agent():
    from selfgym.agents.sb3_agent import SB3Agent

    class Hooks:
        def on_step(self, n):
            return True

    logger = MemoryLogger()
    agent = SB3Agent(PPO, make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0, logger=logger,
                     reward_modules=[make_reward("rnd:hidden=[32],coef=0.1"), make_reward("icm:hidden=[32]")],
                     n_steps=32, batch_size=64, n_epochs=1)
    agent.learn(128, Hooks())
    for key in ("reward/task", "reward/rnd", "reward/icm", "reward/rnd/loss", "reward/icm/forward_loss",
                "reward/icm/inverse_loss", "reward/rnd_weight"):
        assert key in logger.seen, key
    assert logger.seen["reward/rnd"] > 0 and logger.seen["reward/task"] == 1.0


def test_diayn_needs_skill_wrapper_and_trains_with_it():
    with pytest.raises(ValueError, match="'diayn'.*SkillWrapper"):
        attach(make_vec_env("CartPole-v1", n_envs=1), [make_reward("diayn:n_skills=4")], PPO)
    venv = make_vec_env("Pendulum-v1", n_envs=2, seed=0, wrapper_class=SkillWrapper, wrapper_kwargs={"n_skills": 4})
    module = make_reward("diayn:n_skills=4")
    venv, callbacks = attach(venv, [make_reward("task:coef=0"), module], PPO)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0)
    logger = MemoryLogger()
    model.set_logger(logger)
    model.learn(256, callback=callbacks)
    assert {"reward/diayn", "reward/diayn/loss", "reward/diayn/accuracy"} <= set(logger.seen)
    assert callbacks[0].last_streams["diayn"].shape == (64, 2)


def test_learned_module_with_unsupported_algorithm_is_rejected():
    class NotAnAlgorithm:
        pass

    with pytest.raises(TypeError, match="learned reward modules"):
        RewardStreamsCallback(attach(make_vec_env("CartPole-v1", n_envs=1), [KnownLearned()], PPO)[1][0].wrapper,
                              NotAnAlgorithm)
