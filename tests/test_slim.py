"""SLIM (agents/slim.py): the update against SB3 PPO's, the advantage mix, checkpoints, bad input.

The PPO comparison runs SB3's own ``PPO.train`` on a rollout buffer filled with the batch SLIM
sees, after copying SLIM's weights into SB3's policy, so the reference is independent code.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from selfgym import skill_metrics
from selfgym.agents import make_agent
from selfgym.agents.slim import SlimAgent
from selfgym.agents.slim_parts import combined_advantage, gae, normalize_per_stream
from selfgym.rewards import TransitionBatch, make_reward


class NoHooks:
    def on_step(self, num_timesteps: int) -> bool:
        return True


def pendulum_agent(seed: int = 0, **hyperparams):
    venv = make_vec_env("Pendulum-v1", n_envs=2, seed=seed)
    hp = {"weights": {"task": 1.0}, "skill_dim": 3, "n_steps": 32, "batch_size": 32, "n_epochs": 2, **hyperparams}
    return make_agent("slim", venv, hp, seed=seed, reward_modules=[make_reward("task")])


# -- the update is PPO's -------------------------------------------------------------------------
class _Box(gym.Env):
    """Only spaces: SB3's PPO needs an env to build its policy for the test batch."""

    def __init__(self, obs_dim: int, action_space: gym.Space) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        return np.zeros(self.observation_space.shape, np.float32), {}

    def step(self, action):
        return np.zeros(self.observation_space.shape, np.float32), 0.0, False, False, {}


def _copy_into_sb3(agent, policy) -> None:
    actor, critics = agent.actor.net, agent.critics
    with torch.no_grad():
        for i, j in ((0, 0), (2, 2)):
            policy.mlp_extractor.policy_net[j].weight.copy_(actor[i].weight)
            policy.mlp_extractor.policy_net[j].bias.copy_(actor[i].bias)
        policy.action_net.weight.copy_(actor[4].weight)
        policy.action_net.bias.copy_(actor[4].bias)
        policy.log_std.copy_(agent.actor.log_std)
        for layer, j in ((0, 0), (1, 2)):
            policy.mlp_extractor.value_net[j].weight.copy_(critics.weights[layer][0].T)
            policy.mlp_extractor.value_net[j].bias.copy_(critics.biases[layer][0, 0])
        policy.value_net.weight.copy_(critics.weights[2][0].T)
        policy.value_net.bias.copy_(critics.biases[2][0, 0])


def _sb3_grads(policy) -> dict[str, torch.Tensor]:
    g = {"pi0": policy.mlp_extractor.policy_net[0].weight.grad, "pi_out": policy.action_net.weight.grad,
         "log_std": policy.log_std.grad, "vf0": policy.mlp_extractor.value_net[0].weight.grad,
         "vf_out": policy.value_net.weight.grad}
    return {k: v.clone() for k, v in g.items()}


def _slim_grads(agent) -> dict[str, torch.Tensor]:
    return {"pi0": agent.actor.net[0].weight.grad, "pi_out": agent.actor.net[4].weight.grad,
            "log_std": agent.actor.log_std.grad, "vf0": agent.critics.weights[0].grad[0].T,
            "vf_out": agent.critics.weights[2].grad[0].T}


