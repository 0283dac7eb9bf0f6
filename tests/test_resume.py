"""Killing a real training process and resuming it loses at most one checkpoint interval."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from selfgym import runs
from selfgym.metrics import read_metrics
from tests.conftest import REPO, cli_env

SAC_ARGS = ["--env", "Pendulum-v1", "--agent", "sac", "--seed", "7", "--save-freq", "200", "--eval-freq", "0",
            "--keep-checkpoints", "0", "--no-final-eval", "-params", "learning_starts:100", "buffer_size:5000"]


def start(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(run: Path, min_steps: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(s >= min_steps for s, _ in runs.list_checkpoints(run)):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint at {min_steps} steps within {timeout} s")


def test_sigkill_then_resume_continues_from_last_checkpoint(tmp_path):
    run = tmp_path / "logs" / "sac" / "Pendulum-v1_1"
    proc = start(tmp_path, "-n", "1400", *SAC_ARGS)
    wait_for_checkpoint(run, 600, proc)
    proc.kill()  # SIGKILL: no chance to save anything
    proc.wait()
    killed_at = max(s for s, _ in runs.list_checkpoints(run))
    state, meta = runs.load_checkpoint(runs.checkpoint_dir(run, killed_at))
    buffer = state["agent"]["replay_buffer"]
    # the replay buffer is in the checkpoint; SB3 calls callbacks just before it stores the
    # step's transition, so a checkpoint at step N holds N - n_envs transitions (N - 1 here)
    assert int(buffer["pos"]) == killed_at - 1
    assert state["agent"]["params"]["actor.optimizer"]["state"]  # and so is the optimizer's state

    resumed = subprocess.run([sys.executable, str(REPO / "train.py"), "-i", str(run)], cwd=tmp_path, env=cli_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"from step_{killed_at:010d} ({killed_at} steps)" in resumed.stdout
    final, meta = runs.load_checkpoint(run / "model")
    assert meta["num_timesteps"] == 1400
    last = runs.load_checkpoint(runs.checkpoint_dir(run, 1400))[0]["agent"]["replay_buffer"]
    # the transitions collected before the kill are still in the buffer after resuming
    np.testing.assert_array_equal(last["arrays"]["observations"][: killed_at - 1].numpy(),
                                  buffer["arrays"]["observations"][: killed_at - 1].numpy())
    steps = [r["steps"] for r in read_metrics(run / "metrics.csv")]
    assert steps == sorted(steps)  # no rows from the lost interval are repeated
    assert (run / "status.json").read_text().count("finished") == 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_saves_a_checkpoint_and_stops(tmp_path, signum):
    """Ctrl-C, and SIGTERM as a scheduler or kill sends it, both end with a checkpoint and status."""
    run = tmp_path / "logs" / "sac" / "Pendulum-v1_1"
    proc = start(tmp_path, "-n", "100000", *SAC_ARGS)
    wait_for_checkpoint(run, 200, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Resume with: python train.py -i" in out
    steps, folder = runs.list_checkpoints(run)[-1]
    assert steps % 200 != 0 or steps > 200  # saved at the interrupt, not only at the last interval
    assert '"interrupted"' in (run / "status.json").read_text()
    state, _ = runs.load_checkpoint(folder)
    assert state["agent"]["counters"]["num_timesteps"] == steps


def test_agent_state_round_trip_restores_everything():
    """Weights, optimizer moments, entropy coefficient, counters and buffer survive save/load."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    from selfgym import agents

    def make():
        return agents.make_agent("sac", DummyVecEnv([lambda: gym.make("Pendulum-v1")]),
                                 {"learning_starts": 10, "buffer_size": 500}, device="cpu", seed=0)

    class Budget:
        def on_step(self, n: int) -> bool:
            return True

    a = make()
    a.learn(60, Budget())
    state = a.state_dict()
    b = make()
    b.load_state_dict(state)
    assert b.num_timesteps == 60 and b.model.replay_buffer.pos == 60
    for (k, v), (k2, v2) in zip(a.model.policy.state_dict().items(), b.model.policy.state_dict().items()):
        assert torch.equal(v, v2), k
    assert torch.equal(a.model.log_ent_coef, b.model.log_ent_coef)
    sa, sb = a.model.actor.optimizer.state_dict(), b.model.actor.optimizer.state_dict()
    assert torch.equal(sa["state"][0]["exp_avg"], sb["state"][0]["exp_avg"])
    np.testing.assert_array_equal(a.model.replay_buffer.actions[:60], b.model.replay_buffer.actions[:60])
