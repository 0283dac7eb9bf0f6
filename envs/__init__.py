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
_register("PlayTable-v0", "selfgym.envs.play_table.env:PlayTableEnv", 100)
_register("PlayTablePixels-v0", "selfgym.envs.play_table.env:PlayTableEnv", 100, obs_mode="pixels")
_register("PlayTableGoal-v0", "selfgym.envs.play_table.env:PlayTableGoalEnv", 100)
_register("PlayTablePixelsGoal-v0", "selfgym.envs.play_table.pixels:PlayTablePixelsGoalEnv", 100)

# --- DroneRoom (envs/drone) ----------------------------------------------------------------
# 60 s flights at 10 Hz; a longer flight_time needs gym.make(..., max_episode_steps=N) too.
_register("DroneRoom-v0", "selfgym.envs.drone.room_env:DroneRoomEnv", 600)
_register("DroneRoomDiscrete-v0", "selfgym.envs.drone.room_env:DroneRoomEnv", 600, discrete=True)
# RL path: observations are monocular estimates learned online from stereo labels
_register("DroneRoomMonoEstimate-v0", "selfgym.envs.drone.wrappers:make_mono_estimate_env", 600)

# --- CalendarConflict (envs/calendar) ------------------------------------------------------
_register("CalendarConflict-v0", "selfgym.envs.calendar.env:CalendarConflictEnv", 5000)
# text form for LLM policies: gym.make("selfgym/CalendarConflict-v0", obs_mode="text") (a Text
# observation space cannot pass SB3's check_env, so it has no id of its own)

# --- Text environments (envs/text) ---------------------------------------------------------
_register("TextReasoning-v0", "selfgym.envs.text.reasoning:TextReasoningEnv", max_episode_steps=2)

# --- CookingWorld (envs/cooking): task-agnostic text world for autotelic agents (LMA3) -------
_register("CookingWorld-v0", "selfgym.envs.cooking.env:CookingWorldEnv", 50)

# --- SparseGrid (envs/grid): sparse reward in the far corner, for exploration bonuses -------
_register("SparseGrid-v0", "selfgym.envs.grid.sparse_grid:SparseGridEnv", 60)
_register("SparseGridShuffled-v0", "selfgym.envs.grid.sparse_grid:SparseGridEnv", 60, shuffle_actions=True, one_hot=True)