def test_one_stream_of_weight_1_is_sb3_ppo_on_the_same_batch():
    agent = pendulum_agent(ent_coef=0.01, clip_grad="global", max_grad_norm=1e9)
    in_dim, batch = agent.obs_dim + agent.cfg.skill_dim, 48
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(batch, in_dim, generator=gen)
    actions = torch.randn(batch, 1, generator=gen)
    with torch.no_grad():
        log_prob, _ = agent.actor.log_prob_entropy(x, actions)
    old_log_probs = log_prob + 0.3 * torch.randn(batch, generator=gen)  # ratios away from 1: clipping matters
    advantages = 3.0 * torch.randn(batch, 1, generator=gen) + 1.0
    returns = torch.randn(batch, 1, generator=gen)

    model = PPO("MlpPolicy", _Box(in_dim, agent.env.action_space), n_steps=batch, batch_size=batch, n_epochs=1,
                learning_rate=agent.cfg.learning_rate, ent_coef=0.01, vf_coef=0.5, max_grad_norm=1e9, seed=0, device="cpu")
    model.set_logger(configure(None, [""]))
    _copy_into_sb3(agent, model.policy)
    buf = model.rollout_buffer
    buf.reset()
    buf.observations[:] = x.numpy()[:, None]
    buf.actions[:] = actions.numpy()[:, None]
    buf.log_probs[:] = old_log_probs.numpy()[:, None]
    buf.advantages[:] = advantages.numpy()
    buf.returns[:] = returns.numpy()
    buf.values[:] = returns.numpy()
    buf.full, buf.pos = True, batch
    model.train()
    sb3_loss = model.logger.name_to_value["train/loss"]

    loss, _ = agent.loss(x, actions, old_log_probs, advantages, returns, agent.weights)
    agent.optimizer.zero_grad()
    loss.backward()
    assert loss.item() == pytest.approx(sb3_loss, rel=1e-5, abs=1e-6)
    ours, theirs = _slim_grads(agent), _sb3_grads(model.policy)
    for name in ours:
        assert torch.allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-6), name
    agent.optimizer.step()  # the same Adam step (eps 1e-5) lands on the same weights
    assert torch.allclose(agent.actor.net[0].weight, model.policy.mlp_extractor.policy_net[0].weight, atol=1e-6)
    assert torch.allclose(agent.critics.weights[0][0].T, model.policy.mlp_extractor.value_net[0].weight, atol=1e-6)


def test_gae_per_stream_matches_sb3_rollout_buffer():
    rng = np.random.default_rng(0)
    steps, n_envs = 20, 3
    rewards, values = rng.normal(size=(steps, n_envs, 2)).astype(np.float32), rng.normal(size=(steps, n_envs, 2)).astype(np.float32)
    starts = (rng.random((steps, n_envs)) < 0.2).astype(np.float32)
    last_values, last_dones = rng.normal(size=(n_envs, 2)).astype(np.float32), np.array([0.0, 1.0, 0.0], np.float32)
    gammas, lambdas = np.array([0.99, 0.8], np.float32), np.array([0.95, 0.5], np.float32)
    adv, ret = gae(rewards, values, starts, last_values, last_dones, gammas, lambdas)
    space = gym.spaces.Box(-1, 1, (1,))
    for k in range(2):
        buf = RolloutBuffer(steps, space, space, gamma=float(gammas[k]), gae_lambda=float(lambdas[k]), n_envs=n_envs)
        buf.rewards[:], buf.values[:], buf.episode_starts[:] = rewards[..., k], values[..., k], starts
        buf.compute_returns_and_advantage(torch.as_tensor(last_values[:, k]), last_dones)
        np.testing.assert_allclose(adv[..., k], buf.advantages, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ret[..., k], buf.returns, rtol=1e-5, atol=1e-5)


# -- the mix ---------------------------------------------------------------------------------------
def _streams(rng: np.random.Generator, scale: float) -> tuple[np.ndarray, np.ndarray]:
    rewards = rng.normal(size=(64, 2, 3)).astype(np.float32)
    values = rng.normal(size=(64, 2, 3)).astype(np.float32)
    rewards[..., 1] *= scale
    values[..., 1] *= scale  # a critic that has learned its stream's scale
    return rewards, values


