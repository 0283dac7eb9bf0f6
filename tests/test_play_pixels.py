"""Learning from play on pixels (issue 15 item 7): the pixel goal env, pixel logs, the CNN encoder
shared by the play agents, layout refusals, save/load and learning on a tiny fixed batch.
Tiny images (36 px, the Nature-CNN's smallest) and synthetic logs keep it fast."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from selfgym import agents
from selfgym.agents.play.pixels import PixelEncoder, env_image_size
from selfgym.agents.play.offline import resolve_dataset
from selfgym.envs.play_table.collect import collect
from selfgym.envs.play_table.dataset import PlayDataset, observation_layout, pixel_observation_layout
from selfgym.envs.play_table.demos import collect_demos
from selfgym.envs.play_table.heldout import make_test_cases, run_case
from selfgym.envs.play_table.observation import PROPRIO_DIM, SCENE_DIM, STATE_DIM
from selfgym.envs.play_table.pixels import PlayTablePixelsGoalEnv
from tests.test_play_agents import GoalSpaces, NoStop, _rollout_actions, write_log

SIZE, ACT = 36, 7


def write_pixel_log(path: Path, episode_lengths: list[int], kind: str = "play", size: int = SIZE,
                    seed: int = 0) -> Path:
    """A synthetic pixel log in the collector's format: the action is readable from the image
    (its mean brightness sets the first action dimension), so a CNN has something to learn."""
    rng = np.random.default_rng(seed)
    steps = sum(episode_lengths)
    ids = np.repeat(np.arange(len(episode_lengths)), episode_lengths).astype(np.int32)
    images = rng.integers(0, 256, size=(steps, size, size, 3), dtype=np.uint8)
    proprio = rng.normal(size=(steps, PROPRIO_DIM)).astype(np.float32)
    actions = np.tanh(rng.normal(size=(steps, ACT))).astype(np.float32)
    actions[:, 0] = images.mean(axis=(1, 2, 3)) / 127.5 - 1.0
    meta = {"kind": kind, "obs_layout": pixel_observation_layout(size), "image_size": size}
    np.savez_compressed(path, meta=json.dumps(meta), obs=proprio, actions=actions, images=images,
                        scene_states=rng.normal(size=(steps, SCENE_DIM)).astype(np.float32), episode_ids=ids)
    return path


class PixelSpaces:
    """What an offline agent reads of PlayTablePixelsGoal-v0 (no simulation needed)."""

    image = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
    observation_space = gym.spaces.Dict({
        "image": image, "proprio": gym.spaces.Box(-10, 10, (PROPRIO_DIM,), np.float32), "goal_image": image,
        "achieved_goal": gym.spaces.Box(-10, 10, (SCENE_DIM,), np.float32),
        "desired_goal": gym.spaces.Box(-10, 10, (SCENE_DIM,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (ACT,), np.float32)
    num_envs = 1


SMALL = dict(hidden=16, batch_size=4, window=4, replan_every=4, image_features=8, bins=16)


def make(name: str, log: Path, seed: int = 0, **extra) -> object:
    params = {**SMALL, "goal": "image", **({"latent_dim": 4} if name == "play_lmp" else {}), **extra}
    return agents.get_agent_class(name)(PixelSpaces(), seed=seed, dataset=str(log), **params)


def test_encoder_and_the_agents_inputs_have_the_right_shapes(tmp_path):
    images = torch.randint(0, 256, (2, 5, SIZE, SIZE, 3), dtype=torch.uint8)
    assert PixelEncoder(SIZE, 8)(images).shape == (2, 5, 8)
    log = write_pixel_log(tmp_path / "p.npz", [40, 30])
    for goal, goal_dim in (("image", 8), ("observation", 8 + PROPRIO_DIM)):
        agent = make("play_lmp", log, goal=goal)
        obs, actions, goal_input = agent.sample_batch()
        assert obs.shape == (4, 4, 8 + PROPRIO_DIM) and actions.shape == (4, 4, ACT)
        assert goal_input.shape == (4, goal_dim) and obs.requires_grad  # encoded inside the graph
    # one encoder, shared: policy, recogniser and proposer read its features; the optimiser trains it
    params = {id(p) for p in agent.optimizer.param_groups[0]["params"]}
    assert all(id(p) in params for p in agent.model.encoder.parameters())
    assert not hasattr(agent.model.recognizer, "encoder") and not hasattr(agent.model.policy, "encoder")


def test_a_pixel_log_is_refused_by_a_state_agent_and_a_state_log_by_a_pixel_agent(tmp_path):
    pixel_log, state_log = write_pixel_log(tmp_path / "pix.npz", [40]), write_log(tmp_path / "state.npz", [40])
    pixel_layout, state_layout = pixel_observation_layout(SIZE), observation_layout()
    state_agent = agents.get_agent_class("play_gcbc")(GoalSpaces(), seed=0, dataset=str(pixel_log), hidden=16,
                                                      batch_size=4, window=4)
    with pytest.raises(ValueError, match="pix.npz") as refused:
        state_agent.sample_batch()
    assert pixel_layout in str(refused.value) and state_layout in str(refused.value)
    with pytest.raises(ValueError, match="state.npz") as refused:
        make("play_gcbc", state_log).sample_batch()
    assert pixel_layout in str(refused.value) and state_layout in str(refused.value)
    # another image size passes train.py's check (--env-kwargs image_size:N is not known there) and is
    # refused by the agent, which knows its env's size, both named
    resolve_dataset("play_lmp", "play", {"dataset": str(pixel_log)}, image_size=84)
    big = write_pixel_log(tmp_path / "big.npz", [40], size=40)
    with pytest.raises(ValueError, match="big.npz") as refused:
        make("play_gcbc", big).sample_batch()
    assert pixel_observation_layout(40) in str(refused.value) and pixel_layout in str(refused.value)
    with pytest.raises(ValueError, match="state.npz.*--pixels 64"):
        resolve_dataset("play_lmp", "play", {"dataset": str(state_log)}, image_size=64)
    with pytest.raises(ValueError, match=state_layout.replace("|", r"\|")):
        resolve_dataset("play_lmp", "play", {"dataset": str(pixel_log)})
    assert env_image_size("selfgym/PlayTablePixelsGoal-v0") == 64 and env_image_size("selfgym/PlayTableGoal-v0") is None


def test_pixel_settings_are_checked():
    with pytest.raises(ValueError, match="goal must be one of .*'image'.*got 'scene'"):
        agents.get_agent_class("play_gcbc")(PixelSpaces(), dataset="x.npz", goal="scene")
    with pytest.raises(ValueError, match="image_features=8 is for pixel observations"):
        agents.get_agent_class("play_gcbc")(GoalSpaces(), dataset="x.npz", image_features=8)


@pytest.mark.parametrize("name", ["play_lmp", "play_gcbc", "bc"])
def test_pixel_agent_saved_and_loaded_reproduces_its_actions(tmp_path, name):
    log = write_pixel_log(tmp_path / "d.npz", [30, 25], kind="expert_demos" if name == "bc" else "play")
    agent = make(name, log)
    agent.learn(2, NoStop())
    torch.save(agent.state_dict(), tmp_path / "agent.pt")
    rng = np.random.default_rng(3)
    observations = [{"image": rng.integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8),
                     "goal_image": rng.integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8),
                     "proprio": rng.normal(size=(1, PROPRIO_DIM)).astype(np.float32),
                     "desired_goal": np.zeros((1, SCENE_DIM), np.float32)} for _ in range(6)]  # > one replan
    before = _rollout_actions(agent, observations)
    fresh = make(name, log, seed=1)
    assert not np.allclose(_rollout_actions(fresh, observations), before)
    fresh.load_state_dict(torch.load(tmp_path / "agent.pt", weights_only=True))
    np.testing.assert_array_equal(_rollout_actions(fresh, observations), before)
    assert before.shape == (6, ACT) and np.abs(before).max() <= 1.0
    assert any(key.startswith("encoder.") for key in agent.state_dict()["model"])
    with pytest.raises(ValueError, match="'image', 'proprio' and 'goal_image'"):
        agent.predict({"observation": np.zeros((1, STATE_DIM), np.float32)})


def test_policy_loss_falls_on_a_tiny_fixed_pixel_batch(tmp_path):
    agent = make("play_gcbc", write_pixel_log(tmp_path / "p.npz", [40, 40]), batch_size=8, learning_rate=3e-3)
    torch.manual_seed(0)
    batch = agent._load_data().sample_windows(8, 4, np.random.default_rng(0), images=True)
    frames = lambda a: torch.as_tensor(a)  # noqa: E731
    from selfgym.agents.play import pixels as px

    def loss() -> torch.Tensor:
        obs, goal = px.encode(agent.model, agent.normalizer, agent.pixels, frames(batch["images"]),
                              frames(batch["obs"]), frames(batch["goal_images"]), frames(batch["goal_obs"]))
        return agent.loss(obs, frames(batch["actions"]), goal)[0]

    agent.normalizer.fit(agent._data.obs)
    first = float(loss())
    for _ in range(40):
        agent.optimizer.zero_grad()
        loss().backward()
        agent.optimizer.step()
    assert float(loss()) < first - 1.0, (first, float(loss()))


def test_pixel_env_is_the_state_goal_env_seen_through_the_camera():
    pixel_env, state_env = PlayTablePixelsGoalEnv(image_size=SIZE), gym.make("selfgym/PlayTableGoal-v0").unwrapped
    try:
        obs, _ = pixel_env.reset(seed=5)
        state, _ = state_env.reset(seed=5)
        assert set(obs) == {"image", "proprio", "goal_image", "achieved_goal", "desired_goal"}
        assert obs["image"].shape == obs["goal_image"].shape == (SIZE, SIZE, 3) and obs["image"].dtype == np.uint8
        assert pixel_env.observation_space.contains(obs)
        np.testing.assert_array_equal(obs["desired_goal"], state["desired_goal"])
        assert not np.array_equal(obs["goal_image"], obs["image"])  # the sampled goal changes the scene
        rng = np.random.default_rng(0)
        for _ in range(8):  # rendering (also the goal) never touches the episode's physics
            action = rng.uniform(-1, 1, ACT).astype(np.float32)
            (obs, reward, *_), (state, state_reward, *_) = pixel_env.step(action), state_env.step(action)
            np.testing.assert_array_equal(obs["achieved_goal"], state["achieved_goal"])
            np.testing.assert_array_equal(obs["proprio"], state["observation"][:PROPRIO_DIM])
            assert reward == state_reward
        again, _ = pixel_env.reset(seed=5)  # seeded: the same goal image
        first, _ = PlayTablePixelsGoalEnv(image_size=SIZE).reset(seed=5)
        np.testing.assert_array_equal(again["goal_image"], first["goal_image"])
    finally:
        pixel_env.close()
        state_env.close()
    with pytest.raises(ValueError, match="image_size must be a whole number >= 36, got 20"):
        PlayTablePixelsGoalEnv(image_size=20)


def test_pixel_collector_plays_the_state_collectors_stream_and_keeps_the_camera():
    hours = 24 / (3600 * 30)  # 24 steps
    state = collect(hours, seed=2, progress=False)
    pixels = collect(hours, seed=2, progress=False, pixels=SIZE)
    np.testing.assert_array_equal(pixels["obs"], state["obs"][:, :PROPRIO_DIM])
    np.testing.assert_array_equal(pixels["scene_states"], state["scene_states"])
    assert pixels["images"].shape == (24, SIZE, SIZE, 3) and pixels["images"].dtype == np.uint8
    assert len(np.unique(pixels["images"].reshape(24, -1), axis=0)) > 1  # the scene moves
    with pytest.raises(ValueError, match="--pixels must be a whole number >= 36"):
        collect(hours, pixels=8, progress=False)


def test_pixel_test_cases_hand_the_demonstrations_last_frame_to_the_policy():
    cases = make_test_cases(1, tasks=("open_drawer",), image_size=SIZE)
    assert cases.goal_images.shape == (1, SIZE, SIZE, 3)
    seen = []

    class Recorder:
        def predict(self, obs, state, start, deterministic):
            seen.append(obs)
            return np.zeros((1, ACT), np.float32), state

    env = PlayTablePixelsGoalEnv(task="open_drawer", image_size=SIZE)
    try:
        run_case(Recorder(), env, cases, 0, max_steps=2)
    finally:
        env.close()
    np.testing.assert_array_equal(seen[0]["goal_image"][0], cases.goal_images[0])
    assert seen[0]["image"].shape == (1, SIZE, SIZE, 3) and "goal_observation" in seen[0]


def test_pixel_demonstrations_and_a_missing_pixel_log_collected_on_demand(tmp_path):
    demos = collect_demos(1, tasks=("open_drawer",), progress=False, pixels=SIZE)
    assert demos["obs"].shape[1] == PROPRIO_DIM and demos["images"].shape == (len(demos["obs"]), SIZE, SIZE, 3)
    play = resolve_dataset("play_lmp", "play", {"dataset": str(tmp_path / "px.npz"), "collect": 0.0004}, image_size=SIZE)
    data = PlayDataset(play["dataset"])
    assert data.layout == pixel_observation_layout(SIZE) and data.images.shape == (43, SIZE, SIZE, 3)
    assert data.meta["image_size"] == SIZE and data.obs.shape == (43, PROPRIO_DIM)


def test_train_py_trains_and_resumes_a_pixel_agent_and_refuses_a_state_log(run_cli, tmp_path):
    write_pixel_log(tmp_path / "px.npz", [60, 50])
    common = ["--env", "selfgym/PlayTablePixelsGoal-v0", "--env-kwargs", f"image_size:{SIZE}", "--agent", "play_gcbc",
              "--seed", "0", "--eval-freq", "0", "--no-final-eval", "--save-freq", "2"]
    small = ["-params", "dataset:px.npz", "hidden:16", "batch_size:4", "window:4", "replan_every:4", "bins:16",
             "image_features:8", "log_interval:2", "suite_cases_per_task:0"]
    done = run_cli("train.py", *common, "-n", "2", *small)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "logs" / "play_gcbc" / "selfgym-PlayTablePixelsGoal-v0_1"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["hyperparams"]["goal"] == "image" and config["hyperparams"]["dataset_sha256"]
    resumed = run_cli("train.py", "-i", str(run), "-n", "4", "--no-final-eval")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run / "status.json").read_text())["num_timesteps"] == 4
    assert [r.split(",")[0] for r in (run / "metrics.csv").read_text().splitlines()[1:]] == ["2", "4"]
    state_log = write_log(tmp_path / "state.npz", [40])
    refused = run_cli("train.py", *common, "-n", "2", "-params", "dataset:state.npz")
    assert refused.returncode == 2 and "state.npz" in refused.stderr and pixel_observation_layout(64) in refused.stderr
    assert state_log.exists() and not (tmp_path / "logs" / "play_gcbc" / "selfgym-PlayTablePixelsGoal-v0_2").exists()
