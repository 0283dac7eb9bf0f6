"""Run folders are data, one trainer per run, bad numbers refused up front, one error line.

The hostile-user audit of issue 13, kept as tests: a run folder copied from elsewhere must not
run code it names, a second trainer on a live run is refused, and every user mistake ends with
one ``error:`` line and exit code 2 before any folder exists.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from selfgym import runs
from selfgym.cli import evaluate_main, train_main
from selfgym.rewards.env_rewards import TaskReward
from tests.conftest import REPO, cli_env

TINY = ["--env", "CartPole-v1", "--agent", "ppo", "--n-envs", "1", "--seed", "1", "--no-final-eval",
        "-params", "n_steps:64", "batch_size:64", "n_epochs:1"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished 128-step PPO run, trained once in-process; tests copy it."""
    root = tmp_path_factory.mktemp("trained")
    assert train_main([*TINY, "-n", "128", "-f", str(root / "logs")]) == 0
    return root / "logs" / "ppo" / "CartPole-v1_1"


def copy_run(trained_run: Path, dest: Path) -> Path:
    shutil.copytree(trained_run, dest)
    return dest


def no_run_folders(logs: Path) -> bool:
    return not logs.exists() or not any(p.is_dir() for d in logs.iterdir() for p in d.iterdir())


# -- 1. a run folder is data ------------------------------------------------------------------

EVIL = "from pathlib import Path\nPath({marker!r}).write_text('executed')\n{extra}"


def plant_payload(run: Path, marker: Path, module: str, entry: str) -> None:
    """evil.py in the run folder, and config.yaml naming it in ``entry`` (as in the audit)."""
    extra = ("import gymnasium\nclass Wrapper(gymnasium.Wrapper):\n    pass\n"
             "def reward(obs, action, next_obs, info):\n    return 0.0\n")
    (run / "evil.py").write_text(EVIL.format(marker=str(marker), extra=extra))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config[entry] = {"gym_packages": [module], "env_wrapper": f"{module}:Wrapper", "agent": f"{module}:Wrapper",
                     "rewards": [f"{module}:reward"], "env": f"{module}:CartPole-v1"}[entry]
    (run / "config.yaml").write_text(yaml.safe_dump(config))


def run_script(cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """The real command line, with the working folder importable (as ``python -m`` would make it)."""
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, env=cli_env(extra_path=cwd),
                          capture_output=True, text=True, timeout=300)


def test_the_audit_payload_executes_nothing(trained_run, tmp_path):
    """The audit's run: evil.py inside, named by gym_packages; the real command lines, cwd importable."""
    run = copy_run(trained_run, tmp_path / "logs" / "ppo" / "CartPole-v1_7")
    marker = tmp_path / "EXECUTED"
    plant_payload(run, marker, "logs.ppo.CartPole-v1_7.evil", "gym_packages")
    evaluated = run_script(tmp_path, "evaluate.py", "--env", "CartPole-v1", "--agent", "ppo", "--exp-id", "7", "-n", "1")
    resumed = run_script(tmp_path, "train.py", "-i", str(run.relative_to(tmp_path)), "-n", "256")
    for result in (evaluated, resumed):
        assert result.returncode == 2, result.stderr
        assert not marker.exists(), f"the payload ran: {result.stderr}"
        assert "gym_packages 'logs.ppo.CartPole-v1_7.evil'" in result.stderr and "--trust-run" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("entry", ["gym_packages", "env_wrapper", "agent", "rewards", "env"])
def test_no_entry_of_a_run_config_imports_code_unless_trusted(trained_run, tmp_path, monkeypatch, capsys, entry):
    run = copy_run(trained_run, tmp_path / "logs" / "ppo" / "CartPole-v1_7")
    marker = tmp_path / "EXECUTED"
    plant_payload(run, marker, "logs.ppo.CartPole-v1_7.evil", entry)
    monkeypatch.syspath_prepend(str(tmp_path))  # the module is importable, as from a checkout's root
    monkeypatch.chdir(tmp_path)
    for name in [n for n in sys.modules if n == "logs" or n.startswith("logs.")]:  # a fresh import each time
        monkeypatch.delitem(sys.modules, name)
    if entry != "rewards":  # evaluating builds no reward modules
        assert evaluate_main(["--run", str(run), "-n", "1"]) == 2
    assert train_main(["-i", str(run), "-n", "256"]) == 2
    err = capsys.readouterr().err
    assert not marker.exists(), err
    assert f"{entry} 'logs.ppo.CartPole-v1_7.evil" in err and "--trust-run" in err
    # the check can fail: a trusted run does import what it names
    if entry == "env":
        return  # gymnasium would import it, but selfgym checks the id is registered first
    if entry == "rewards":
        train_main(["-i", str(run), "-n", "256", "--trust-run", "--no-final-eval"])
    else:
        evaluate_main(["--run", str(run), "-n", "1", "--trust-run"])
    assert marker.exists()


