"""The last values logged before training ends reach metrics.csv, whatever the agent's log rhythm."""

from __future__ import annotations

from selfgym.metrics import read_metrics
from selfgym.train import train


def _config(**overrides):
    config = {"env": "Pendulum-v1", "agent": "sac", "n_timesteps": 300, "seed": 0, "device": "cpu", "num_threads": 1,
              "n_envs": 1, "vec_env": "dummy", "env_kwargs": {}, "normalize": False, "env_wrapper": None, "rewards": [],
              "hyperparams": {"policy": "MlpPolicy", "learning_starts": 100, "batch_size": 32,
                              "policy_kwargs": {"net_arch": [16]}},
              "eval_freq": 300, "eval_episodes": 1, "save_freq": 300, "keep_checkpoints": 1, "gym_packages": []}
    config.update(overrides)
    return config


def test_final_evaluation_of_an_off_policy_agent_is_written(tmp_path):
    """SAC writes a row every 4 episodes (800 Pendulum steps): a 300-step run's evaluation at step 300 used to be lost."""
    run_dir = train(_config(), str(tmp_path), final_eval=False)
    rows = read_metrics(run_dir / "metrics.csv")
    assert rows, "no metrics row at all"
    assert rows[-1]["steps"] == 300
    assert rows[-1].get("eval_return_mean") is not None
