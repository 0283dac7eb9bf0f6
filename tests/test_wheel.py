"""The wheel as a user gets it: built from the tree, installed into a fresh venv, used from elsewhere.

An editable install and a checkout on ``sys.path`` hide packaging mistakes: a sub-package that
setup.py does not map, YAML files left out of the package data, code that still imports the
top-level ``envs``. These tests see only what the wheel ships.

No network: the wheel is built without build isolation, and the fresh venv borrows the
third-party packages (torch, gymnasium, ...) of the interpreter running the tests through a
``.pth`` line. That line only appends the folder to ``sys.path``; the folder is not a site dir,
so its own ``.pth`` hooks (the editable install's finder) do not run, and ``selfgym`` can only
come from the wheel, which the tests check.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from selfgym.config import TRAINER_KEYS
from tests.conftest import REPO
from tests.test_layers import package_folders
from tests.test_package import HEAVY, TOP_LEVEL_FOLDERS

# Build outputs, virtual environments and downloads in a checkout that are not part of the tree.
NOT_IN_TREE = (".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "logs",
               ".ci-venv", ".venv", "venv", "*.whl", "*.tar.gz")


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output when it fails."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def pip(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The running interpreter's pip, offline and quiet."""
    return run([sys.executable, "-m", "pip", *args, "--no-index", "--disable-pip-version-check", "-q"], cwd=cwd)


@dataclass
class Venv:
    root: Path

    @property
    def bin(self) -> Path:
        return self.root / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        return self.bin / ("python.exe" if os.name == "nt" else "python")

    def env(self) -> dict[str, str]:
        """A user's shell: no PYTHONPATH (the checkout must not leak in), one thread."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        return dict(env, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONNOUSERSITE="1", VIRTUAL_ENV=str(self.root))

    def run(self, *cmd: str | Path, cwd: Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a console script or ``python`` of this venv from ``cwd``."""
        argv = [str(self.bin / c) if c in ("selfgym-train", "selfgym-evaluate") else str(c) for c in cmd]
        if check:
            return run(argv, cwd=cwd, env=self.env(), timeout=timeout)
        return subprocess.run(argv, cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout)

    def python_json(self, code: str, cwd: Path) -> object:
        """Run ``code`` in this venv's interpreter; its last stdout line is JSON."""
        return json.loads(self.run(self.python, "-c", code, cwd=cwd).stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory) -> Path:
    """A copy of the checkout: building writes build/ and *.egg-info into the source folder, and
    a copy keeps the checkout clean and lets several test runs build side by side."""
    tree = tmp_path_factory.mktemp("tree") / "selfgym"
    shutil.copytree(REPO, tree, ignore=shutil.ignore_patterns(*NOT_IN_TREE))
    return tree


@pytest.fixture(scope="module")
def wheel(source_tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(source_tree), cwd=out)
    (built,) = out.glob("selfgym-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Venv:
    """A fresh venv holding the wheel, and the test interpreter's site-packages behind it."""
    venv = Venv(tmp_path_factory.mktemp("venv") / "fresh")
    run([sys.executable, "-m", "venv", "--without-pip", str(venv.root)], cwd=venv.root.parent)
    # Install before the .pth exists: pip must see an empty venv. With the borrowed folder on its
    # path it would find the editable selfgym there and could try to replace it in the dev venv.
    pip("--python", str(venv.python), "install", "--no-deps", str(wheel), cwd=venv.root)
    site = Path(venv.python_json("import sysconfig, json; print(json.dumps(sysconfig.get_paths()['purelib']))", cwd=venv.root))
    borrowed = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "_selfgym_test_borrowed_site.pth").write_text("".join(f"{p}\n" for p in borrowed))
    return venv


