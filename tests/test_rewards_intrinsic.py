"""Each intrinsic module does what its paper says, checked in a way that can fail."""

from __future__ import annotations

import io
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from selfgym.rewards import make_reward
from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.intrinsic.diayn import DIAYN, SkillWrapper
from selfgym.rewards.intrinsic.icm import ICM
from selfgym.rewards.intrinsic.rnd import RND
from selfgym.rewards.intrinsic.simhash import SimHashCount

torch.set_num_threads(1)


def batch_of(obs, next_obs=None, actions=None, **extras) -> TransitionBatch:
    n = len(obs)
    return TransitionBatch(
        obs=obs, actions=np.zeros((n, 1), np.float32) if actions is None else actions,
        next_obs=obs if next_obs is None else next_obs,
        rewards=np.zeros(n, np.float32), dones=np.zeros(n, bool), extras=extras,
    )


def test_rnd_bonus_falls_on_familiar_states_and_stays_high_on_new_ones():
    rng = np.random.default_rng(0)
    familiar = rng.normal(0.0, 1.0, (512, 4)).astype(np.float32)
    novel = rng.normal(3.0, 1.0, (512, 4)).astype(np.float32)
    rnd = RND(hidden=(64, 64), embed_dim=16, lr=3e-3, seed=0)
    rnd.update(batch_of(familiar))  # sets the observation statistics from the familiar states
    before = rnd(batch_of(familiar)).mean()
    for _ in range(30):
        rnd.update(batch_of(rng.normal(0.0, 1.0, (256, 4)).astype(np.float32)))
    after_familiar = rnd(batch_of(familiar)).mean()
    after_novel = rnd(batch_of(novel)).mean()
    assert after_familiar < 0.3 * before, (before, after_familiar)
    assert after_novel > 5 * after_familiar, (after_novel, after_familiar)


def _icm_data(rng, n, predictable: bool):
    obs = rng.normal(0.0, 1.0, (n, 4)).astype(np.float32)
    actions = rng.integers(0, 4, n)
    if predictable:
        next_obs = obs + 0.5 * np.eye(4, dtype=np.float32)[actions]
    else:
        next_obs = rng.normal(0.0, 1.0, (n, 4)).astype(np.float32)
    return batch_of(obs, next_obs, actions)


def test_icm_forward_error_falls_on_predictable_transitions():
    rng = np.random.default_rng(0)
    icm = ICM(feature_dim=16, hidden=(64,), lr=3e-3, seed=0)
    icm.setup(gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), gym.spaces.Discrete(4))
    held_out = _icm_data(rng, 512, predictable=True)
    noisy = _icm_data(rng, 512, predictable=False)
    before = icm(held_out).mean()
    metrics = {}
    for _ in range(120):
        metrics = icm.update(_icm_data(rng, 256, predictable=True))
    after = icm(held_out).mean()
    assert after < 0.3 * before, (before, after)
    # the model learned the dynamics, not to output small errors everywhere
    assert icm(noisy).mean() > 3 * after
    assert metrics["inverse_loss"] < 0.5 * math.log(4)  # the inverse model reads the action off (s, s')


MINIGRID_VIEW = gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)


def _minigrid_like_batch(n: int = 1000) -> TransitionBatch:
    """A rollout-sized batch of 7x7x3 views (object, colour, state ids), not a multiple of 256 rows."""
    rng = np.random.default_rng(3)
    obs = rng.integers(0, 11, (n + 1, 7, 7, 3), dtype=np.uint8)
    return batch_of(obs[:-1], next_obs=obs[1:], actions=rng.integers(0, 7, n))


def test_rnd_compute_in_chunks_equals_one_full_batch_pass():
    """compute runs the networks batch_size rows at a time (for speed); the bonus is that of one pass."""
    rnd = RND(seed=0)
    rnd.setup(MINIGRID_VIEW, gym.spaces.Discrete(7))
    batch = _minigrid_like_batch()
    rnd.update(batch)
    with torch.no_grad():
        full = rnd._errors(rnd._inputs(batch.next_obs)).numpy()
    chunked = rnd(batch)
    np.testing.assert_allclose(chunked, full, rtol=1e-6, atol=0)
    assert chunked.shape == (len(batch),) and np.all(chunked > 0)


def test_icm_compute_in_chunks_equals_the_forward_error_of_one_full_batch_pass():
    icm = ICM(seed=0)
    icm.setup(MINIGRID_VIEW, gym.spaces.Discrete(7))
    batch = _minigrid_like_batch()
    icm.update(batch)
    with torch.no_grad():
        full = icm._losses(*icm._tensors(batch))[0].numpy()
    np.testing.assert_allclose(icm(batch), full, rtol=1e-6, atol=0)


@pytest.mark.parametrize("cls,kwargs", [(RND, {"batch_size": 0}), (RND, {"epochs": 0}), (ICM, {"batch_size": 0})])
def test_rnd_and_icm_refuse_empty_minibatches_or_no_epochs(cls, kwargs):
    with pytest.raises(ValueError, match="epochs and batch_size must be >= 1, got"):
        cls(**kwargs)


def test_icm_needs_action_space_for_discrete_actions():
    icm = ICM()
    with pytest.raises(ValueError, match="'icm'.*action space"):
        icm(batch_of(np.zeros((3, 2), np.float32), actions=np.array([0, 1, 0])))