def test_modules_named_on_the_command_line_are_allowed(trained_run, tmp_path, capsys):
    """A plug-in package the user names again with --gym-packages is theirs to import."""
    run = copy_run(trained_run, tmp_path / "run")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["gym_packages"] = ["json"]  # harmless, importable
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    assert evaluate_main(["--run", str(run), "-n", "1"]) == 2
    assert "gym_packages" in capsys.readouterr().err
    assert evaluate_main(["--run", str(run), "-n", "1", "--gym-packages", "json"]) == 0


def test_selfgym_wrappers_named_by_the_shipped_hyperparameters_stay_loadable(tmp_path):
    from selfgym.evaluation import code_named_by_run

    config = {"agent": "sac", "env_wrapper": "selfgym.envs.play_table.wrappers:FixedWristWrapper",
              "gym_packages": [], "rewards": ["rnd:coef=0.1", "component:reach"]}
    assert code_named_by_run(config, with_rewards=True) == []
    config["env_wrapper"] = [{"gymnasium.wrappers:TimeLimit": {"max_episode_steps": 5}}, "my_pkg.wrappers:Mine"]
    assert code_named_by_run(config) == [("env_wrapper", "my_pkg.wrappers:Mine")]


# -- 4. resume restores the step-dependent state ----------------------------------------------

APPLIED: list[tuple[int, float]] = []


class RecordingTask(TaskReward):
    """The env reward, recording every (step, weight) the reward wrapper and its logger apply."""

    def weight(self, step: int) -> float:
        value = super().weight(step)
        APPLIED.append((int(step), round(value, 9)))
        return value


def test_a_resumed_linear_reward_schedule_applies_the_uninterrupted_weights(tmp_path):
    spec = f"{__name__}:RecordingTask:schedule=linear,decay_steps=512,final_ratio=0"
    args = [*TINY, "--reward", spec, "--save-freq", "128", "--eval-freq", "0"]
    APPLIED.clear()
    assert train_main([*args, "-n", "512", "-f", str(tmp_path / "whole")]) == 0
    whole = list(APPLIED)
    assert train_main([*args, "-n", "256", "-f", str(tmp_path / "split")]) == 0
    APPLIED.clear()
    run = tmp_path / "split" / "ppo" / "CartPole-v1_1"
    assert train_main(["-i", str(run), "-n", "512", "--trust-run"]) == 0  # the reward is a plug-in path
    resumed = list(APPLIED)
    # the uninterrupted run's weights from step 256 on (its log at 256 came before the split's save)
    assert sorted(resumed + [(256, 0.5)]) == sorted(c for c in whole if c[0] >= 256)
    assert min(s for s, _ in resumed) == 256 and resumed[-1][1] < 0.01


# -- 5, 6. numbers checked before any folder exists; one error line ---------------------------