def tree_files(tree: Path, patterns: list[str]) -> set[str]:
    """Where each module and data file of the mapped folders lands in the wheel (setup.py's FOLDERS)."""
    expected = set()
    for package, folder in package_folders().items():
        for path in (tree / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and any(fnmatch.fnmatch(path.name, p) for p in patterns):
                expected.add("/".join([*package.split("."), *path.relative_to(tree / folder).parts]))
    return expected


def package_data_patterns() -> list[str]:
    """The globs pyproject.toml ships as package data in every package."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    table = tomllib.loads((REPO / "pyproject.toml").read_text())
    return table["tool"]["setuptools"]["package-data"]["*"]


def test_every_package_folder_is_mapped(source_tree):
    """A new top-level package folder that setup.py does not map would never be installed."""
    mapped = set(package_folders().values())
    packages = {d.name for d in source_tree.iterdir() if (d / "__init__.py").is_file()} - {"tests"}
    assert {"selfgym", *TOP_LEVEL_FOLDERS} <= mapped and packages <= mapped, sorted(packages - mapped)


def test_wheel_ships_every_module_and_data_file(wheel, source_tree):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = tree_files(source_tree, ["*.py"])
    data = tree_files(source_tree, [*package_data_patterns(), "*.yml"])  # hyperparams/*.yml, whatever pyproject says
    assert "selfgym/envs/grid/sparse_grid.py" in modules and "selfgym/hyperparams/ppo.yml" in data  # the walk found them
    assert not modules - names, f"modules missing from the wheel: {sorted(modules - names)}"
    assert not data - names, f"data files missing from the wheel: {sorted(data - names)}"
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"selfgym", wheel.name.split("-py")[0] + ".dist-info"}, top_level  # no generic top-level name


def test_wheel_from_the_sdist_matches(wheel, source_tree, tmp_path):
    """``python -m build`` makes the wheel from the sdist: a file the sdist drops is lost there."""
    sdist_dir, wheel_dir = tmp_path / "sdist", tmp_path / "wheel"
    code = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    name = run([sys.executable, "-c", code, str(sdist_dir)], cwd=source_tree).stdout.strip().splitlines()[-1]
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir), str(sdist_dir / name), cwd=tmp_path)
    (from_sdist,) = wheel_dir.glob("selfgym-*.whl")
    assert sorted(zipfile.ZipFile(from_sdist).namelist()) == sorted(zipfile.ZipFile(wheel).namelist())


def test_fresh_venv_imports_selfgym_from_the_wheel_only(venv, tmp_path):
    code = (
        "import importlib, json, sys\n"
        "found = {}\n"
        f"for name in {TOP_LEVEL_FOLDERS!r}:\n"
        "    try:\n"
        "        found[name] = importlib.import_module(name).__file__\n"
        "    except ModuleNotFoundError as exc:\n"
        "        found[name] = type(exc).__name__\n"
        "import selfgym, selfgym.envs, selfgym.hyperparams\n"
        "print(json.dumps({'top_level': found, 'files': [selfgym.__file__, selfgym.envs.__file__, selfgym.hyperparams.__file__],\n"
        f"                  'heavy': sorted(m for m in {HEAVY!r} if m in sys.modules), 'ids': selfgym.envs.registered_ids()}}))\n"
    )
    report = venv.python_json(code, cwd=tmp_path)
    assert report["top_level"] == dict.fromkeys(TOP_LEVEL_FOLDERS, "ModuleNotFoundError")
    root = venv.root.resolve()
    for file in report["files"]:
        assert Path(file).resolve().is_relative_to(root), f"{file} is not from the wheel in {root}"
    assert report["heavy"] == [] and "selfgym/SparseGrid-v0" in report["ids"]


def test_module_prefix_make_in_fresh_venv(venv, tmp_path):
    """``gym.make("selfgym:...")`` imports selfgym itself; nothing imported it before."""
    code = ("import json, sys, gymnasium as gym\n"
            "before = 'selfgym' in sys.modules\n"
            "env = gym.make('selfgym:selfgym/SparseGrid-v0')\n"
            "env.reset(seed=0)\n"
            "print(json.dumps([before, env.spec.id, env.spec.max_episode_steps]))\n")
    assert venv.python_json(code, cwd=tmp_path) == [False, "selfgym/SparseGrid-v0", 60]


def tuned_entry(agent: str, env_id: str) -> dict:
    """The repository's hyperparams/<agent>.yml: ``default`` updated by the env's entry."""
    table = yaml.safe_load((REPO / "hyperparams" / f"{agent}.yml").read_text())
    return {**(table.get("default") or {}), **table[env_id]}


def test_console_scripts_train_and_evaluate_from_another_folder(venv, tmp_path):
    venv.run("selfgym-train", "--env", "CartPole-v1", "--agent", "ppo", "-n", "3000", "--seed", "0",
             "--eval-freq", "0", "--no-final-eval", cwd=tmp_path)
    (run_dir,) = (tmp_path / "logs" / "ppo").iterdir()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    tuned = tuned_entry("ppo", "CartPole-v1")
    assert tuned.get("n_envs", 1) > 1 and "n_steps" in tuned  # a tuned entry, not defaults
    for key, value in tuned.items():
        if key != "n_timesteps":  # -n overrides it
            assert (config if key in TRAINER_KEYS else config["hyperparams"])[key] == value, key
    assert (config["n_timesteps"], config["seed"]) == (3000, 0)

    assert not (run_dir / "eval.json").exists()
    venv.run("selfgym-evaluate", "--run", str(run_dir), "-n", "2", cwd=tmp_path)
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert (evaluation["n_episodes"], evaluation["env"], evaluation["agent"]) == (2, "CartPole-v1", "ppo")
    assert len(evaluation["episodes"]) == 2 and evaluation["num_timesteps"] >= 3000
