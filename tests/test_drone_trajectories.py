"""Speed work on DroneRoom's step must not change seeded flights: poses, collisions and ground
truth per step against a recording made before the step was optimised (geometry only: it
does not depend on the renderer, so it holds on any machine)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from selfgym.envs.drone.room_env import DroneRoomEnv

RECORDING = json.loads((Path(__file__).parent / "data" / "drone_trajectories.json").read_text())["trajectories"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seeded_flight_matches_the_recording(seed):
    env = DroneRoomEnv(disparity_mode="fast_from_depth", flight_time=20.0)
    env.reset(seed=seed)
    rng = np.random.default_rng(100 + seed)
    for t, expected in enumerate(RECORDING[str(seed)]):
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        action[0] = 1.0 if t % 7 else action[0]
        _, _, terminated, truncated, info = env.step(action)
        got = [float(v) for v in env.pose] + [float(info["frame"]["collision"]), info["gt"]["clearance"],
                                              info["gt"]["distance"]]
        assert got == expected, (seed, t)  # exactly: the same floats, not close ones
        if terminated or truncated:
            env.reset()
    env.close()
