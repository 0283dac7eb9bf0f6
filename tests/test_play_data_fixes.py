"""Issue 15's diagnosis (benchmarks/results/play_lmp_diagnosis.md): play keeps its blocks within the
hand's reach, and hindsight goals can lie further ahead than one window."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from selfgym.agents.play_gcbc import PlayGCBCAgent
from selfgym.envs.play_table import collect as collect_module
from selfgym.envs.play_table.dataset import PlayDataset, observation_layout
from selfgym.envs.play_table.observation import SCENE_DIM, SCENE_KEYS

OBS, ACT = 37, 7


def _log(path, lengths):
    """obs[:, 0] = episode id, obs[:, 1] = step within the episode."""
    ids = np.repeat(np.arange(len(lengths)), lengths).astype(np.int32)
    obs = np.zeros((len(ids), OBS), np.float32)
    obs[:, 0], obs[:, 1] = ids, np.concatenate([np.arange(n) for n in lengths])
    np.savez(path, meta=json.dumps({"kind": "play", "obs_layout": observation_layout()}), obs=obs,
             actions=np.zeros((len(ids), ACT), np.float32), scene_states=obs[:, OBS - SCENE_DIM:].copy(), episode_ids=ids)
    return path


def test_goal_horizon_draws_goals_from_window_to_horizon_ahead_in_the_same_episode(tmp_path):
    lengths = [300, 40, 120]
    data = PlayDataset(_log(tmp_path / "p.npz", lengths))
    batch = data.sample_windows(4000, 32, np.random.default_rng(0), goal_horizon=100)
    start_episode, start_step = batch["obs"][:, 0, 0], batch["obs"][:, 0, 1]
    ahead = batch["goal_obs"][:, 1] - start_step
    assert bool((batch["goal_obs"][:, 0] == start_episode).all())  # never past the episode's end
    assert ahead.min() == 32 and ahead.max() == 100  # the whole range is drawn
    long_room = start_step + 100 < lengths[0] - 1
    assert np.ptp(np.bincount(ahead[(start_episode == 0) & long_room].astype(int) - 32)) < 60  # about uniform
    # at the episode's end the goal is its last state
    last = np.array(lengths)[start_episode.astype(int)] - 1
    assert bool((batch["goal_obs"][:, 1] <= last).all())
    # without goal_horizon: the paper's goal, right after the window
    plain = data.sample_windows(64, 32, np.random.default_rng(0))
    assert bool((plain["goal_obs"][:, 1] - plain["obs"][:, 0, 1] == 32).all())


def test_goal_horizon_below_the_window_is_refused(tmp_path):
    data = PlayDataset(_log(tmp_path / "p.npz", [100]))
    with pytest.raises(ValueError, match="goal_horizon must be a whole number >= window"):
        data.sample_windows(4, 32, goal_horizon=16)


class _GoalSpaces:
    observation_space = gym.spaces.Dict({"observation": gym.spaces.Box(-10, 10, (OBS,), np.float32),
                                         "achieved_goal": gym.spaces.Box(-10, 10, (SCENE_DIM,), np.float32),
                                         "desired_goal": gym.spaces.Box(-10, 10, (SCENE_DIM,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (ACT,), np.float32)


def test_offline_agent_trains_on_goals_up_to_its_goal_horizon(tmp_path, monkeypatch):
    path = _log(tmp_path / "p.npz", [400])
    agent = PlayGCBCAgent(_GoalSpaces(), seed=0, dataset=str(path), window=8, goal_horizon=60, hidden=8)
    seen = {}
    original = PlayDataset.sample_windows

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PlayDataset, "sample_windows", spy)
    _, _, goal = agent.sample_batch()
    assert goal.shape == (agent.batch_size, SCENE_DIM) and seen["goal_horizon"] == 60
    assert PlayGCBCAgent(_GoalSpaces(), dataset=str(path), window=8, hidden=8).goal_horizon is None  # the paper's
    with pytest.raises(ValueError, match="goal_horizon must be 0"):
        PlayGCBCAgent(_GoalSpaces(), dataset=str(path), window=32, goal_horizon=10)


def _scene(long_xy=(0.4, 0.0), cube_xy=(0.45, 0.1)) -> np.ndarray:
    s = np.zeros(SCENE_DIM, np.float32)
    s[SCENE_KEYS["long_pos"]] = [*long_xy, 0.02]
    s[SCENE_KEYS["cube_pos"]] = [*cube_xy, 0.02]
    return s


def test_out_of_reach_flags_blocks_the_hand_cannot_reach():
    assert not collect_module.out_of_reach(_scene())
    assert not collect_module.out_of_reach(_scene(cube_xy=(0.65, 0.3)))  # on the shelf
    assert collect_module.out_of_reach(_scene(long_xy=(0.08, -0.49)))  # beside the robot (seen in the 1 h pilot log)
    assert collect_module.out_of_reach(_scene(cube_xy=(-0.12, -0.39)))  # behind it
    assert collect_module.out_of_reach(_scene(long_xy=(0.78, -0.06)))  # past the far edge


def test_play_starts_a_new_episode_when_a_block_goes_out_of_reach(monkeypatch):
    calls = {"n": 0}

    def out_at_step_20(scene_state):
        calls["n"] += 1
        return calls["n"] == 20

    monkeypatch.setattr(collect_module, "out_of_reach", out_at_step_20)
    log = collect_module.collect(60 / (3600 * 30), seed=3, progress=False)  # 60 steps
    ids = log["episode_ids"]
    assert ids[19] == 0 and ids[20] == 1 and ids[-1] == 1  # the step after the block left: a reset


def test_play_sometimes_lifts_a_standing_long_block_instead_of_always_knocking_it_over():
    from selfgym.envs.play_table.primitives import PlayPolicy, expert_plan

    s = _scene()
    s[SCENE_KEYS["long_quat"]] = [0.0, -np.sqrt(0.5), 0.0, np.sqrt(0.5)]  # standing (long axis vertical)
    lift, knock = expert_plan("grasp_upright", s), expert_plan("knock_over", s)
    policy, kinds = PlayPolicy(seed=0), {"lift": 0, "knock": 0}
    for _ in range(400):
        plan = policy._new_plan(s)
        if policy.current == "grasp_place" and plan[:len(knock)] == knock:
            kinds["knock"] += 1
        elif policy.current == "grasp_place" and plan[:len(lift)] == lift:
            kinds["lift"] += 1
            assert plan[-2].grip == 1.0 and abs(plan[-3].pos[2] - (lift[-1].pos[2] - 0.11)) < 1e-6  # set down, let go
    assert kinds["lift"] > 5 and kinds["knock"] > 5, kinds


# -- goal: observation (the paper's s_g is a whole state, the hand included) -----------------------
def test_goal_observation_agent_trains_on_window_end_observations_and_acts_on_the_given_one(tmp_path):
    import torch

    path = _log(tmp_path / "p.npz", [300])
    agent = PlayGCBCAgent(_GoalSpaces(), seed=0, dataset=str(path), window=8, goal="observation", hidden=8)
    assert agent.goal_dim == OBS
    obs, _, goal = agent.sample_batch()
    assert goal.shape == (agent.batch_size, OBS)
    # the goal is the observation right after the window: its step-in-episode float (1) is the window's last + 1
    raw_goal = goal * agent.normalizer.std + agent.normalizer.mean
    raw_obs = obs * agent.normalizer.std + agent.normalizer.mean
    assert torch.allclose(raw_goal[:, 1], raw_obs[:, -1, 1] + 1, atol=1e-3)
    rng = np.random.default_rng(0)
    x = {"observation": rng.normal(size=(1, OBS)).astype(np.float32),
         "desired_goal": rng.normal(size=(1, SCENE_DIM)).astype(np.float32)}
    far, near = rng.normal(size=(1, OBS)).astype(np.float32) * 3, x["observation"].copy()
    act = lambda extra: agent.predict({**x, **extra}, None, np.ones(1, bool), True)[0]  # noqa: E731
    assert not np.allclose(act({"goal_observation": far}), act({"goal_observation": near}))
    # only a scene goal (the goal env's own episodes): the hand part is the current observation's
    fallback = agent.goal_input(x).numpy()
    np.testing.assert_allclose(fallback[0, :OBS - SCENE_DIM], x["observation"][0, :OBS - SCENE_DIM])
    np.testing.assert_allclose(fallback[0, OBS - SCENE_DIM:], x["desired_goal"][0])
    with pytest.raises(ValueError, match="goal must be 'scene' or 'observation'"):
        PlayGCBCAgent(_GoalSpaces(), dataset=str(path), goal="hand")


def test_test_cases_keep_the_demonstrations_last_observation_and_hand_it_to_the_policy(tmp_path):
    from selfgym.envs.play_table.env import PlayTableGoalEnv
    from selfgym.envs.play_table.heldout import TestCases, make_test_cases, run_case

    cases = make_test_cases(1, tasks=("push_red_button",))
    assert cases.goal_observations.shape == (1, OBS)
    np.testing.assert_array_equal(cases.goal_observations[:, OBS - SCENE_DIM:], cases.goals)
    cases.save(tmp_path / "c.npz")
    loaded = TestCases.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(loaded.goal_observations, cases.goal_observations)
    assert loaded.digest() == TestCases(cases.task_ids, cases.seeds, cases.starts, cases.goals).digest()

    class Spy:
        seen: list = []

        def predict(self, obs, state=None, start=None, deterministic=True):
            self.seen.append(obs["goal_observation"].copy())
            return np.zeros((1, ACT), np.float32), state

    env = PlayTableGoalEnv(task="push_red_button")
    spy = Spy()
    run_case(spy, env, cases, 0, max_steps=3)
    env.close()
    assert len(spy.seen) == 3 and np.array_equal(spy.seen[0][0], cases.goal_observations[0])


def test_play_lmp_proposes_plans_from_a_goal_observation(tmp_path):
    from selfgym.agents.play_lmp import PlayLMPAgent

    path = _log(tmp_path / "p.npz", [300])
    agent = PlayLMPAgent(_GoalSpaces(), seed=0, dataset=str(path), window=8, goal="observation", hidden=8, latent_dim=4)
    loss, numbers = agent.loss(*agent.sample_batch())
    assert np.isfinite(numbers["kl"]) and np.isfinite(float(loss))
    x = {"observation": np.zeros((2, OBS), np.float32), "desired_goal": np.zeros((2, SCENE_DIM), np.float32),
         "goal_observation": np.ones((2, OBS), np.float32)}
    action, state = agent.predict(x, None, np.ones(2, bool), True)
    assert action.shape == (2, ACT) and state["plan"].shape == (2, 4)
