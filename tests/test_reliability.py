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
import yaml

from selfgym.cli import evaluate_main, train_main
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
                     "rewards": [f"{module}:reward"]}[entry]
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


@pytest.mark.parametrize("entry", ["gym_packages", "env_wrapper", "agent", "rewards"])
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
