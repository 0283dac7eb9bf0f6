"""E3B, RE3, RIDE, NGU, Disagreement, pseudo-counts and the shared encoder: bonuses fall on
revisited states, episodic memory clears at episode ends per env, 8 envs give what 8 single envs
give, image and vector observations both work, state round trips, bad spaces refused."""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch

from selfgym.rewards import make_reward
from selfgym.rewards.base import TransitionBatch
from selfgym.rewards.intrinsic.e3b import E3B
from selfgym.rewards.intrinsic.encoders import layout_for
from selfgym.rewards.intrinsic.re3 import RE3

torch.set_num_threads(1)

VECTOR = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
ACTIONS = gym.spaces.Discrete(3)


def rollout(next_obs, dones=None, n_envs=1, obs=None, actions=None) -> TransitionBatch:
    """A time-major batch (index = t * n_envs + env)."""
    n = len(next(iter(next_obs.values())) if isinstance(next_obs, dict) else next_obs)
    return TransitionBatch(
        obs=next_obs if obs is None else obs, next_obs=next_obs,
        actions=np.zeros(n, np.int64) if actions is None else actions,
        rewards=np.zeros(n, np.float32), dones=np.zeros(n, bool) if dones is None else np.asarray(dones, bool),
        n_envs=n_envs,
    )


def e3b(**kwargs) -> E3B:
    module = E3B(hidden=(32,), feature_dim=8, seed=0, **kwargs)
    module.setup(VECTOR, ACTIONS)
    return module


STATE_A = np.array([0.5, -0.2, 0.1, 0.9], np.float32)
STATE_B = np.array([-0.7, 0.4, -0.9, 0.0], np.float32)


def test_e3b_bonus_falls_as_a_state_is_revisited_as_sherman_morrison_says():
    module = e3b()
    bonuses = module(rollout(np.stack([STATE_A] * 5 + [STATE_B])))
    phi = module.nets["encoder"](torch.as_tensor(STATE_A[None]))[0].detach()
    q = float(phi @ phi) / module.ridge  # first visit: |phi|^2 / lambda
    expected = [q / (1 + (n - 1) * q) for n in range(1, 6)]
    np.testing.assert_allclose(bonuses[:5], expected, rtol=1e-4)
    assert np.all(np.diff(bonuses[:5]) < 0)
    assert bonuses[5] > 3 * bonuses[4]  # a new state in the same episode is still novel


def test_e3b_memory_clears_at_episode_ends_per_env_and_carries_over_rollouts():
    module = e3b(lr=0.0)  # phi stays fixed through update(), so bonuses compare across rollouts
    fresh = float(module(rollout(STATE_A[None]))[0])
    # one env: the third step ends the episode, so the fourth visit is a first visit again
    bonuses = module(rollout(np.stack([STATE_A] * 4), dones=[0, 0, 1, 0]))
    assert bonuses[3] == pytest.approx(fresh, rel=1e-5) and bonuses[2] < 0.5 * fresh
    # two envs, time-major: only env 0's episode ends after step 0
    two = module(rollout(np.stack([STATE_A] * 4), dones=[1, 0, 0, 0], n_envs=2))
    assert two[2] == pytest.approx(fresh, rel=1e-5) and two[3] < 0.5 * fresh
    # the memory carries from one rollout to the next until the episode ends
    first = rollout(np.stack([STATE_A] * 2))
    module(first)
    module.update(first)
    assert module(rollout(STATE_A[None]))[0] == pytest.approx(bonuses[2], rel=1e-4)  # a third visit
    ended = rollout(np.stack([STATE_A] * 2), dones=[0, 1])
    module.update(ended)
    assert module(rollout(STATE_A[None]))[0] == pytest.approx(fresh, rel=1e-5)


