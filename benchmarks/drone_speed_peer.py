"""Worker for drone_speed.py, run by the peer's own venv: gym-pybullet-drones' HoverAviary with
its 64 x 48 RGB camera (obs RGB, act ONE_D_RPM, ctrl_freq 48, pyb_freq 240), random actions.

It imports neither selfgym nor anything of ours. It reads a step count per line on stdin,
steps that many times (resetting at episode ends) and answers one line: steps per second.
An empty line or end of input ends it.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from gym_pybullet_drones.envs.HoverAviary import HoverAviary
from gym_pybullet_drones.utils.enums import ActionType, ObservationType


def main() -> None:
    reply, sys.stdout = sys.stdout, sys.stderr  # the peer prints its own notes: keep the pipe for answers
    env = HoverAviary(obs=ObservationType.RGB, act=ActionType.ONE_D_RPM, ctrl_freq=48, pyb_freq=240)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    print(f"ready {env.observation_space.shape} {env.action_space.shape}", file=reply, flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        steps = int(line)
        start = time.perf_counter()
        for _ in range(steps):
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        print(steps / (time.perf_counter() - start), file=reply, flush=True)
    env.close()


if __name__ == "__main__":
    main()
