"""Maps the repository's top-level folders into the one installed package ``selfgym``.

The folders users read (``envs/``, ``agents/``, ``rewards/``, ``hyperparams/``) stay at the top
of the repository, but install as ``selfgym.envs``, ``selfgym.agents``, ``selfgym.rewards`` and
``selfgym.hyperparams``: no generic top-level name is installed. Everything else is in
pyproject.toml.
"""

from setuptools import find_packages, setup

FOLDERS = {
    "selfgym": "selfgym",
    "selfgym.envs": "envs",
    "selfgym.agents": "agents",
    "selfgym.rewards": "rewards",
    "selfgym.hyperparams": "hyperparams",
}

packages = []
for package, folder in FOLDERS.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder) if f"{package}.{sub}" not in FOLDERS]

setup(packages=packages, package_dir=FOLDERS)