def _diayn_batch(rng, n, n_skills, skill_dependent: bool):
    z = rng.integers(0, n_skills, n)
    centres = np.array([[2, 0], [-2, 0], [0, 2], [0, -2]], np.float32)[:n_skills]
    state = (centres[z] if skill_dependent else 0.0) + rng.normal(0, 0.5, (n, 2)).astype(np.float32)
    obs = np.concatenate([state, np.eye(n_skills, dtype=np.float32)[z]], axis=1)
    return batch_of(obs)


@pytest.mark.parametrize("skill_dependent", [True, False])
def test_diayn_reward_rises_as_discriminator_tells_skills_apart(skill_dependent):
    rng = np.random.default_rng(0)
    diayn = DIAYN(n_skills=4, hidden=(64,), lr=3e-3, seed=0)
    test = _diayn_batch(rng, 1024, 4, skill_dependent)
    before = diayn(test).mean()
    for _ in range(100):
        metrics = diayn.update(_diayn_batch(rng, 256, 4, skill_dependent))
    after = diayn(test).mean()
    assert abs(before) < 0.3  # log q(z|s) - log p(z) ~ 0 while guessing
    if skill_dependent:
        assert after > 0.8 * math.log(4), after
        assert metrics["accuracy"] > 0.9
    else:  # states carry no skill information: nothing to reward
        assert after < 0.15, after


def test_diayn_reads_skill_from_extras_and_rejects_bad_skills():
    diayn = DIAYN(n_skills=3)
    obs = np.zeros((4, 5), np.float32)
    assert diayn(batch_of(obs, skill=np.array([0, 1, 2, 0]))).shape == (4,)
    with pytest.raises(ValueError, match="'diayn'.*skills"):
        diayn(batch_of(obs, skill=np.array([0, 1, 5, 0])))


def test_skill_wrapper_appends_one_hot_skill_and_is_seeded():
    env = SkillWrapper(gym.make("CartPole-v1"), n_skills=5)
    obs, info = env.reset(seed=3)
    assert obs.shape == (4 + 5,) and env.observation_space.contains(obs)
    assert obs[4:].sum() == 1.0 and obs[4 + info["skill"]] == 1.0
    skills = [env.reset(seed=s)[1]["skill"] for s in range(30)]
    assert len(set(skills)) == 5
    assert skills == [env.reset(seed=s)[1]["skill"] for s in range(30)]
    fixed = SkillWrapper(gym.make("CartPole-v1"), n_skills=5, skill=2)
    assert fixed.reset(seed=0)[1]["skill"] == 2
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(SkillWrapper(gym.make("Pendulum-v1").unwrapped, n_skills=3), skip_render_check=True)
    sb3_check_env(SkillWrapper(gym.make("Pendulum-v1"), n_skills=3), warn=False)


def test_simhash_bonus_is_one_over_sqrt_visits_and_distinct_states_hash_apart():
    space = gym.spaces.Box(np.array([-1.2, -0.07], np.float32), np.array([0.6, 0.07], np.float32))
    sh = SimHashCount(k=32, seed=0)
    sh.setup(space, gym.spaces.Discrete(3))
    a = np.array([[-0.5, 0.0]], np.float32)
    b = np.array([[0.5, 0.06]], np.float32)
    assert sh.codes(a)[0] != sh.codes(b)[0]
    bonuses = []
    for _ in range(9):
        sh.watch(batch_of(a))
        bonuses.append(float(sh(batch_of(a))[0]))
    assert bonuses == pytest.approx([1 / math.sqrt(n) for n in range(1, 10)], rel=1e-6)
    assert float(sh(batch_of(b))[0]) == 1.0  # unseen state: full bonus
    # nearby states share a code; over a grid, many distinct cells exist
    grid = np.stack(np.meshgrid(np.linspace(-1.2, 0.6, 40), np.linspace(-0.07, 0.07, 40)), -1).reshape(-1, 2)
    assert len(np.unique(sh.codes(grid.astype(np.float32)))) > 100
    # the paper's origin-centred SimHash only sees angles: far fewer cells on a 2-D state
    plain = SimHashCount(k=32, offsets=False, seed=0)
    plain.setup(space, gym.spaces.Discrete(3))
    assert len(np.unique(plain.codes(grid.astype(np.float32)))) <= 64


@pytest.mark.parametrize("spec", ["rnd:hidden=[32,32]", "icm:hidden=[32]", "diayn:n_skills=3", "simhash:k=16"])
def test_state_round_trips_through_torch_save_weights_only(spec):
    rng = np.random.default_rng(0)
    obs_space = gym.spaces.Box(-1, 1, (6,), np.float32)
    module = make_reward(spec + ",normalize=True")
    module.setup(obs_space, gym.spaces.Discrete(3))
    obs = rng.uniform(-1, 1, (64, 6)).astype(np.float32)
    obs[:, 3:] = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]
    batch = batch_of(obs, rng.uniform(-1, 1, (64, 6)).astype(np.float32), rng.integers(0, 3, 64))
    batch.next_obs[:, 3:] = obs[:, 3:]
    for _ in range(3):
        module.watch(batch)
        module(batch)
        module.update(batch)
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    clone = make_reward(spec + ",normalize=True")
    clone.setup(obs_space, gym.spaces.Discrete(3))
    clone.load_state_dict(state)
    np.testing.assert_allclose(clone(batch), module(batch), rtol=1e-5)
    # the optimiser state came back too: one more identical update gives identical rewards
    module.update(batch), clone.update(batch)
    np.testing.assert_allclose(clone.compute(batch), module.compute(batch), rtol=1e-4, atol=1e-7)