def test_multiplying_one_stream_by_1000_leaves_the_combined_advantage_unchanged():
    weights = torch.tensor([1.0, 0.5, 2.0])
    gammas, lambdas = np.array([0.99, 0.9, 0.95], np.float32), np.full(3, 0.95, np.float32)
    mixed = []
    for scale in (1.0, 1000.0):
        rewards, values = _streams(np.random.default_rng(1), scale)
        starts = np.zeros((64, 2), np.float32)
        adv, _ = gae(rewards, values, starts, values[-1] * 0, np.zeros(2, np.float32), gammas, lambdas)
        mixed.append(combined_advantage(torch.as_tensor(adv.reshape(-1, 3)), weights))
    assert torch.allclose(mixed[0], mixed[1], atol=1e-4)
    # one critic on the weighted sum (the baseline) is not scale-free: the big stream takes over
    summed = []
    for scale in (1.0, 1000.0):
        rewards, values = _streams(np.random.default_rng(1), scale)
        r, v = rewards @ weights.numpy()[:, None], values @ weights.numpy()[:, None]
        adv, _ = gae(r, v, np.zeros((64, 2), np.float32), v[-1] * 0, np.zeros(2, np.float32), gammas[:1], lambdas[:1])
        summed.append(combined_advantage(torch.as_tensor(adv.reshape(-1, 1)), torch.ones(1)))
    assert not torch.allclose(summed[0], summed[1], atol=0.1)


