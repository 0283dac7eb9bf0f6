"""Scripted motion primitives: the scripted expert (aimed at a task) and the noisy play policy.

A primitive is a short list of end-effector waypoints (position, yaw, gripper, step budget)
planned from the scene state; ``WaypointFollower`` turns the current waypoint into an ``ee``
action for ``PlayTableEnv``. The expert chains the primitives a task needs; the play policy
picks random primitives toward random objects forever and adds action noise, which gives
the long unsegmented logs that learning from play needs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from selfgym.envs.play_table import layout as L
from selfgym.envs.play_table import tasks as T
from selfgym.envs.play_table.env import POS_STEP, ROT_STEP
from selfgym.envs.play_table.observation import SCENE_KEYS as K

OPEN, CLOSED = 1.0, -1.0
HIGH = 0.16  # travel height above the table


class Waypoint(NamedTuple):
    pos: tuple[float, float, float]
    yaw: float = 0.0
    grip: float = OPEN
    steps: int = 40  # give up on this waypoint after this many control steps
    tol: float = 0.012  # reached when the hand is this close (m); tol < 0 means "wait all steps"


def _wrap_half(a: float) -> float:
    """An angle modulo pi, in [-pi/2, pi/2): grasp yaws of a two-finger hand."""
    return float((a + np.pi / 2) % np.pi - np.pi / 2)


def reach(p, yaw=0.0, grip=OPEN) -> list[Waypoint]:
    return [Waypoint((p[0], p[1], HIGH), yaw, grip), Waypoint(tuple(p), yaw, grip)]


def grasp(p, yaw: float, lift: float = 0.12) -> list[Waypoint]:
    x, y, z = p
    return [Waypoint((x, y, z + 0.10), yaw, OPEN), Waypoint((x, y, z + 0.02), yaw, OPEN, tol=0.008),
            Waypoint((x, y, z), yaw, OPEN, 20, 0.006),
            Waypoint((x, y, z), yaw, CLOSED, 8, -1), Waypoint((x, y, z + lift), yaw, CLOSED, 40, 0.015)]


def place(p, yaw: float) -> list[Waypoint]:
    x, y, z = p
    return [Waypoint((x, y, max(z + 0.08, HIGH)), yaw, CLOSED), Waypoint((x, y, z), yaw, CLOSED, 30, 0.01),
            Waypoint((x, y, z), yaw, OPEN, 6, -1), Waypoint((x, y, z + 0.10), yaw, OPEN)]


def push(start, end, yaw: float = 0.0, grip: float = CLOSED) -> list[Waypoint]:
    (x0, y0, z0), (x1, y1, z1) = start, end
    return [Waypoint((x0, y0, max(HIGH, z0 + 0.08)), yaw, grip), Waypoint((x0, y0, z0), yaw, grip, 30, 0.01),
            Waypoint((x1, y1, z1), yaw, grip, 50, 0.015), Waypoint((x1, y1, max(HIGH, z1 + 0.08)), yaw, grip)]


def press(p) -> list[Waypoint]:
    x, y, _ = p
    return [Waypoint((x, y, 0.10), 0.0, CLOSED), Waypoint((x, y, L.BUTTON_TOP - 0.022), 0.0, CLOSED, 20, 0.008),
            Waypoint((x, y, 0.12), 0.0, CLOSED)]


# --- the primitives, aimed at the scene's objects ------------------------------------------
def drawer_plan(s: np.ndarray, open_: bool, amount: float = 0.15) -> list[Waypoint]:
    hx, hy, hz = L.DRAWER_HANDLE
    q = float(s[K["drawer"]][0])
    if open_:  # hook the gap between the handle bar and the drawer front, pull toward -x
        gx = hx - q + 0.023
        return push((gx, hy, hz - 0.01), (gx - amount, hy, hz - 0.01), 0.0, CLOSED)
    bx = hx - q - 0.03  # in front of the bar, push toward +x
    return push((bx, hy, hz), (hx + 0.01, hy, hz), 0.0, CLOSED)


def door_plan(s: np.ndarray, open_: bool, amount: float = 0.145) -> list[Waypoint]:
    dx, dy, dz = L.DOOR_HANDLE
    y = dy - float(s[K["door"]][0])
    side = 0.035 if open_ else -0.035
    end = y - amount if open_ else dy + 0.01
    # fingertips high on the bar so that the hand body passes above it
    return push((dx, y + side, dz + 0.025), (dx, end, dz + 0.025), 0.0, CLOSED)


def block_yaw(s: np.ndarray) -> float:
    return _wrap_half(T.long_yaw(s) + 0.0)


def pick_and_place(s, key: str, dest) -> list[Waypoint]:
    p = s[K[key + "_pos"]].astype(float)
    yaw = block_yaw(s) if key == "long" else _cube_yaw(s)
    return grasp(p, yaw, 0.12) + place(dest, yaw)


def upright_pick_and_place(s, dest_xy) -> list[Waypoint]:
    """Lift the standing long block by its top (the grasp_upright expert) and stand it down at
    ``dest_xy``: without it play never holds an upright block (it only knocks it over)."""
    plan = expert_plan("grasp_upright", s)
    grip_z = plan[-1].pos[2] - 0.12  # the grasp height (the last waypoint lifts 12 cm)
    return plan + place((float(dest_xy[0]), float(dest_xy[1]), grip_z + 0.01), 0.0)


def _cube_yaw(s) -> float:
    x, y, z, w = s[K["cube_quat"]]
    return float((np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)) + np.pi / 4) % (np.pi / 2) - np.pi / 4)


def sweep_plan(s, key: str, direction, dist: float = 0.16) -> list[Waypoint]:
    """Push a block along a horizontal direction with the closed fingers (open ones would straddle it)."""
    p = s[K[key + "_pos"]].astype(float)
    d = np.asarray([*direction[:2], 0.0], float)
    d /= np.linalg.norm(d)
    yaw = _wrap_half(np.arctan2(d[1], d[0]))  # finger axis (hand y) across the push direction
    start = p - d * 0.075
    start[2] = 0.02
    end = start + d * dist
    return push(tuple(start), tuple(end), yaw, CLOSED)


def rotate_plan(s, sign: float, angle: float = np.radians(75)) -> list[Waypoint]:
    p = s[K["long_pos"]].astype(float)
    y0 = block_yaw(s)
    y0 = y0 - np.pi if y0 + sign * angle > 1.45 else (y0 + np.pi if y0 + sign * angle < -1.45 else y0)
    y1 = y0 + sign * angle
    x, y, z = p
    return [Waypoint((x, y, z + 0.1), y0), Waypoint((x, y, z), y0, OPEN, 30, 0.006), Waypoint((x, y, z), y0, CLOSED, 8, -1),
            Waypoint((x, y, z + 0.005), y1, CLOSED, 35, -1), Waypoint((x, y, z + 0.005), y1, OPEN, 6, -1),
            Waypoint((x, y, HIGH), y1, OPEN)]


def expert_plan(task: str, s: np.ndarray) -> list[Waypoint]:
    """Waypoints that solve ``task`` from scene state ``s`` (its reset state)."""
    long_p = s[K["long_pos"]].astype(float)
    if task in ("open_drawer", "close_drawer"):
        return drawer_plan(s, task == "open_drawer")
    if task in ("open_sliding_door", "close_sliding_door"):
        return door_plan(s, task == "open_sliding_door")
    if task.startswith("push_") and task.endswith("_button"):
        i = L.BUTTON_COLORS.index(task.split("_")[1])
        return press((*L.BUTTON_XY[i], L.BUTTON_TOP))
    if task == "grasp_lift":
        return grasp(s[K["cube_pos"]].astype(float), _cube_yaw(s), 0.12)
    if task == "grasp_flat":
        return grasp(long_p, block_yaw(s), 0.12)
    if task == "grasp_upright":
        top = long_p + [0, 0, T.LONG_UP_Z - 0.025]
        x, y, z, w = s[K["long_quat"]]
        return grasp(top, 0.0, 0.12)
    if task == "knock_over":
        return push((long_p[0] - 0.07, long_p[1], 0.08), (long_p[0] + 0.08, long_p[1], 0.08), np.pi / 2 - 0.1, OPEN)
    if task in ("rotate_left", "rotate_right"):
        return rotate_plan(s, 1.0 if task == "rotate_left" else -1.0)
    if task in ("sweep_left", "sweep_right", "sweep_object"):
        d = {"sweep_left": (0, 1), "sweep_right": (0, -1), "sweep_object": (-1, 0)}[task]
        return sweep_plan(s, "long", d)
    if task == "put_into_shelf":
        dest = ((L.SHELF_X[0] + L.SHELF_X[1]) / 2 - 0.02, (L.SHELF_Y[0] + L.SHELF_Y[1]) / 2, L.SHELF_TOP + T.CUBE_Z + 0.01)
        return pick_and_place(s, "cube", dest)
    if task == "pull_out_of_shelf":
        return pick_and_place(s, "cube", (0.42, 0.05, T.CUBE_Z + 0.01))
    if task == "push_to_target":  # the hand starts 7.5 cm behind the cube, which ends ~3 cm ahead of it
        toward = T.TARGET_XY - s[K["cube_pos"]][:2]
        return sweep_plan(s, "cube", toward, float(np.linalg.norm(toward)) + 0.03)
    raise ValueError(f"no expert plan for task {task!r}")


class WaypointFollower:
    """Turns a waypoint list into ``ee`` actions, one per call, with optional Gaussian noise."""

    def __init__(self, plan: list[Waypoint], noise: float = 0.0, rng: np.random.Generator | None = None) -> None:
        self.plan, self.noise, self.rng = list(plan), noise, rng or np.random.default_rng()
        self.i, self.t = 0, 0

    @property
    def done(self) -> bool:
        return self.i >= len(self.plan)

    def act(self, proprio: np.ndarray) -> np.ndarray:
        if self.done:
            return np.array([0, 0, 0, 0, 0, 0, self.plan[-1].grip if self.plan else OPEN], np.float32)
        wp = self.plan[self.i]
        err = np.asarray(wp.pos) - proprio[0:3]
        rot = np.array([-proprio[3], -proprio[4], wp.yaw - proprio[5]])
        a = np.concatenate([np.clip(err / POS_STEP, -1, 1), np.clip(rot / ROT_STEP, -1, 1), [wp.grip]])
        self.t += 1
        if (wp.tol > 0 and np.linalg.norm(err) < wp.tol) or self.t >= wp.steps:
            self.i, self.t = self.i + 1, 0
        if self.noise > 0:
            a[:6] += self.rng.normal(0, self.noise, 6)
        return np.clip(a, -1, 1).astype(np.float32)


REPLAN_TASKS = ("push_to_target",)  # a push that stopped short is planned again from where the cube is


class ScriptedExpert:
    """The task expert: plans at reset from the scene state, then follows the waypoints
    (for ``REPLAN_TASKS``, plans again from the current state when they are done)."""

    def __init__(self, task: str, noise: float = 0.0, seed: int | None = None) -> None:
        self.task, self.noise, self.rng = task, noise, np.random.default_rng(seed)
        self.follower: WaypointFollower | None = None

    def reset(self, obs: np.ndarray) -> None:
        self.follower = WaypointFollower(expert_plan(self.task, np.asarray(obs)[15:]), self.noise, self.rng)

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.follower is None or (self.follower.done and self.task in REPLAN_TASKS):
            self.reset(obs)
        return self.follower.act(np.asarray(obs)[:15])


class PlayPolicy:
    """Noisy primitives toward random objects, chained forever: reach, grasp and place, push, pull
    a handle, press a button. Each new primitive is planned from the current scene state."""

    PRIMITIVES = ("drawer", "door", "button", "grasp_place", "sweep", "shelf", "reach", "rotate")

    def __init__(self, noise: float = 0.15, seed: int | None = None) -> None:
        self.noise, self.rng = noise, np.random.default_rng(seed)
        self.follower: WaypointFollower | None = None
        self.current = ""

    def _new_plan(self, s: np.ndarray) -> list[Waypoint]:
        rng = self.rng
        kind = self.current = str(rng.choice(self.PRIMITIVES))
        jitter = lambda: rng.uniform(0.05, 0.16)  # noqa: E731
        if kind == "drawer":
            return drawer_plan(s, float(s[K["drawer"]][0]) < 0.07, jitter())
        if kind == "door":
            return door_plan(s, float(s[K["door"]][0]) < 0.1, jitter() + 0.04)
        if kind == "button":
            i = int(rng.integers(3))
            return press((*L.BUTTON_XY[i], L.BUTTON_TOP))
        if kind == "grasp_place":
            key = str(rng.choice(["long", "cube"]))
            if key == "long" and T.long_axis_tilt(s) < 0.5 and not T.in_shelf(s[K["long_pos"]]) and rng.random() < 0.5:
                return upright_pick_and_place(s, (rng.uniform(*L.PLAY_X), rng.uniform(*L.PLAY_Y)))
            if T.in_shelf(s[K[key + "_pos"]]) or (key == "long" and T.long_axis_tilt(s) < 0.5):
                return [] if key == "cube" else expert_plan("knock_over", s)
            dest = (rng.uniform(*L.PLAY_X), rng.uniform(*L.PLAY_Y), float(s[K[key + "_pos"]][2]) + 0.01)
            return pick_and_place(s, key, dest)
        if kind == "sweep":
            key = str(rng.choice(["long", "cube"]))
            p = s[K[key + "_pos"]]
            if T.in_shelf(p):
                return []
            toward = np.array([rng.uniform(*L.PLAY_X), rng.uniform(*L.PLAY_Y)]) - p[:2]
            if np.linalg.norm(toward) < 0.05:
                return []
            return sweep_plan(s, key, toward, min(0.2, float(np.linalg.norm(toward)) + 0.07))
        if kind == "shelf":
            if T.in_shelf(s[K["cube_pos"]]):
                return expert_plan("pull_out_of_shelf", s)
            return expert_plan("put_into_shelf", s)
        if kind == "rotate" and T.long_axis_tilt(s) > 1.2:
            return rotate_plan(s, float(rng.choice([-1.0, 1.0])), rng.uniform(0.5, 1.3))
        p = (rng.uniform(L.EE_LOW[0], L.EE_HIGH[0]), rng.uniform(-0.35, 0.35), rng.uniform(0.05, 0.3))
        return reach(p, rng.uniform(-1.2, 1.2), float(rng.choice([OPEN, CLOSED])))

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        while self.follower is None or self.follower.done:
            self.follower = WaypointFollower(self._new_plan(obs[15:]), self.noise, self.rng)
        return self.follower.act(obs[:15])
