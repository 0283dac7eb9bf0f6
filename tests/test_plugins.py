"""A tiny plug-in package, built on the fly, reached through all three plug-in paths."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from selfgym.metrics import read_metrics

PLUGIN_INIT = '''
import gymnasium as gym
import numpy as np

from selfgym import agents
from selfgym import rewards
from stable_baselines3 import PPO


class Corridor(gym.Env):
    """Walk right along a 1-D corridor; reward 1 at the end. Renders a 1x8 strip."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, length=8, render_mode=None):
        self.length, self.render_mode = length, render_mode
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.pos = max(0, self.pos + (1 if action == 1 else -1))
        done = self.pos >= self.length - 1
        obs = np.array([self.pos / (self.length - 1)], np.float32)
        return obs, float(done), done, False, {"is_success": done, "position": float(self.pos)}

    def render(self):
        img = np.zeros((8, 8 * self.length, 3), np.uint8)
        img[:, 8 * self.pos : 8 * self.pos + 8] = 255
        return img


gym.register("sg_plugin/Corridor-v0", entry_point=Corridor, max_episode_steps=50)


@agents.register("deco_ppo")
class DecoPPO(PPO):
    pass


@rewards.register("deco_reward")
def deco_reward(obs, action, next_obs, info):
    return 0.25
'''

PLUGIN_ALGOS = '''
from stable_baselines3 import A2C, PPO


class DottedA2C(A2C):
    pass


class EntryPPO(PPO):
    pass
'''

PLUGIN_REWARDS = '''
import numpy as np

from selfgym import rewards
from selfgym.rewards.base import RewardModule


def dotted_reward(obs, action, next_obs, info):
    return 0.5


class EntryBonus(RewardModule):
    def compute(self, batch):
        return np.full(len(batch), 0.75, dtype=np.float32)
'''

ENTRY_POINTS = '''
[selfgym.agents]
ep_ppo = sg_plugin.algos:EntryPPO

[selfgym.rewards]
ep_bonus = sg_plugin.rewards:EntryBonus
'''


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    root = tmp_path / "plugin_src"
    pkg = root / "sg_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN_INIT))
    (pkg / "algos.py").write_text(textwrap.dedent(PLUGIN_ALGOS))
    (pkg / "rewards.py").write_text(textwrap.dedent(PLUGIN_REWARDS))
    dist = root / "sg_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sg-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


def _single_run(tmp_path: Path, agent_folder: str) -> Path:
    runs = list((tmp_path / "logs" / agent_folder).iterdir())
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.parametrize(
    "agent, reward, stream, value",
    [
        ("deco_ppo", "deco_reward", "deco_reward", 0.25),  # registration decorators
        ("sg_plugin.algos:DottedA2C", "sg_plugin.rewards:dotted_reward", "sg_plugin.rewards:dotted_reward", 0.5),  # dotted paths
        ("ep_ppo", "ep_bonus", "ep_bonus", 0.75),  # entry points
    ],
)
def test_plugin_paths_from_cli(run_cli, tmp_path, plugin_dir, agent, reward, stream, value):
    args = ["--gym-packages", "sg_plugin", "--env", "sg_plugin/Corridor-v0", "--agent", agent, "--reward", reward,
            "-n", "256", "--seed", "0", "-params", "n_steps:64", "--eval-episodes", "2"]
    result = run_cli("train.py", *args, extra_path=plugin_dir)
    assert result.returncode == 0, result.stderr
    run = _single_run(tmp_path, agent.replace(":", "-"))
    rows = read_metrics(run / "metrics.csv")
    # the plug-in stream is logged under its own name with exactly the value it returns
    column = "reward_" + stream
    logged = [r[column] for r in rows if r.get(column) is not None]
    assert logged and all(abs(v - value) < 1e-6 for v in logged)
    assert (run / "model" / "state.pt").exists()


def test_plugin_env_evaluates_with_video(run_cli, tmp_path, plugin_dir):
    train = run_cli("train.py", "--gym-packages", "sg_plugin", "--env", "sg_plugin/Corridor-v0", "--agent", "ppo", "-n", "256",
                    "--seed", "1", "-params", "n_steps:64", "--no-final-eval", extra_path=plugin_dir)
    assert train.returncode == 0, train.stderr
    run = _single_run(tmp_path, "ppo")
    # a run folder is data: the env's package is imported because the user names it again
    result = run_cli("evaluate.py", "--run", str(run), "-n", "2", "--video", "out.gif", "--gym-packages", "sg_plugin",
                     extra_path=plugin_dir)
    assert result.returncode == 0, result.stderr
    assert "position" in result.stdout  # numeric info metrics at episode end are reported
    import imageio.v2 as imageio

    frames = imageio.mimread(tmp_path / "out.gif")
    assert len(frames) >= 2 and frames[0].shape[:2] == (8, 64)