def test_each_normalised_stream_has_mean_0_and_std_1():
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(256, 3, generator=gen) * torch.tensor([0.01, 1.0, 1000.0]) + torch.tensor([5.0, -2.0, 300.0])
    norm = normalize_per_stream(raw)
    assert torch.allclose(norm.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(norm.std(0), torch.ones(3), atol=1e-4)


# -- checkpoints -----------------------------------------------------------------------------------
def test_checkpoint_restores_every_critic_the_skill_sampler_and_the_discriminator():
    agent = pendulum_agent(seed=0, weights={"task": 1.0, "diayn": 0.5})
    agent.learn(128, NoHooks())
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)  # what a run folder loads
    other = pendulum_agent(seed=7, weights={"task": 1.0, "diayn": 0.5})
    disc = lambda a: a.modules["diayn"].nets["discriminator"][0].weight  # noqa: E731
    assert len(agent.critics.weights[0]) == 2  # one critic per stream
    assert not torch.equal(agent.critics.weights[0], other.critics.weights[0])
    other.learn(64, NoHooks())
    assert not torch.equal(disc(agent), disc(other))
    other.load_state_dict(state)
    for mine, theirs in zip(agent.critics.parameters(), other.critics.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    for mine, theirs in zip(agent.actor.parameters(), other.actor.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    assert torch.equal(disc(agent), disc(other))
    assert other.num_timesteps == agent.num_timesteps == 128
    np.testing.assert_array_equal(agent.sample_skills(16, agent.skill_gen), other.sample_skills(16, other.skill_gen))
    assert other.optimizer.state_dict()["state"][0]["step"] == agent.optimizer.state_dict()["state"][0]["step"]


def test_continuous_skills_and_the_summed_baseline_train():
    for hp, name in (({"skill_type": "continuous", "skill_dim": 2}, "slim"), ({}, "slim_summed")):
        venv = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
        agent = make_agent(name, venv, {"weights": {"task": 1.0}, "n_steps": 16, "batch_size": 16, "n_epochs": 1, **hp},
                           seed=0, reward_modules=[make_reward("task")])
        agent.learn(64, NoHooks())
        actions, skills = agent.predict(venv.reset(), episode_start=np.ones(2, bool))
        assert actions.shape == (2, 1) and skills.shape == (2, agent.cfg.skill_dim)
        assert len(agent.critics.weights[0]) == 1  # one stream: one critic either way
        assert (agent.cfg.critic == "summed") == (name == "slim_summed")


# -- bad input -------------------------------------------------------------------------------------
def test_an_unknown_stream_is_named_with_the_valid_ones():
    venv = make_vec_env("selfgym/PlayTable-v0", n_envs=1, seed=0)
    with pytest.raises(ValueError) as err:
        make_agent("slim", venv, {"weights": {"diayn": 1.0, "reachh": 1.0}}, seed=0)
    message = str(err.value)
    assert "'reachh'" in message and "safety" in message and "diayn" in message
    with pytest.raises(ValueError, match="skill_type: categorical"):  # DIAYN reads categorical skills only
        make_agent("slim", venv, {"weights": {"diayn": 1.0}, "skill_type": "continuous"}, seed=0)
    venv.close()


@pytest.mark.parametrize(("weights", "fragment"), [
    ("{diayn: .nan, safety: 1.0}", "NaN"), ("{diayn: -1.0, safety: 1.0}", "'diayn'"), ("{safety: 1.0}", "'rnd'")])
def test_a_bad_weight_is_refused_before_any_run_folder(run_cli, tmp_path: Path, weights: str, fragment: str):
    conf = tmp_path / "slim.yml"
    conf.write_text(f"selfgym/PlayTable-v0:\n  weights: {weights}\n")
    result = run_cli("train.py", "--env", "selfgym/PlayTable-v0", "--agent", "slim", "--reward", "rnd",
                     "-n", "64", "-conf", str(conf))
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "logs").exists()


def test_check_config_refuses_nan_negative_and_missing_weights():
    for weights, names in (({"diayn": math.nan}, []), ({"diayn": -0.1}, []), ({"diayn": 1.0}, ["rnd"]), ({}, [])):
        with pytest.raises(ValueError, match="slim"):
            SlimAgent.check_config({"weights": weights}, names)
    SlimAgent.check_config({"weights": {"diayn": 0.0, "rnd": 2.0}}, ["rnd"])  # 0 logs a stream only


# -- PlayTable's reach stream ------------------------------------------------------------------------
def test_object_reach_is_minus_the_distance_from_the_hand_to_the_nearer_block():
    obs = np.zeros((2, 37 + 8), np.float32)  # state, then a skill one-hot
    obs[:, 0:3] = [0.4, 0.0, 0.3]  # end effector
    obs[0, 15 + 8:15 + 11] = [0.4, 0.0, 0.0]  # long block 0.3 m below the hand
    obs[0, 15 + 15:15 + 18] = [0.4, 0.1, 0.3]  # cube 0.1 m to the side: the nearer
    obs[1, 15 + 8:15 + 11] = [0.4, 2.0, 0.3]  # both far: clipped at max_distance
    obs[1, 15 + 15:15 + 18] = [0.4, -2.0, 0.3]
    module = make_reward("object_reach:max_distance=0.5")
    batch = TransitionBatch(obs=obs, actions=np.zeros((2, 7)), next_obs=obs, rewards=np.zeros(2), dones=np.zeros(2))
    np.testing.assert_allclose(module(batch), [-0.1, -0.5], atol=1e-6)


# -- skill metrics -----------------------------------------------------------------------------------
class _PushEnv:
    """A one-env VecEnv stand-in with PlayTable's state layout: each step moves the cube 5 cm along x
    times the action; action 2 also lifts it 2.5 cm with the hand on it, and closes the gripper
    on it in the episode from seed 0 only. Episodes are two steps; a reset puts the cube back."""

    observation_space = gym.spaces.Box(-10, 10, (37,), np.float32)

    def seed(self, seed):
        self.start_y = 0.01 * seed

    def reset(self):
        self.obs, self.t = np.zeros((1, 37), np.float32), 0
        self.obs[0, 6] = 0.08  # gripper open
        self.obs[0, 15 + 16] = self.start_y  # cube y
        return self.obs.copy()

    def step(self, action):
        cube = slice(15 + 15, 15 + 18)
        self.obs[0, cube.start] += 0.05 * float(action[0])
        if action[0] >= 2:
            self.obs[0, cube.stop - 1] += 0.025
            self.obs[0, 0:3] = self.obs[0, cube]
            self.obs[0, 6] = 0.045 if self.start_y == 0 else 0.08
        self.t += 1
        info = {"reward_components": {"safety": -1.0 if action[0] > 0 else 0.0}}
        if self.t < 2:
            return self.obs.copy(), np.zeros(1), np.zeros(1, bool), [info]
        info["terminal_observation"] = self.obs[0].copy()
        return self.reset(), np.zeros(1), np.ones(1, bool), [info]


class _SkillAgent:
    eval_skill = None

    def skill_choices(self):
        return [0, 1, 2]

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return np.array([float(self.eval_skill)]), state


def test_skill_metrics_measure_what_each_skill_does_to_the_blocks(tmp_path: Path):
    agent = _SkillAgent()
    out = skill_metrics.evaluate_skills(agent, _PushEnv(), episodes_per_skill=2)
    metrics = out["metrics"]
    finals = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.2, 0.0, 0.05]])  # the cube's move per skill
    assert [s["displacement"] for s in out["per_skill"]] == pytest.approx(np.linalg.norm(finals, axis=1), abs=1e-6)
    assert metrics["skill_object_displacement"]["mean"] == pytest.approx(np.linalg.norm(finals, axis=1).mean(), abs=1e-6)
    assert metrics["skills_moving_object_5cm"]["mean"] == pytest.approx(2 / 3)  # 10 and 20 cm, not 0
    pairs = [np.linalg.norm(finals[i] - finals[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert metrics["skill_final_position_diversity"]["mean"] == pytest.approx(np.mean(pairs), abs=1e-6)
    assert metrics["safety_violations_per_episode"]["mean"] == pytest.approx((0 + 2 + 2) / 3)
    assert [s["grasp_rate"] for s in out["per_skill"]] == [0.0, 0.0, 0.5]  # skill 2 grasps from seed 0 only
    assert metrics["skill_grasp_rate"]["mean"] == pytest.approx(0.5 / 3)
    assert metrics["skill_grasp_consistency"]["mean"] == pytest.approx(0.5)
    assert agent.eval_skill is None
    assert skill_metrics.draw(out, tmp_path / "skills.png").stat().st_size > 0


def test_train_then_evaluate_a_slim_run_reports_skill_metrics(run_cli, tmp_path: Path):
    result = run_cli("train.py", "--env", "selfgym/PlayTable-v0", "--agent", "slim", "--reward", "diayn:n_skills=3", "-n", "256",
                     "--n-envs", "2", "-params", "n_steps:64", "n_epochs:1", "skill_dim:3", "--no-final-eval", "--seed", "1")
    assert result.returncode == 0, result.stderr
    run = tmp_path / "logs" / "slim" / "selfgym-PlayTable-v0_1"
    header = (run / "metrics.csv").read_text().splitlines()[0]
    for column in ("stream_diayn_reward_mean", "stream_object_reach_value_loss", "stream_safety_reward_mean", "reward_diayn_loss"):
        assert column in header, header
    result = run_cli("evaluate.py", "--run", str(run), "-n", "1")
    assert result.returncode == 0, result.stderr
    assert "skills_moving_object_5cm" in result.stdout
    evaluation = json.loads((run / "eval.json").read_text())
    assert len(evaluation["skills"]["per_skill"]) == 3 and (run / "skills.png").exists()


def test_diayn_on_an_object_centric_slice_ignores_the_arm():
    module = make_reward("diayn:n_skills=3,obs_slice=[15,37]")
    module.setup(gym.spaces.Box(-10, 10, (37 + 3,), np.float32), gym.spaces.Box(-1, 1, (7,), np.float32))
    assert module.nets["discriminator"][0].in_features == 22  # PlayTable's scene state only
    obs = np.zeros((4, 40), np.float32)
    obs[:, 37 + 1] = 1.0  # skill 1
    moved_arm = obs.copy()
    moved_arm[:, :15] = 0.3
    rewards = [module(TransitionBatch(obs=o, actions=np.zeros((4, 7)), next_obs=o, rewards=np.zeros(4), dones=np.zeros(4)))
               for o in (obs, moved_arm)]
    np.testing.assert_array_equal(rewards[0], rewards[1])
    with pytest.raises(ValueError, match="obs_slice"):
        make_reward("diayn:n_skills=3,obs_slice=[15,45]").setup(gym.spaces.Box(-10, 10, (40,), np.float32), None)