def test_e3b_on_8_envs_equals_8_single_envs_and_refuses_shuffled_batches():
    rng = np.random.default_rng(0)
    steps, n_envs = 6, 8
    obs = rng.uniform(-1, 1, (steps * n_envs, 4)).astype(np.float32)
    dones = rng.random(steps * n_envs) < 0.2
    together = e3b()(rollout(obs, dones, n_envs=n_envs)).reshape(steps, n_envs)
    for env in range(n_envs):
        alone = e3b()(rollout(obs.reshape(steps, n_envs, 4)[:, env], dones.reshape(steps, n_envs)[:, env]))
        np.testing.assert_allclose(alone, together[:, env], rtol=1e-5)
    shuffled = rollout(obs)
    shuffled.n_envs = None
    with pytest.raises(ValueError, match="'e3b'.*time-ordered.*on-policy"):
        e3b()(shuffled)


def test_e3b_inverse_dynamics_learns_the_action():
    rng = np.random.default_rng(0)
    module = e3b(lr=3e-3)
    first = last = None
    for _ in range(150):
        obs = rng.uniform(-1, 1, (128, 4)).astype(np.float32)
        actions = rng.integers(0, 3, 128)
        nxt = obs + 0.5 * np.eye(4, dtype=np.float32)[actions]
        metrics = module.update(rollout(nxt, obs=obs, actions=actions))
        first = metrics["inverse_loss"] if first is None else first
        last = metrics["inverse_loss"]
    assert last < 0.3 * first, (first, last)


def test_re3_bonus_is_low_on_a_state_the_batch_visits_often():
    rng = np.random.default_rng(0)
    states = np.concatenate([np.repeat(STATE_A[None], 10, axis=0), rng.uniform(-1, 1, (20, 4)).astype(np.float32)])
    module = RE3(hidden=(32,), seed=0)
    module.setup(VECTOR, ACTIONS)
    bonuses = module(rollout(states))
    assert np.all(bonuses[:10] < 1e-4)  # k=3 neighbours at distance 0
    assert np.all(bonuses[10:] > 0.05)
    assert module.weight(0) == 0.05 and module.weight(100_000) == pytest.approx(0.05 * (1 - 1e-5) ** 100_000)
    with pytest.raises(ValueError, match="'re3'.*no 3-th neighbour"):
        module(rollout(states[:3]))


ALL_ENCODED = ["rnd", "icm", "e3b", "re3", "ride", "ngu", "disagreement", "pseudo_counts"]
IMAGE_HWC = gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)  # MiniGrid's view: the small CNN
IMAGE_CHW = gym.spaces.Box(0, 255, (3, 40, 40), np.uint8)  # the Nature CNN


@pytest.mark.parametrize("name", ALL_ENCODED)
@pytest.mark.parametrize("space", [VECTOR, IMAGE_HWC, IMAGE_CHW, gym.spaces.Discrete(5),
                                   gym.spaces.Dict({"image": IMAGE_HWC, "direction": gym.spaces.Discrete(4)})],
                         ids=["vector", "image_hwc", "image_chw", "discrete", "dict"])
def test_modules_work_on_vector_and_image_observations_and_round_trip(name, space):
    key = ",obs_key=image" if isinstance(space, gym.spaces.Dict) else ""
    spec = f"{name}:hidden=[32]{key},normalize=True"
    module = make_reward(spec)
    module.setup(space, ACTIONS)
    if isinstance(space, gym.spaces.Box) and space.dtype == np.uint8:
        assert any(isinstance(m, torch.nn.Conv2d) for m in module.nets.modules())
    space.seed(0)
    samples = [space.sample() for _ in range(17)]
    stack = ({k: np.stack([s[k] for s in samples]) for k in space.spaces} if isinstance(space, gym.spaces.Dict)
             else np.stack([np.asarray(s) for s in samples]))
    row = (lambda i: {k: v[i : i + 16] for k, v in stack.items()}) if isinstance(stack, dict) else (lambda i: stack[i : i + 16])
    batch = rollout(row(1), obs=row(0), actions=np.arange(16) % 3, dones=np.arange(16) % 7 == 6)
    for _ in range(2):
        assert module(batch).shape == (16,)
        module.update(batch)
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    buf.seek(0)
    clone = make_reward(spec)
    clone.setup(space, ACTIONS)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    np.testing.assert_allclose(clone(batch), module(batch), rtol=1e-5, atol=1e-7)


