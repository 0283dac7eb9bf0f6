"""MiniGrid (the exploration benchmark's envs): ids import on first use, success is reported,
and PPO with a reward module trains on the image view and evaluates from the CLIs."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest

from selfgym.cli import evaluate_main, train_main
from selfgym.env_factory import check_env_id
from selfgym.envs.success import SuccessInfo

pytest.importorskip("minigrid", reason="MiniGrid is optional: pip install 'selfgym[minigrid]'")

LEFT, RIGHT, FORWARD = 0, 1, 2


def test_minigrid_ids_register_on_first_use_and_success_is_reaching_the_goal():
    check_env_id("MiniGrid-Empty-5x5-v0")  # imports minigrid, no --gym-packages
    env = SuccessInfo(gym.make("MiniGrid-Empty-5x5-v0"))
    env.reset(seed=0)
    infos = [env.step(a) for a in (FORWARD, FORWARD, RIGHT, FORWARD, FORWARD)]  # (1,1) -> goal (3,3)
    *_, (obs, reward, terminated, truncated, info) = infos
    assert terminated and reward > 0 and info["is_success"] is True
    assert all("is_success" not in step[4] for step in infos[:-1])
    slow = SuccessInfo(gym.make("MiniGrid-Empty-5x5-v0", max_steps=3))
    slow.reset(seed=0)
    steps = [slow.step(LEFT) for _ in range(3)]
    assert steps[-1][3] and steps[-1][4]["is_success"] is False  # a time-out is a failure
    with pytest.raises(gym.error.NameNotFound, match="MiniGrid-NoSuchEnv-v0"):
        check_env_id("MiniGrid-NoSuchEnv-v0")


def test_ppo_with_a_module_trains_on_minigrid_images_and_evaluates(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert train_main(["--env", "MiniGrid-DoorKey-5x5-v0", "--agent", "ppo", "--reward", "ride", "-n", "256",
                       "--n-envs", "2", "-params", "n_steps:64", "--eval-freq", "0", "--no-final-eval", "--seed", "0"]) == 0
    run = tmp_path / "logs" / "ppo" / "MiniGrid-DoorKey-5x5-v0_1"
    config = (run / "config.yaml").read_text()
    assert "minigrid.wrappers.ImgObsWrapper" in config and "ride" in config
    assert evaluate_main(["--run", str(run), "-n", "2", "--stochastic"]) == 0
    summary = json.loads((run / "eval.json").read_text())
    assert summary["n_episodes"] == 2 and summary["success_rate"] in (0.0, 0.5, 1.0)  # SuccessInfo reports it