@pytest.mark.parametrize("args, expected", [
    (["-n", "-5"], "n_timesteps must be a whole number >= 1"),
    (["-n", "0"], "n_timesteps must be a whole number >= 1"),
    (["--n-envs", "-3"], "n_envs must be a whole number >= 1"),
    (["--seed", "-7"], "seed must be a whole number in 0..2147483647"),
    (["--seed", "4294967295"], "seed must be a whole number in 0..2147483647"),
    (["--save-freq", "0"], "save_freq must be a whole number >= 1"),
    (["--eval-episodes", "0"], "eval_episodes must be a whole number >= 1"),
    (["--eval-freq", "-2"], "eval_freq must be a whole number >= 0"),
    (["--num-threads", "0"], "num_threads must be a whole number >= 1"),
    (["--keep-checkpoints", "-1"], "keep_checkpoints must be a whole number >= 0"),
    (["--reward", "task:coef=nan"], "coef=nan is not a finite number"),
    (["--reward", "task:coef=inf"], "coef=inf is not a finite number"),
    (["--reward", "task:schedule=exponential,kappa=-1"], "kappa=-1.0 must be in [0.0, 1.0)"),
    (["--reward", "task:schedule=linear,decay_steps=0"], "decay_steps=0 must be >= 1"),
    (["-n", "-1", "-params", "n_timesteps:0"], "n_timesteps must be a whole number >= 1"),  # from a file
])
def test_bad_numbers_are_one_error_line_and_leave_no_folder(tmp_path, capsys, args, expected):
    logs = tmp_path / "logs"
    assert train_main([*TINY, "-n", "64", "-f", str(logs), *args] if args[0] != "-n" else
                      [*TINY, "-f", str(logs), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
    assert no_run_folders(logs)


def test_user_mistakes_in_files_are_one_error_line(tmp_path, capsys):
    not_a_mapping, broken = tmp_path / "list.yml", tmp_path / "broken.yml"
    not_a_mapping.write_text("- 1\n- 2\n")
    broken.write_text("a: [1, 2\n")
    a_file = tmp_path / "logs"
    a_file.write_text("not a folder")
    cases = [(["-conf", str(not_a_mapping)], "mapping"), (["-conf", str(broken)], "YAML"),
             (["-f", str(a_file)], "cannot make a run folder under -f")]
    for args, expected in cases:
        code = train_main([*TINY, "-n", "64", *args]) if "-f" in args else train_main([*TINY, "-n", "64", "-f", str(tmp_path / "l"), *args])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and expected in err and "Traceback" not in err, (args, err)


def test_resume_refuses_what_it_cannot_honour_and_broken_run_files(trained_run, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path / "run")
    for flags in (["-params", "gamma:0.5"], ["--env", "Pendulum-v1"], ["--agent", "a2c"], ["--reward", "rnd"]):
        with pytest.raises(SystemExit) as exit_info:
            train_main(["-i", str(run), *flags])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "cannot honour" in err and flags[0] in err.split("cannot honour")[1]
    (run / "config.yaml").write_text("env: [unclosed\n")
    assert train_main(["-i", str(run)]) == 2 and "is not valid YAML" in capsys.readouterr().err
    assert evaluate_main(["--run", str(run)]) == 2 and "is not valid YAML" in capsys.readouterr().err


def test_a_checkpoint_that_does_not_fit_the_agent_is_one_error_line(trained_run, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path / "run")
    state, meta = runs.load_checkpoint(run / "model")
    params = state["agent"]["params"]["policy"]
    key = next(k for k in params if k.endswith("weight"))
    params[key] = torch.zeros(3, 3)  # wrong shape
    runs.save_checkpoint(run / "model", state, {k: v for k, v in meta.items() if k not in ("format", "sha256")})
    assert evaluate_main(["--run", str(run), "-n", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint") and "does not fit agent 'ppo'" in err and err.count("\n") == 1


def test_evaluate_refuses_zero_episodes_before_touching_eval_json(trained_run, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path / "run")
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(["--run", str(run), "-n", "0"])
    assert exit_info.value.code == 2 and "-n/--n-episodes must be >= 1" in capsys.readouterr().err
    assert not (run / "eval.json").exists()


def test_debug_shows_the_traceback(tmp_path):
    from selfgym.train import UserError

    with pytest.raises(UserError, match="n_timesteps must be"):
        train_main([*TINY, "-n", "-5", "-f", str(tmp_path / "logs"), "--debug"])


def broken_reward(obs, action, next_obs, info) -> float:
    raise ZeroDivisionError("plug-in bug")


def test_a_reward_plug_in_failing_at_step_one_leaves_no_run(tmp_path, capsys):
    logs = tmp_path / "logs"
    assert train_main([*TINY, "-n", "128", "-f", str(logs), "--reward", f"{__name__}:broken_reward"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: training failed at step 0, before its first checkpoint: ZeroDivisionError: plug-in bug")
    assert err.count("\n") == 1 and "was removed (nothing to resume)" in err
    assert no_run_folders(logs)


def test_checkpoints_carry_the_global_random_states(tmp_path):
    """torch, numpy and Python RNGs survive a weights-only checkpoint: a resume draws the same numbers."""
    import random

    import numpy as np

    from selfgym.train import load_rng_state, rng_state

    folder = runs.save_checkpoint(tmp_path / "ckpt", {"rng": rng_state()}, {"num_timesteps": 0})
    first = (torch.rand(3).tolist(), np.random.rand(3).tolist(), np.random.randn(), random.random())
    load_rng_state(runs.load_checkpoint(folder)[0]["rng"])
    assert (torch.rand(3).tolist(), np.random.rand(3).tolist(), np.random.randn(), random.random()) == first
