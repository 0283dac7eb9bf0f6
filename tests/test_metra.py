"""METRA (rewards/intrinsic/metra.py) and named object-centric slices for skill discovery.

The constraint test trains phi on one fixed batch: dual gradient descent must keep every
step of phi at most about 1 while the reward grows, i.e. the constraint is active, not idle.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

from selfgym.agents import make_agent
from selfgym.rewards import TransitionBatch, make_reward
from selfgym.rewards.intrinsic.state_slice import NAMED_SLICES


class NoHooks:
    def on_step(self, num_timesteps: int) -> bool:
        return True


def _batch(n: int = 256, features: int = 6, skill_dim: int = 2, categorical: bool = False, seed: int = 0) -> TransitionBatch:
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, features)).astype(np.float32)
    s_next = (s + 0.1 * rng.normal(size=(n, features))).astype(np.float32)
    z = np.eye(skill_dim, dtype=np.float32)[rng.integers(skill_dim, size=n)] if categorical \
        else rng.normal(size=(n, skill_dim)).astype(np.float32)
    return TransitionBatch(obs=np.concatenate([s, z], 1), actions=np.zeros((n, 1), np.float32),
                           next_obs=np.concatenate([s_next, z], 1), rewards=np.zeros(n, np.float32), dones=np.zeros(n, bool))


def _module(spec: str, features: int = 6, skill_dim: int = 2):
    module = make_reward(spec)
    module.setup(gym.spaces.Box(-np.inf, np.inf, (features + skill_dim,), np.float32), gym.spaces.Box(-1, 1, (1,)))
    return module


def _phi_steps(module, batch: TransitionBatch) -> np.ndarray:
    with torch.no_grad():
        phi = module.nets["phi"]
        s, s_next = (torch.as_tensor(module.obs_features(o)) for o in (batch.obs, batch.next_obs))
        return (phi(s_next) - phi(s)).norm(dim=1).numpy()


def test_the_temporal_distance_constraint_holds_after_training_on_a_fixed_batch():
    batch = _batch(512)
    module = _module("metra:skill_dim=2,skill_type=continuous,hidden=[32,32],epochs=10,batch_size=128,lr=1e-3,dual_lr=1e-2")
    before = float(module(batch).mean())
    for _ in range(30):
        logs = module.update(batch)
    steps = _phi_steps(module, batch)
    assert steps.max() < 1.1 and np.quantile(steps, 0.95) < 1.02  # ||phi(s') - phi(s)|| <= 1, approximately
    assert steps.mean() > 0.5  # phi stretched up to the bound: the constraint is what stops it
    assert float(module(batch).mean()) > before + 0.4
    assert logs["violation"] < 0.15 and 0 < logs["dual_lambda"] < 30


@pytest.mark.parametrize("categorical", [False, True])
def test_the_reward_is_the_phi_step_along_z(categorical: bool):
    skill_dim = 4
    batch = _batch(32, skill_dim=skill_dim, categorical=categorical)
    module = _module(f"metra:skill_dim={skill_dim},skill_type={'categorical' if categorical else 'continuous'},hidden=[16]",
                     skill_dim=skill_dim)
    module.update(batch)  # a trained phi, not the initial one
    with torch.no_grad():
        phi = module.nets["phi"]
        delta = (phi(torch.as_tensor(batch.next_obs[:, :6])) - phi(torch.as_tensor(batch.obs[:, :6]))).numpy()
    z = batch.obs[:, 6:]
    if categorical:  # METRA's zero-centred one-hot: +1 on the skill's axis, -1/(d-1) elsewhere
        z = np.where(z == 1, 1.0, -1.0 / (skill_dim - 1))
    np.testing.assert_allclose(module(batch), (delta * z).sum(1), rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_restores_phi_the_multiplier_and_adam():
    batch = _batch(128)
    spec = "metra:skill_dim=2,skill_type=continuous,hidden=[16],batch_size=64"
    module = _module(spec)
    for _ in range(3):
        module.update(batch)
    state = copy.deepcopy(module.state_dict())
    other = _module(spec.replace("hidden=[16]", "hidden=[16],seed=5"))
    assert not np.allclose(module(batch), other(batch))
    other.load_state_dict(state)
    np.testing.assert_array_equal(module(batch), other(batch))
    assert other.dual_lambda == module.dual_lambda != 30.0
    other._rng = np.random.default_rng(1)
    module._rng = np.random.default_rng(1)
    assert module.update(batch) == other.update(batch)  # Adam's moments came back too
    np.testing.assert_array_equal(module(batch), other(batch))


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="skill_type='gaussian'"):
        make_reward("metra:skill_type=gaussian")
    with pytest.raises(ValueError, match="dual_init"):
        make_reward("metra:dual_init=-1")
    with pytest.raises(ValueError, match="4-D skill vector"):
        make_reward("metra:skill_dim=4").setup(gym.spaces.Box(-1, 1, (3,), np.float32), None)
    with pytest.raises(ValueError, match="past the observation"):
        make_reward("metra:skill_dim=2,obs_slice=objects").setup(gym.spaces.Box(-1, 1, (12,), np.float32), None)


def test_slim_runs_with_a_metra_stream_on_the_objects():
    venv = make_vec_env("selfgym/PlayTable-v0", n_envs=2, seed=0)
    hp = {"weights": {"metra": 1.0, "object_reach": 1.0, "safety": 1.0}, "skill_dim": 4, "n_steps": 64,
          "batch_size": 64, "n_epochs": 1}
    agent = make_agent("slim", venv, hp, seed=0, reward_modules=[make_reward("metra:skill_dim=4,obs_slice=objects,hidden=[32]")])
    assert agent.modules["metra"].nets["phi"][0].in_features == 14  # the two blocks' poses, not the arm
    agent.learn(256, NoHooks())
    assert agent.num_timesteps == 256 and agent.modules["metra"].dual_lambda != 30.0  # it learned from the rollouts
    venv.close()


def test_slim_builds_metra_with_its_own_continuous_skills_and_refuses_a_mismatch():
    venv = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    hp = {"weights": {"task": 1.0, "metra": 1.0}, "skill_type": "continuous", "skill_dim": 3, "n_steps": 32,
          "batch_size": 32, "n_epochs": 1}
    agent = make_agent("slim", venv, hp, seed=0, reward_modules=[make_reward("task")])
    assert (agent.modules["metra"].skill_dim, agent.modules["metra"].skill_type) == (3, "continuous")
    agent.learn(128, NoHooks())
    with pytest.raises(ValueError, match="set skill_dim: 8 and skill_type: categorical"):
        make_agent("slim", venv, hp, seed=0, reward_modules=[make_reward("task"), make_reward("metra")])
    venv.close()


def test_diayn_reads_named_parts_of_playtable_state():
    space = gym.spaces.Box(-10, 10, (37 + 3,), np.float32)
    for spec, width in (("objects", 14), ("cube_pos+long_pos", 6), ("scene", 22), ([15, 37], 22)):
        module = make_reward(("diayn", {"n_skills": 3, "obs_slice": spec}))
        module.setup(space, None)
        assert module.nets["discriminator"][0].in_features == width, spec
    features = make_reward("diayn:n_skills=3,obs_slice=cube_pos").obs_features(np.arange(40, dtype=np.float32)[None])
    np.testing.assert_array_equal(features, [[30, 31, 32]])  # cube position: scene offset 15 + 15..18
    with pytest.raises(ValueError) as err:
        make_reward("diayn:obs_slice=cubes")
    assert "'cubes'" in str(err.value) and "objects" in str(err.value) and "cube_pos" in str(err.value)
    assert set(NAMED_SLICES) >= {"proprio", "scene", "objects", "ee_pos", "cube_pos", "long_pos"}
