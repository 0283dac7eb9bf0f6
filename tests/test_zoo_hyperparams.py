"""hyperparams/*.yml are in rl-zoo3's format: selfgym and rl-zoo3 read every entry the same way.

Checked without rl-zoo3: every entry takes the shared defaults through the YAML merge key
(so a reader without selfgym's ``default`` merging sees them), selfgym's ``load_hyperparams``
returns exactly the YAML entry, wrappers are written ``pkg.mod.Class`` and import, and entries of
Dict-observation envs name ``MultiInputPolicy``. With rl-zoo3 installed (the dev extra): its
own ExperimentManager reads and pre-processes every SB3 entry into constructor arguments the
algorithm takes, and ``python -m rl_zoo3.train -conf hyperparams/ppo.yml`` trains one entry.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import yaml

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym import agents
from selfgym.config import HYPERPARAMS_DIR, TRAINER_KEYS, load_hyperparams
from selfgym.envs import registered_ids
from tests.conftest import REPO, cli_env

FILES = sorted(HYPERPARAMS_DIR.glob("*.yml"))
SB3_ALGOS = {"a2c", "ddpg", "dqn", "ppo", "sac", "td3"}
SB3_ENTRIES = [(path.stem, env_id) for path in FILES if path.stem in SB3_ALGOS
               for env_id in yaml.safe_load(path.read_text()) if env_id != "default"]
ALL_ENTRIES = [(path.stem, env_id) for path in FILES for env_id in yaml.safe_load(path.read_text()) if env_id != "default"]


def _table(agent: str) -> dict:
    return yaml.safe_load((HYPERPARAMS_DIR / f"{agent}.yml").read_text())


@pytest.mark.parametrize(("agent", "env_id"), ALL_ENTRIES)
def test_selfgym_reads_each_entry_as_plain_yaml_does(agent: str, env_id: str) -> None:
    table = _table(agent)
    entry = table[env_id]
    assert set(table["default"]) <= set(entry), "entry does not take the defaults with `<<: *default`"
    assert load_hyperparams(agent, env_id) == entry  # selfgym's reading == the YAML's own (rl-zoo3's)
    for wrapper in agents_wrappers(entry):
        assert ":" not in wrapper, f"{wrapper}: rl-zoo3 imports wrappers as pkg.mod.Class"
        module, _, name = wrapper.rpartition(".")
        assert inspect.isclass(getattr(importlib.import_module(module), name))


def agents_wrappers(entry: dict) -> list[str]:
    spec = entry.get("env_wrapper")
    items = spec if isinstance(spec, list) else [spec] if spec else []
    return [item if isinstance(item, str) else next(iter(item)) for item in items]


@pytest.mark.parametrize(("agent", "env_id"), ALL_ENTRIES + [(path.stem, "default") for path in FILES])
def test_every_setting_is_one_the_agent_takes(agent: str, env_id: str) -> None:
    """No entry holds a setting its agent would refuse (e.g. rloo's old num_iterations)."""
    settings = set(_table(agent)[env_id]) - set(TRAINER_KEYS)
    valid = agents.valid_hyperparams(agents.get_agent_class(agent))
    assert valid is not None and settings <= set(valid), sorted(settings - set(valid or []))


def test_an_env_without_an_entry_gets_default() -> None:
    assert load_hyperparams("ppo", "Acrobot-v1") == _table("ppo")["default"]


@pytest.mark.parametrize(("agent", "env_id"), [e for e in SB3_ENTRIES if e[1] in registered_ids()])
def test_dict_observation_entries_name_multi_input_policy(agent: str, env_id: str) -> None:
    env = gym.make(env_id, **load_hyperparams(agent, env_id).get("env_kwargs", {}))
    try:
        is_dict = isinstance(env.observation_space, gym.spaces.Dict)
    finally:
        env.close()
    assert (load_hyperparams(agent, env_id)["policy"] == "MultiInputPolicy") == is_dict


# -- with rl-zoo3 itself ---------------------------------------------------------------------


@pytest.mark.parametrize(("agent", "env_id"), SB3_ENTRIES)
def test_rl_zoo3_reads_every_sb3_entry_into_arguments_the_algorithm_takes(agent: str, env_id: str, tmp_path: Path,
                                                                         capsys) -> None:
    pytest.importorskip("rl_zoo3")
    from rl_zoo3.exp_manager import ExperimentManager

    manager = ExperimentManager(argparse.Namespace(), agent, env_id, str(tmp_path), config=str(HYPERPARAMS_DIR / f"{agent}.yml"),
                                verbose=0)
    raw, saved = manager.read_hyperparameters()
    assert dict(saved) == load_hyperparams(agent, env_id)  # rl-zoo3 reads what selfgym reads
    kwargs, env_wrapper, _, _ = manager._preprocess_hyperparams(raw)
    accepted = set(inspect.signature(agents.get_agent_class(agent).__init__).parameters)
    assert set(kwargs) <= accepted, sorted(set(kwargs) - accepted)
    assert (env_wrapper is not None) == bool(load_hyperparams(agent, env_id).get("env_wrapper"))


def test_rl_zoo3_trains_a_selfgym_entry_with_conf(tmp_path: Path) -> None:
    pytest.importorskip("rl_zoo3")
    cmd = [sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", "selfgym/CalendarConflict-v0",
           "-conf", str(HYPERPARAMS_DIR / "ppo.yml"), "--gym-packages", "selfgym", "-n", "64", "-f", str(tmp_path / "logs"),
           "--eval-freq", "-1", "--seed", "0", "--vec-env", "dummy",
           "-params", "n_envs:1", "n_steps:32", "batch_size:32"]  # smaller rollouts: the rest is the entry as shipped
    out = subprocess.run(cmd, cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "logs" / "ppo" / "selfgym-CalendarConflict-v0_1"
    assert (run / "selfgym-CalendarConflict-v0.zip").is_file()
    saved = yaml.unsafe_load((run / "selfgym-CalendarConflict-v0" / "config.yml").read_text())  # rl-zoo3 writes an OrderedDict
    entry = load_hyperparams("ppo", "selfgym/CalendarConflict-v0")
    for key in ("gamma", "n_epochs", "ent_coef", "learning_rate", "policy_kwargs", "policy"):
        assert saved[key] == entry[key], key
