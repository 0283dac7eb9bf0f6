"""The layering contract, checked by import-linter over the package as it installs.

The repository maps its top-level folders into ``selfgym`` (setup.py), and import-linter reads
a package from one folder, so the test lays the folders out as the wheel does and lints that.
Function-level imports count: a cycle hidden inside a function fails the contract too.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter brings tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def package_folders() -> dict[str, str]:
    """setup.py's FOLDERS mapping (package name -> repository folder), read without running it."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "FOLDERS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no FOLDERS mapping")


def installed_layout(root: Path) -> Path:
    for package, folder in package_folders().items():
        shutil.copytree(REPO / folder, root / package.replace(".", "/"), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return root


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "HOME": str(root)}
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1]))"
    return subprocess.run([sys.executable, "-c", code, str(REPO / "pyproject.toml")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_layers_contract_holds(tmp_path):
    result = lint(installed_layout(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_contract_catches_an_upward_import(tmp_path):
    """An env that imports an agent, even inside a function, breaks the contract."""
    root = installed_layout(tmp_path)
    (root / "selfgym" / "envs" / "upward.py").write_text("def f():\n    from selfgym.agents import base\n    return base\n")
    result = lint(root)
    assert result.returncode != 0
    assert "selfgym.envs.upward -> selfgym.agents" in result.stdout


def test_every_module_of_selfgym_is_in_a_layer():
    """A module the contract does not name is not checked at all: name every one."""
    layers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {name for layer in layers for name in re.split(r"[|:]", layer) for name in [name.strip()] if name}
    children = {f"selfgym.{path.stem}" for path in (REPO / "selfgym").iterdir()
                if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()}
    children |= {package for package in package_folders() if package.count(".") == 1}
    assert children == named, f"not in a layer: {sorted(children - named)}; named but missing: {sorted(named - children)}"
