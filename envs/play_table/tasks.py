"""The 18 Play-LMP evaluation tasks: start conditions, success detectors, progress and reach targets.

Plus downstream tasks outside that suite (``DOWNSTREAM_TASKS``: ``push_to_target``), for
agents that reuse learned skills; ``TASK_NAMES`` stays the 18 the play agents are scored on.

Everything is a function of the 22-float scene state (``scene.SCENE_KEYS``): ``s0`` is the state
at reset, ``s`` the current one. The paper's exact per-task criteria (its appendix) are not
known to us; the thresholds below are ours and are stated in each detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from selfgym.envs.play_table import layout as L
from selfgym.envs.play_table.observation import SCENE_KEYS as K

LONG_FLAT_Z = L.LONG_SIZE[2] / 2  # resting height of the long block lying flat
LONG_UP_Z = L.LONG_SIZE[0] / 2  # resting height standing upright
CUBE_Z = L.CUBE_SIZE[2] / 2
LIFT = 0.05


def _rotmat(quat: np.ndarray) -> np.ndarray:
    x, y, z, w = quat
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def long_axis_tilt(s: np.ndarray) -> float:
    """Angle (rad) between the long block's long axis and the vertical: 0 upright, pi/2 flat."""
    axis = _rotmat(s[K["long_quat"]])[:, 0]
    return float(np.arccos(min(1.0, abs(axis[2]))))


def long_yaw(s: np.ndarray) -> float:
    axis = _rotmat(s[K["long_quat"]])[:, 0]
    return float(np.arctan2(axis[1], axis[0]))


def yaw_change(s0: np.ndarray, s: np.ndarray) -> float:
    """Signed yaw change of the flat long block, in (-pi/2, pi/2] (its long axis has no head)."""
    d = long_yaw(s) - long_yaw(s0)
    return float((d + np.pi / 2) % np.pi - np.pi / 2)


def in_shelf(pos: np.ndarray) -> bool:
    return bool(L.SHELF_X[0] < pos[0] < L.SHELF_X[1] and L.SHELF_Y[0] < pos[1] < L.SHELF_Y[1]
                and pos[2] > L.SHELF_TOP)


def _flat(s):
    return long_axis_tilt(s) > np.radians(60)


def _upright(s):
    return long_axis_tilt(s) < np.radians(30)


@dataclass(frozen=True)
class Task:
    """start: what reset() must arrange; target: the scene point the hand should reach;
    marker: ((x, y), radius) of a disc the scene draws on the desk (push_to_target's region)."""

    name: str
    start: dict
    success: Callable[[np.ndarray, np.ndarray], bool]
    progress: Callable[[np.ndarray, np.ndarray], float]
    target: Callable[[np.ndarray], np.ndarray]
    marker: tuple[tuple[float, float], float] | None = None


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _drawer_handle(s):
    """The gap between the handle bar and the drawer front, where a finger hooks in."""
    return np.array(L.DRAWER_HANDLE) + [0.023 - float(s[K["drawer"]][0]), 0, -0.01]


def _door_handle(s):
    return np.array(L.DOOR_HANDLE) - [0, float(s[K["door"]][0]), 0]


def _button(i):
    return lambda s: np.array([*L.BUTTON_XY[i], L.BUTTON_TOP])


def _long(s):
    return s[K["long_pos"]].astype(np.float64)


def _cube(s):
    return s[K["cube_pos"]].astype(np.float64)


def _lifted(key, base_z):
    return lambda s0, s: float(s[K[key]][2]) > base_z + LIFT


def _push_button(i):
    return Task(f"push_{L.BUTTON_COLORS[i]}_button", {"light": (i, 0.0)},
                lambda s0, s: bool(s[K["lights"]][i] != s0[K["lights"]][i]),
                lambda s0, s: float(s[K["lights"]][i] != s0[K["lights"]][i]) or _clip01(s[K["buttons"]][i] / L.BUTTON_PRESSED) * 0.5,
                _button(i))


def _sweep(axis: int, sign: float, name: str):
    def moved(s0, s):
        return sign * float(s[K["long_pos"]][axis] - s0[K["long_pos"]][axis])
    return Task(name, {"long": "flat"},
                lambda s0, s: moved(s0, s) > 0.10 and float(s[K["long_pos"]][2]) < LONG_FLAT_Z + 0.02,
                lambda s0, s: _clip01(moved(s0, s) / 0.10), _long)


def _rotate(sign: float, name: str):
    return Task(name, {"long": "flat"},
                lambda s0, s: sign * yaw_change(s0, s) > np.radians(45) and _flat(s)
                and float(s[K["long_pos"]][2]) < LONG_FLAT_Z + 0.02,
                lambda s0, s: _clip01(sign * yaw_change(s0, s) / np.radians(45)), _long)


