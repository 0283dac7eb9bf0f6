"""skill_hrl (agents/skill_hrl.py): PPO over frozen skills of a slim run.

Fast tests run on Pendulum with a skills run folder written in the run format (config.yaml and a
checksummed model/ checkpoint of a real SlimAgent); the slow one goes through train.py and
evaluate.py on PlayTable's push_to_target.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

from selfgym import runs
from selfgym.agents import make_agent
from selfgym.agents.skill_hrl import SkillEnv
from selfgym.rewards import make_reward

SLIM_HP = {"weights": {"task": 1.0}, "skill_dim": 3, "n_steps": 16, "batch_size": 16, "n_epochs": 1}
PPO_HP = {"n_steps": 8, "batch_size": 16, "n_epochs": 1}


class NoHooks:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def on_step(self, num_timesteps: int) -> bool:
        self.calls.append(num_timesteps)
        return True


def write_skills_run(folder: Path, env_id: str = "Pendulum-v1", agent: str = "slim", seed: int = 0, **hp) -> Path:
    """A run folder as train.py writes it: config.yaml and a model/ checkpoint of a SlimAgent."""
    hyperparams = {**SLIM_HP, **hp}
    venv = make_vec_env(env_id, n_envs=1, seed=0)
    slim = make_agent("slim", venv, hyperparams, seed=seed, reward_modules=[make_reward("task")])
    folder.mkdir(parents=True)
    runs.write_yaml(folder / "config.yaml", {"agent": agent, "env": env_id, "hyperparams": hyperparams, "rewards": ["task"]})
    runs.save_checkpoint(folder / runs.MODEL_DIR, {"agent": slim.state_dict(include_buffers=False)}, {"num_timesteps": 0})
    venv.close()
    return folder


def hrl_agent(skills: Path, n_envs: int = 2, seed: int = 0, **hp):
    venv = make_vec_env("Pendulum-v1", n_envs=n_envs, seed=seed)
    return make_agent("skill_hrl", venv, {"skills_run": str(skills), "k": 4, "ppo": PPO_HP, **hp}, seed=seed)


def test_one_decision_runs_the_frozen_skill_for_k_steps_and_sums_the_rewards(tmp_path: Path):
    agent = hrl_agent(write_skills_run(tmp_path / "skills"))
    skills = agent.skills
    env = SkillEnv(gym.make("Pendulum-v1"), skills, k=4, deterministic=True)
    assert env.action_space == gym.spaces.Discrete(3)
    obs, _ = env.reset(seed=5)
    _, total, _, _, info = env.step(np.int64(1))
    reference, expected = gym.make("Pendulum-v1"), 0.0
    ref_obs, _ = reference.reset(seed=5)
    for _ in range(4):  # the same skill by hand: one-hot z = e_1, mean actions
        action = skills.act(ref_obs[None], np.eye(3, dtype=np.float32)[[1]], deterministic=True)[0]
        ref_obs, reward, *_ = reference.step(action)
        expected += float(reward)
    assert info["skill_steps"] == 4 and total == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(env._obs, ref_obs, rtol=1e-6)


def test_continuous_skills_give_a_box_high_level_action(tmp_path: Path):
    agent = hrl_agent(write_skills_run(tmp_path / "skills", skill_type="continuous", skill_dim=2))
    assert agent.inner.model.action_space == gym.spaces.Box(-3, 3, (2,), np.float32)
    agent.learn(64, NoHooks())
    assert 64 <= agent.num_timesteps <= 64 + 2 * 4


def test_learning_counts_env_steps_and_a_checkpoint_restores_ppo_and_the_frozen_skills(tmp_path: Path):
    skills = write_skills_run(tmp_path / "skills")
    agent = hrl_agent(skills)
    hooks = NoHooks()
    agent.learn(100, hooks)
    # 2 envs x 4 steps = 8 env steps per decision; 64 per rollout; the second rollout stops at the
    # first decision that reaches the budget (as SB3 stops at the first vec step past its own)
    assert agent.num_timesteps == 104 and hooks.calls[:2] == [8, 16] and agent.inner.model.num_timesteps == 26
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)  # what a run folder loads
    write_skills_run(tmp_path / "other", seed=9)  # the skills run changed afterwards: the checkpoint's skills still rule
    other = hrl_agent(tmp_path / "other", seed=3)
    obs = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    start = np.ones(2, bool)
    assert not np.allclose(agent.predict(obs, episode_start=start, deterministic=True)[0],
                           other.predict(obs, episode_start=start, deterministic=True)[0])
    other.load_state_dict(state)
    np.testing.assert_array_equal(agent.predict(obs, episode_start=start, deterministic=True)[0],
                                  other.predict(obs, episode_start=start, deterministic=True)[0])
    assert other.num_timesteps == 104 and other.inner.model.num_timesteps == 26
    for mine, theirs in zip(agent.skills.actor.parameters(), other.skills.actor.parameters(), strict=True):
        assert torch.equal(mine, theirs)


def test_predict_asks_ppo_for_a_skill_every_k_steps_and_at_episode_starts(tmp_path: Path):
    agent = hrl_agent(write_skills_run(tmp_path / "skills"), n_envs=1)
    asked: list[int] = []
    real = agent.inner.model.predict

    def counting(obs, deterministic=False):
        asked.append(len(obs))
        return real(obs, deterministic=deterministic)

    agent.inner.model.predict = counting
    obs, state = np.zeros((1, 3), np.float32), None
    chosen_at = []
    for t in range(10):
        before = len(asked)
        action, state = agent.predict(obs, state, episode_start=np.array([t in (0, 6)]), deterministic=True)
        assert action.shape == (1, 1) and -2 <= action[0, 0] <= 2
        if len(asked) > before:
            chosen_at.append(t)
    assert chosen_at == [0, 4, 6]  # every k = 4 steps, and again at the episode start at t = 6


def test_a_run_that_is_not_a_skill_agent_is_named_with_its_agent(tmp_path: Path):
    not_skills = write_skills_run(tmp_path / "ppo_run", agent="ppo")
    with pytest.raises(ValueError) as err:
        hrl_agent(not_skills)
    assert str(not_skills) in str(err.value) and "'ppo'" in str(err.value) and "slim" in str(err.value)
    with pytest.raises(ValueError, match="needs skills_run"):
        make_agent("skill_hrl", make_vec_env("Pendulum-v1", n_envs=1), {}, seed=0)
    with pytest.raises(ValueError, match="not a run folder"):
        hrl_agent(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="k .* >= 1"):
        hrl_agent(write_skills_run(tmp_path / "skills"), k=0)
    mountain = write_skills_run(tmp_path / "car", env_id="MountainCarContinuous-v0")  # 2 observations, Pendulum has 3
    with pytest.raises(ValueError, match="does not fit this env"):
        hrl_agent(mountain)


def test_train_refuses_a_bad_skills_run_before_any_run_folder(run_cli, tmp_path: Path):
    not_skills = write_skills_run(tmp_path / "ppo_run", agent="ppo")
    result = run_cli("train.py", "--env", "Pendulum-v1", "--agent", "skill_hrl", "-n", "64",
                     "-params", f"skills_run:{not_skills}")
    assert result.returncode == 2, result.stderr
    assert "'ppo'" in result.stderr and str(not_skills) in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_slim_skills_then_skill_hrl_on_push_to_target_train_evaluate_resume(run_cli, tmp_path: Path):
    result = run_cli("train.py", "--env", "selfgym/PlayTable-v0", "--agent", "slim", "-n", "128", "--n-envs", "2",
                     "-params", "n_steps:32", "n_epochs:1", "skill_dim:3", "--no-final-eval", "--seed", "1")
    assert result.returncode == 0, result.stderr
    skills = tmp_path / "logs" / "slim" / "selfgym-PlayTable-v0_1"
    args = ["--env", "selfgym/PlayTable-v0", "--env-kwargs", "task:push_to_target", "--agent", "skill_hrl", "--n-envs", "2",
            "-params", "skills_run:logs/slim/selfgym-PlayTable-v0_1", "k:5", "ppo:{'n_steps': 8, 'batch_size': 16}",
            "--eval-freq", "0", "--save-freq", "80", "--no-final-eval", "--seed", "2"]
    result = run_cli("train.py", *args, "-n", "160")
    assert result.returncode == 0, result.stderr
    run = tmp_path / "logs" / "skill_hrl" / "selfgym-PlayTable-v0_1"
    assert runs.read_yaml(run / "config.yaml")["hyperparams"]["skills_run"] == str(skills.resolve())
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[1].split(",")[0] == "80"  # rows at env steps: 2 envs x 8 decisions x 5 steps
    result = run_cli("train.py", "-n", "240", "-i", str(run))
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "status.json").read_text())["num_timesteps"] == 240
    result = run_cli("evaluate.py", "--run", str(run), "-n", "1")
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["agent"] == "skill_hrl" and evaluation["num_timesteps"] == 240 and evaluation["success_rate"] is not None