def test_rnd_bonus_falls_on_a_familiar_image():
    rng = np.random.default_rng(0)
    familiar = rng.integers(0, 256, (1, 7, 7, 3), dtype=np.uint8)
    novel = rng.integers(0, 256, (8, 7, 7, 3), dtype=np.uint8)
    rnd = make_reward("rnd:hidden=[64],lr=3e-3")
    rnd.setup(IMAGE_HWC, ACTIONS)
    seen = rollout(np.repeat(familiar, 64, axis=0))
    rnd.update(rollout(np.concatenate([np.repeat(familiar, 8, axis=0), novel])))  # statistics from both
    before = rnd(seen).mean()
    for _ in range(40):
        rnd.update(seen)
    assert rnd(seen).mean() < 0.2 * before
    assert rnd(rollout(novel)).mean() > 3 * rnd(seen).mean()


@pytest.mark.parametrize("name", ALL_ENCODED)
@pytest.mark.parametrize("space, needle", [
    (gym.spaces.Text(10), r"Text\(.*obs_key="),
    (gym.spaces.Dict({"image": IMAGE_HWC, "mission": gym.spaces.Text(10)}), r"Dict\(.*needs obs_key=.*\['image', 'mission'\]"),
])
def test_a_space_no_encoder_reads_is_refused_naming_it_and_obs_key(name, space, needle):
    with pytest.raises(ValueError, match=f"'{name}': cannot encode the observation space {needle}"):
        make_reward(name).setup(space, ACTIONS)


