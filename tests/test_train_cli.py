"""train.py / evaluate.py end to end: run folders, config resolution, learning, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from selfgym.metrics import read_metrics


CARTPOLE = ("--env", "CartPole-v1", "--agent", "ppo")


def only_run(root: Path) -> Path:
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_ppo_cartpole_learns_and_fills_run_folder(run_cli, tmp_path):
    result = run_cli("train.py", "--env", "CartPole-v1", "--agent", "ppo", "-n", "16000", "--seed", "3",
                     "--eval-freq", "8000", "--save-freq", "4000", "--eval-episodes", "3")
    assert result.returncode == 0, result.stderr
    run = tmp_path / "logs" / "ppo" / "CartPole-v1_1"
    for name in ("config.yaml", "args.yaml", "metrics.csv", "learning_curve.png", "eval.json", "status.json",
                 "model/state.pt", "best_model/state.pt"):
        assert (run / name).exists(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert len(list((run / "checkpoints").iterdir())) == 3  # --keep-checkpoints 3
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["hyperparams"]["n_steps"] == 32 and config["n_envs"] == 8  # from hyperparams/ppo.yml
    rows = read_metrics(run / "metrics.csv")
    steps = [r["steps"] for r in rows]
    assert steps == sorted(steps) and steps[-1] >= 15000
    returns = [r["ep_return_mean"] for r in rows if r["ep_return_mean"] is not None]
    assert returns[-1] > returns[0] + 50  # learning raised the training return
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["return_mean"] > 100  # random play scores about 22
    assert f"Run saved in {Path('logs/ppo/CartPole-v1_1')}" in result.stdout


def test_flags_override_hyperparams_and_are_recorded(run_cli, tmp_path):
    conf = tmp_path / "my.yml"
    conf.write_text("CartPole-v1:\n  n_epochs: 2\n  gamma: 0.9\n")
    result = run_cli("train.py", "--env", "CartPole-v1", "--agent", "ppo", "-n", "512", "-conf", str(conf), "-params", "gamma:0.95", "n_steps:64",
                     "'policy_kwargs:dict(net_arch=[16])'".strip("'"), "--n-envs", "2", "--no-final-eval", "--seed", "5")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((only_run(tmp_path / "logs" / "ppo") / "config.yaml").read_text())
    hp = config["hyperparams"]
    assert (hp["n_epochs"], hp["gamma"], hp["n_steps"]) == (2, 0.95, 64)
    assert hp["policy_kwargs"] == "dict(net_arch=[16])" and config["n_envs"] == 2 and config["seed"] == 5


def test_evaluate_finds_latest_run_and_reports(run_cli, tmp_path):
    for _ in range(2):
        assert run_cli("train.py", *CARTPOLE, "-n", "256", "--no-final-eval", "--seed", "0").returncode == 0
    result = run_cli("evaluate.py", "--env", "CartPole-v1", "--agent", "ppo", "-n", "3")
    assert result.returncode == 0, result.stderr
    assert "CartPole-v1_2" in result.stdout and "return" in result.stdout
    summary = json.loads((tmp_path / "logs" / "ppo" / "CartPole-v1_2" / "eval.json").read_text())
    assert summary["n_episodes"] == 3 and len(summary["episodes"]) == 3
    first = run_cli("evaluate.py", "--env", "CartPole-v1", "--agent", "ppo", "--exp-id", "1", "-n", "1")
    assert first.returncode == 0 and "CartPole-v1_1" in first.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--env", "CartPol-v1"], "CartPole-v1"),
        (["--agent", "ppp"], "Did you mean 'ppo'"),
        (["--reward", "rndd"], "Did you mean 'rnd'"),
        (["-params", "learning_rat:0.1"], "learning_rate"),
        (["--reward", "task:coeff=2"], "coef"),
        (["-params", "gamma:nan"], "hyperparams 'gamma' is NaN"),
        (["--env-kwargs", "sutton_barto_reward:nan"], "env_kwargs 'sutton_barto_reward' is NaN"),
        # checked before the module is built: its constructor's int(nan) gave no parameter name
        (["--reward", "e3b:feature_dim=nan"], "e3b:feature_dim=nan: feature_dim=nan is not a finite number"),
    ],
)
def test_bad_input_is_explained_and_leaves_no_run(run_cli, tmp_path, args, expected):
    result = run_cli("train.py", *CARTPOLE, "-n", "64", *args)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    logs = tmp_path / "logs"
    assert not logs.exists() or not any(p.is_dir() for d in logs.iterdir() for p in d.iterdir())


def test_env_that_fails_to_build_leaves_no_folder(run_cli, tmp_path):
    result = run_cli("train.py", "--env", "selfgym/PlayTable-v0", "--agent", "sac", "-n", "64",
                     "--env-kwargs", "terminate_on_success:maybe")
    assert result.returncode == 2
    assert "terminate_on_success must be true or false" in result.stderr and "Traceback" not in result.stderr
    logs = tmp_path / "logs"
    assert not logs.exists() or not any(logs.iterdir())  # neither the run folder nor an empty agent folder


def test_unknown_hyperparameter_lists_valid_ones(run_cli):
    result = run_cli("train.py", *CARTPOLE, "-n", "64", "-params", "n_step:8")
    assert "'n_step'" in result.stderr and "n_steps" in result.stderr and "batch_size" in result.stderr


def test_corrupt_or_missing_checkpoint_is_a_clear_error(run_cli, tmp_path):
    assert run_cli("train.py", *CARTPOLE, "-n", "256", "--no-final-eval", "--seed", "0").returncode == 0
    run = tmp_path / "logs" / "ppo" / "CartPole-v1_1"
    state = run / "model" / "state.pt"
    state.write_bytes(state.read_bytes()[:-100] + b"x" * 100)
    result = run_cli("evaluate.py", "--run", str(run))
    assert result.returncode == 2 and "corrupt" in result.stderr
    missing = run_cli("evaluate.py", "--run", str(run), "--checkpoint", "123")
    assert missing.returncode == 2 and "no checkpoint at step 123" in missing.stderr
    assert run_cli("evaluate.py", "--run", str(tmp_path / "nowhere")).returncode == 2


def test_loading_never_unpickles_code(tmp_path):
    """A checkpoint smuggling a pickled callable is refused by the weights-only loader."""
    import os

    import torch

    from selfgym import runs

    folder = runs.save_checkpoint(tmp_path / "ckpt", {"agent": {"evil": os.system}}, {"num_timesteps": 1})
    with pytest.raises(runs.CheckpointError, match="could not be read safely"):
        runs.load_checkpoint(folder)
    assert torch.load(folder / "state.pt", weights_only=False)["agent"]["evil"] is os.system  # it was really there


@pytest.mark.slow
def test_default_main_job_runs_and_reports(run_cli, tmp_path):
    """`python train.py` with no flags: the drone learns monocular flight from its own stereo."""
    result = run_cli("train.py", "--seed", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "logs/persistent_ssl/selfgym-DroneRoom-v0_1/eval.json").read_text())
    assert summary["metrics"]["mono_fraction"]["mean"] > 0.5  # it switched to its learned monocular cue
    assert "Run saved in" in result.stdout


@pytest.mark.slow
def test_readme_done_criteria(run_cli, tmp_path):
    """The issue's bar: default PPO on CartPole evaluates above 400; SAC on Pendulum learns."""
    assert run_cli("train.py", "--env", "CartPole-v1", "--agent", "ppo", "--seed", "0").returncode == 0
    ppo = json.loads((tmp_path / "logs/ppo/CartPole-v1_1/eval.json").read_text())
    assert ppo["return_mean"] > 400
    assert run_cli("train.py", "--env", "Pendulum-v1", "--agent", "sac", "--seed", "0").returncode == 0
    sac = json.loads((tmp_path / "logs/sac/Pendulum-v1_1/eval.json").read_text())
    assert sac["return_mean"] > -300  # random play scores about -1200
