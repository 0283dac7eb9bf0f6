"""selfgym's Gymnasium environments; importing this package registers every ``selfgym/`` id.

Each family lives in its own sub-package and registers its ids in the block below, with a
string entry point so that nothing heavy (pybullet, OpenCV) is imported until an env is made.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

NAMESPACE = "selfgym"


def _register(name: str, entry_point: str, max_episode_steps: int | None, **kwargs: Any) -> None:
    env_id = f"{NAMESPACE}/{name}"
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, max_episode_steps=max_episode_steps, kwargs=kwargs)


def registered_ids() -> list[str]:
    """Every id this package registers."""
    return sorted(i for i in gym.registry if i.startswith(NAMESPACE + "/"))


# --- PlayTable (envs/play_table) -----------------------------------------------------------

# --- DroneRoom (envs/drone) ----------------------------------------------------------------

# --- CalendarConflict (envs/calendar) ------------------------------------------------------

# --- Text environments (envs/text) ---------------------------------------------------------
