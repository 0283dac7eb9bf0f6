"""selfgym as an installed package, seen from a folder that is not the checkout.

The repository's folders envs/, agents/, rewards/ and hyperparams/ install as ``selfgym.envs``,
... (setup.py). These tests run Python in a temporary folder without the checkout on
``PYTHONPATH``, as a user would, so a leftover ``import envs`` or a user's own ``envs/``
package cannot make them pass or fail by accident. tests/test_wheel.py does the same with the
built wheel; these are the fast checks against the development install.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selfgym.config import load_hyperparams
from tests.conftest import REPO, cli_env
from tests.test_layers import package_folders

HEAVY = ("torch", "pybullet", "cv2", "stable_baselines3")
TOP_LEVEL_FOLDERS = ("envs", "agents", "rewards", "hyperparams")
# One id per env family, so an id lost from the registration block fails a test.
FAMILIES = {"selfgym/PlayTable-v0", "selfgym/DroneRoom-v0", "selfgym/CalendarConflict-v0",
            "selfgym/TextReasoning-v0", "selfgym/SparseGrid-v0"}


def user_env() -> dict[str, str]:
    """cli_env() without the checkout on PYTHONPATH: selfgym comes from the install only."""
    env = cli_env()
    paths = [p for p in env["PYTHONPATH"].split(os.pathsep) if p and Path(p).resolve() != REPO]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def python(code: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=user_env(), capture_output=True, text=True,
                          timeout=timeout)


def python_json(code: str, cwd: Path) -> object:
    """Run ``code`` in a fresh interpreter in ``cwd``; its last stdout line is JSON."""
    result = python(code, cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_selfgym_registers_every_id_lightly(tmp_path):
    code = (
        "import importlib.util, json, sys, gymnasium as gym\n"
        "before = set(gym.registry)\n"
        "import selfgym\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "new = sorted(set(gym.registry) - before)\n"
        "specs = {i: (gym.spec(i).max_episode_steps, gym.spec(i).entry_point) for i in new}\n"
        "missing = [i for i, (_, ep) in specs.items() if not isinstance(ep, str) or importlib.util.find_spec(ep.split(':')[0]) is None]\n"
        "print(json.dumps({'new': new, 'ids': selfgym.envs.registered_ids(), 'heavy': heavy, 'missing': missing,\n"
        "                  'steps': {i: s for i, (s, _) in specs.items()}}))\n"
    )
    report = python_json(code, tmp_path)
    assert report["heavy"] == []
    assert report["new"] == report["ids"] and FAMILIES <= set(report["ids"])  # only namespaced ids, all of them
    assert report["missing"] == [], "string entry points whose module is not installed"
    assert all(isinstance(s, int) and s > 0 for s in report["steps"].values()), report["steps"]


def test_module_prefix_make_works_in_a_fresh_process(tmp_path):
    """``gym.make("selfgym:...")`` imports selfgym itself, as rl-zoo3 and other tools rely on."""
    code = ("import json, sys, gymnasium as gym\n"
            "before = 'selfgym' in sys.modules\n"
            "env = gym.make('selfgym:selfgym/PlayTable-v0')\n"
            "obs, _ = env.reset(seed=0)\n"
            "print(json.dumps([before, env.spec.id, bool(env.observation_space.contains(obs))]))\n"
            "env.close()\n")
    assert python_json(code, tmp_path) == [False, "selfgym/PlayTable-v0", True]


def test_top_level_folders_are_not_importable_elsewhere(tmp_path):
    code = ("import importlib, json\n"
            "out = {}\n"
            f"for name in {TOP_LEVEL_FOLDERS!r}:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "        out[name] = 'imported'\n"
            "    except ModuleNotFoundError:\n"
            "        out[name] = 'ModuleNotFoundError'\n"
            "    importlib.import_module('selfgym.' + name)\n"
            "print(json.dumps(out))\n")
    assert python_json(code, tmp_path) == dict.fromkeys(TOP_LEVEL_FOLDERS, "ModuleNotFoundError")


def top_level_folder_imports(path: Path) -> list[str]:
    """Absolute imports of ``envs``, ``agents``, ... in a file: they work only inside the checkout."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        found += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in TOP_LEVEL_FOLDERS]
    return found


def test_no_code_imports_a_top_level_folder():
    """Every module, script and benchmark, including code the other tests never run."""
    files = [p for folder in {*package_folders().values(), "benchmarks", "tests"} for p in (REPO / folder).rglob("*.py")]
    files += list(REPO.glob("*.py"))
    assert any(p.name == "sparse_grid.py" for p in files)
    assert [hit for p in files for hit in top_level_folder_imports(p)] == []


def test_gym_packages_flag_as_in_rl_zoo3(run_cli, tmp_path):
    result = run_cli("train.py", "--gym-packages", "selfgym", "--env", "selfgym/SparseGrid-v0", "--agent", "ppo",
                     "-n", "256", "--seed", "0", "-params", "n_steps:64", "batch_size:64", "n_epochs:1",
                     "--eval-freq", "0", "--no-final-eval")
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "logs" / "ppo").iterdir()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["gym_packages"] == ["selfgym"] and config["env"] == "selfgym/SparseGrid-v0"
    assert (run_dir / "model" / "state.pt").is_file()


def test_a_users_own_envs_package_does_not_shadow_ours(tmp_path):
    """A project folder with its own envs/ (or agents/, ...) beside the user's script."""
    for name in TOP_LEVEL_FOLDERS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name}/ was imported')\n")
    code = ("import json, selfgym, gymnasium as gym\n"
            "env = gym.make('selfgym/SparseGrid-v0')\n"
            "env.reset(seed=0)\n"
            "from selfgym.config import load_hyperparams\n"
            "import selfgym.rewards, selfgym.agents\n"
            "print(json.dumps(load_hyperparams('ppo', 'CartPole-v1')['n_steps']))\n")
    assert python_json(code, tmp_path) == yaml.safe_load((REPO / "hyperparams" / "ppo.yml").read_text())["CartPole-v1"]["n_steps"]


@pytest.mark.parametrize("folder", ["empty", "missing"])
def test_missing_hyperparameter_data_names_the_folder(tmp_path, folder):
    directory = tmp_path / folder
    if folder == "empty":
        directory.mkdir()
    with pytest.raises(FileNotFoundError, match="missing its package data") as info:
        load_hyperparams("ppo", "CartPole-v1", directory=directory)
    assert str(directory) in str(info.value)


@pytest.mark.parametrize("content", [None, "CartPole-v1:\n  n_steps: [1, 2\n", b"\xff\xfe\n"],
                         ids=["missing", "malformed", "not-utf8"])
def test_bad_conf_file_is_one_usage_error(run_cli, tmp_path, content):
    conf = tmp_path / "my_hyperparams.yml"
    if isinstance(content, str):
        conf.write_text(content)
    elif isinstance(content, bytes):
        conf.write_bytes(content)
    result = run_cli("train.py", "--env", "CartPole-v1", "--agent", "ppo", "-n", "64", "-conf", str(conf))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    (error,) = [line for line in result.stderr.splitlines() if "error:" in line]
    assert error.startswith(("train.py: error:", "error:")) and conf.name in error, result.stderr
    assert not (tmp_path / "logs").exists()
