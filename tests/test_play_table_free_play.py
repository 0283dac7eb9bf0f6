"""PlayTable without a task is free play with a reward of 0: making it warns, once per process,
naming ``task=`` and the goal env; a task or the goal env does not warn."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, cli_env

SCRIPT = """
import warnings, gymnasium as gym, selfgym
warnings.simplefilter("always")
def made(env_id, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym.make(env_id, **kw).close()
    return [str(w.message) for w in caught if "free play" in str(w.message)]
print("RESULT", len(made("selfgym/PlayTable-v0", task="open_drawer")), len(made("selfgym/PlayTableGoal-v0")))
first = made("selfgym/PlayTable-v0")
print("RESULT", len(first), len(made("selfgym/PlayTable-v0")), len(made("selfgym/PlayTablePixels-v0")))
print("RESULT", first[0])
"""


def test_free_play_warns_once_naming_task_and_the_goal_env() -> None:
    # a fresh interpreter: the warning is once per process
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [line[len("RESULT "):] for line in out.stdout.splitlines() if line.startswith("RESULT ")]  # pybullet prints too
    assert lines[0] == "0 0"  # a task, or the goal env: no warning
    assert lines[1] == "1 0 0"  # the first free-play env warns; later ones (a VecEnv's other sub-envs) do not
    message = lines[2]
    assert "reward is always 0" in message and "task=" in message and "selfgym/PlayTableGoal-v0" in message
    assert "open_drawer" in message