_TASKS = [
    Task("open_drawer", {"drawer": 0.0}, lambda s0, s: float(s[K["drawer"]][0]) > 0.10,
         lambda s0, s: _clip01(float(s[K["drawer"]][0]) / 0.10), _drawer_handle),
    Task("close_drawer", {"drawer": 0.15}, lambda s0, s: float(s[K["drawer"]][0]) < 0.02,
         lambda s0, s: _clip01((0.15 - float(s[K["drawer"]][0])) / 0.13), _drawer_handle),
    Task("open_sliding_door", {"door": 0.0}, lambda s0, s: float(s[K["door"]][0]) > 0.12,
         lambda s0, s: _clip01(float(s[K["door"]][0]) / 0.12), _door_handle),
    Task("close_sliding_door", {"door": 0.15}, lambda s0, s: float(s[K["door"]][0]) < 0.03,
         lambda s0, s: _clip01((0.15 - float(s[K["door"]][0])) / 0.12), _door_handle),
    _push_button(0), _push_button(1), _push_button(2),
    # grasp_lift: the cube held >= 5 cm above the table.
    Task("grasp_lift", {}, _lifted("cube_pos", CUBE_Z),
         lambda s0, s: _clip01((float(s[K["cube_pos"]][2]) - CUBE_Z) / LIFT), _cube),
    # grasp_upright / grasp_flat: the long block, standing / lying at reset, lifted >= 5 cm in that pose.
    Task("grasp_upright", {"long": "upright"}, lambda s0, s: _lifted("long_pos", LONG_UP_Z)(s0, s) and _upright(s),
         lambda s0, s: _clip01((float(s[K["long_pos"]][2]) - LONG_UP_Z) / LIFT), _long),
    Task("grasp_flat", {"long": "flat"}, lambda s0, s: _lifted("long_pos", LONG_FLAT_Z)(s0, s) and _flat(s),
         lambda s0, s: _clip01((float(s[K["long_pos"]][2]) - LONG_FLAT_Z) / LIFT), _long),
    # sweep left/right: the flat long block slid >= 10 cm along +y / -y, still on the table.
    _sweep(1, 1.0, "sweep_left"), _sweep(1, -1.0, "sweep_right"),
    # knock_over: the upright long block ends lying (tilt > 60 deg).
    Task("knock_over", {"long": "upright"}, lambda s0, s: _flat(s),
         lambda s0, s: _clip01(long_axis_tilt(s) / np.radians(60)), lambda s: _long(s) + [0, 0, 0.03]),
    # rotate left/right: the flat long block turned >= 45 deg counter-clockwise / clockwise, on the table.
    _rotate(1.0, "rotate_left"), _rotate(-1.0, "rotate_right"),
    # put_into_shelf / pull_out_of_shelf: the cube onto the raised shelf / from it back onto the table.
    Task("put_into_shelf", {"cube": "table"}, lambda s0, s: in_shelf(s[K["cube_pos"]]),
         lambda s0, s: float(in_shelf(s[K["cube_pos"]])) or 0.5 * _clip01((float(s[K["cube_pos"]][2]) - CUBE_Z) / 0.08),
         _cube),
    Task("pull_out_of_shelf", {"cube": "shelf"},
         lambda s0, s: not in_shelf(s[K["cube_pos"]]) and float(s[K["cube_pos"]][2]) < CUBE_Z + 0.01,
         lambda s0, s: float(not in_shelf(s[K["cube_pos"]])), _cube),
    # sweep_object: the flat long block pushed >= 10 cm toward the robot (-x), on the table.
    _sweep(0, -1.0, "sweep_object"),
]
TASKS: dict[str, Task] = {t.name: t for t in _TASKS}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)
assert len(TASKS) == 18


# --- downstream tasks: for agents built on learned skills (skill_hrl); not in the Play-LMP suite ---
TARGET_XY = np.array(L.TARGET_XY)
# push_to_target's start: the cube's centre at this distance (m) and angle (rad, from +x, counter-
# clockwise) from the target's, the side with room for the hand (not toward the robot or the cabinet).
START_RADII, START_ANGLES = (0.10, 0.14), (np.radians(-15), np.radians(100))


def cube_to_target(s: np.ndarray) -> float:
    """Horizontal distance (m) from the cube's centre to the target region's centre."""
    return float(np.linalg.norm(s[K["cube_pos"]][:2] - TARGET_XY))


def _behind_cube(s: np.ndarray) -> np.ndarray:
    """Where the hand pushes from: 6 cm behind the cube, on the line from the target through it."""
    cube = _cube(s)
    away = cube[:2] - TARGET_XY
    away = away / max(float(np.linalg.norm(away)), 1e-6)
    return np.array([*(cube[:2] + 0.06 * away), 0.02])


# push_to_target: the cube resting on the desk with its centre inside the marked disc (radius 5 cm).
PUSH_TO_TARGET = Task(
    "push_to_target", {"cube": "off_target"},
    lambda s0, s: cube_to_target(s) < L.TARGET_RADIUS and float(s[K["cube_pos"]][2]) < CUBE_Z + 0.01,
    lambda s0, s: _clip01((cube_to_target(s0) - cube_to_target(s)) / max(cube_to_target(s0) - L.TARGET_RADIUS, 1e-6)),
    _behind_cube, marker=(L.TARGET_XY, L.TARGET_RADIUS))
DOWNSTREAM_TASKS: dict[str, Task] = {PUSH_TO_TARGET.name: PUSH_TO_TARGET}


def get_task(name: str | None) -> Task | None:
    """The task called ``name``; None for free play. A wrong name lists the valid ones."""
    if name is None or name in ("none", "None", "play"):
        return None
    task = TASKS.get(name) or DOWNSTREAM_TASKS.get(name)
    if task is None:
        raise ValueError(f"unknown PlayTable task {name!r}; valid tasks: {', '.join(TASK_NAMES)}, "
                         f"downstream: {', '.join(DOWNSTREAM_TASKS)} (or None for free play)")
    return task