def test_layout_reads_channels_first_and_last_images_alike():
    hwc, chw = layout_for(IMAGE_HWC), layout_for(gym.spaces.Box(0, 255, (3, 7, 7), np.uint8))
    assert hwc.shape == chw.shape == (3, 7, 7) and hwc.channels_last and not chw.channels_last
    image = np.random.default_rng(0).integers(0, 256, (2, 7, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(hwc.features(image), chw.features(image.transpose(0, 3, 1, 2)))
    assert hwc.features(image).max() <= 1.0
    with pytest.raises(ValueError, match="obs_key='pos' was given but .* not a Dict"):
        layout_for(VECTOR, obs_key="pos")


# -- RIDE, NGU, pseudo-counts (episodic) and Disagreement ------------------------------------------

EPISODIC = ["ride", "ngu", "pseudo_counts"]
STATE_C = np.array([0.9, 0.9, -0.5, -0.3], np.float32)


def small(name: str, **kwargs):
    module = make_reward((name, {"hidden": [32], "seed": 0, **kwargs}))
    module.setup(VECTOR, ACTIONS)
    return module


def teleports(n: int, dones=None, n_envs: int = 1) -> TransitionBatch:
    """n transitions B -> A: the same impact each time (RIDE), the same next state (counts)."""
    return rollout(np.stack([STATE_A] * n), dones, n_envs, obs=np.stack([STATE_B] * n))


@pytest.mark.parametrize("name", EPISODIC)
def test_episodic_bonus_falls_as_a_state_is_revisited_in_an_episode(name):
    module = small(name)
    # A -> B -> A -> B ... then B -> C: B is the next state 4 times, then C is new
    obs = np.stack([STATE_A, STATE_B] * 4 + [STATE_B])
    next_obs = np.stack([STATE_B, STATE_A] * 4 + [STATE_C])
    bonuses = module(rollout(next_obs, obs=obs))
    to_b = bonuses[0:8:2]
    assert np.all(np.diff(to_b) < 0)
    if name == "ride":  # impact / sqrt(N_ep): the impact of A -> B is the same each time
        np.testing.assert_allclose(to_b / to_b[0], 1 / np.sqrt([1, 2, 3, 4]), rtol=1e-5)
    else:  # kernel count: identical embeddings count 1 each (n <= k), the far ones ~0
        np.testing.assert_allclose(to_b, 1 / (np.sqrt([1, 2, 3, 4]) + module.c), rtol=0.02)
        assert bonuses[8] > 1.5 * to_b[-1]  # C is new in this episode


@pytest.mark.parametrize("name", EPISODIC)
def test_episodic_memory_clears_at_episode_ends_per_env_and_carries_over_rollouts(name):
    module = small(name, lr=0.0)  # phi stays fixed through update(), so bonuses compare across rollouts
    fresh = float(module(teleports(1))[0])
    assert fresh > 0
    # one env: the third step ends the episode, so the fourth visit is a first visit again
    bonuses = module(teleports(4, dones=[0, 0, 1, 0]))
    assert bonuses[3] == pytest.approx(fresh, rel=1e-5) and bonuses[2] < 0.7 * fresh
    # two envs, time-major: only env 0's episode ends after step 0
    two = module(teleports(4, dones=[1, 0, 0, 0], n_envs=2))
    assert two[2] == pytest.approx(fresh, rel=1e-5) and two[3] < 0.75 * fresh
    # the memory carries from one rollout to the next until the episode ends
    first = teleports(2)
    module(first)
    module.update(first)
    assert module(teleports(1))[0] == pytest.approx(bonuses[2], rel=1e-4)  # a third visit
    module.update(teleports(2, dones=[0, 1]))
    assert module(teleports(1))[0] == pytest.approx(fresh, rel=1e-5)
    shuffled = teleports(2)
    shuffled.n_envs = None
    with pytest.raises(ValueError, match=f"'{name}'.*time-ordered.*on-policy"):
        module(shuffled)


@pytest.mark.parametrize("name", EPISODIC + ["disagreement"])
def test_module_on_8_envs_equals_8_single_envs(name):
    rng = np.random.default_rng(0)
    steps, n_envs = 6, 8
    grid = lambda n: rng.integers(0, 3, (n, 4)).astype(np.float32) / 2 - 0.5  # 81 states: revisits happen
    warm_obs = grid(32)
    base = small(name)  # one update, so learned parts (RND statistics for NGU) are not at their start
    base.update(rollout(grid(32), obs=warm_obs, actions=rng.integers(0, 3, 32), dones=np.arange(32) == 31))
    state = base.state_dict()
    obs, next_obs = grid(steps * n_envs), grid(steps * n_envs)
    actions, dones = rng.integers(0, 3, steps * n_envs), rng.random(steps * n_envs) < 0.2
    together = small(name)
    together.load_state_dict(state)
    bonuses = together(rollout(next_obs, dones, n_envs, obs=obs, actions=actions)).reshape(steps, n_envs)
    assert np.ptp(bonuses) > 0
    per_env = lambda x: x.reshape(steps, n_envs, *x.shape[1:])
    for env in range(n_envs):
        alone = small(name)
        alone.load_state_dict(state)
        batch = rollout(per_env(next_obs)[:, env], per_env(dones)[:, env], obs=per_env(obs)[:, env], actions=per_env(actions)[:, env])
        np.testing.assert_allclose(alone(batch), bonuses[:, env], rtol=1e-5, atol=1e-7)


def test_ngu_is_the_episodic_count_times_the_clipped_rnd_factor():
    ngu, counts = small("ngu", lr=3e-3), small("pseudo_counts", lr=3e-3)
    familiar = teleports(64)
    for _ in range(30):
        for module in (ngu, counts):
            module.update(familiar)
    novel = rollout(np.stack([STATE_C, STATE_A, STATE_C]), obs=np.stack([STATE_B] * 3))
    factor = ngu.lifelong(novel).numpy()
    assert np.all((factor >= 1.0) & (factor <= ngu.max_lifelong))
    assert factor[0] > 1.0 and factor[1] == pytest.approx(1.0)  # C is new to the RND; A is not
    np.testing.assert_allclose(ngu(novel), counts(novel) * factor, rtol=1e-5)
    assert ngu.coef == 0.3 and ngu.weight(10**6) == 0.3


def test_disagreement_falls_where_the_ensemble_has_data():
    module = small("disagreement", lr=3e-3)
    seen = rollout(np.repeat(STATE_A[None], 64, axis=0), obs=np.repeat(STATE_B[None], 64, axis=0), actions=np.zeros(64, np.int64))
    before = module(seen).mean()
    for _ in range(60):
        module.update(seen)
    after = module(seen).mean()
    novel = rollout(STATE_C[None], obs=STATE_C[None], actions=np.array([2]))
    assert after < 0.1 * before
    assert module(novel)[0] > 5 * after
    with pytest.raises(ValueError, match="ensemble_size must be >= 2"):
        make_reward("disagreement:ensemble_size=1")
