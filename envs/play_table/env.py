"""PlayTableEnv: the Gymnasium env around ``Scene`` (tasks, rewards, goals, observations)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from selfgym.envs.play_table import layout as L
from selfgym.envs.play_table import tasks as T
from selfgym.envs.play_table.observation import PROPRIO_DIM, SCENE_DIM, SCENE_KEYS
from selfgym.envs.play_table.scene import ARM_HIGH, ARM_LOW, Scene

POS_STEP, ROT_STEP = 0.02, 0.1  # metres / radians per control step at action 1
MAX_TILT, MAX_YAW = 0.5, 1.5  # target roll/pitch (about pointing down) and yaw limits (rad)
SAFE_FORCE = 60.0  # N: robot contact forces above this are penalised
_ROT_MAX = (MAX_TILT, MAX_TILT, MAX_YAW)
# The step works on Python floats (the same IEEE operations as numpy's, so bit-identical results;
# for 3-7 numbers numpy's per-call overhead costs more than the arithmetic).
_ARM_LOW_F, _ARM_RANGE_F = ARM_LOW.tolist(), (ARM_HIGH - ARM_LOW).tolist()
_ARM_HIGH_F = ARM_HIGH.tolist()
_BLOCK_X = (SCENE_KEYS["long_pos"].start, SCENE_KEYS["cube_pos"].start)  # then y, z
# The off-table bounds as the float32 comparison of the scene state sees them.
_OFF_X, _OFF_Y = tuple(float(np.float32(v)) for v in L.TABLE_X), tuple(float(np.float32(v)) for v in L.TABLE_Y)
_OFF_Z = float(np.float32(-0.02))
GOAL_TOL = {"drawer": 0.03, "door": 0.03, "lights": 0.5, "long_pos": 0.05, "cube_pos": 0.05}


_free_play_warned = False


def _warn_free_play_once() -> None:
    """Free play has no task reward: an RL run on the env reward alone learns nothing, so say so
    (once per process, not once per sub-env of a VecEnv)."""
    global _free_play_warned
    if _free_play_warned:
        return
    _free_play_warned = True
    warnings.warn(
        "PlayTable without a task is free play: its env reward is always 0, so an agent trained on that reward "
        "alone learns nothing (free play is for collecting play data, and for agents that make their own rewards, "
        "such as --reward diayn or --agent slim). Pass task=, e.g. gym.make('selfgym/PlayTable-v0', task='open_drawer') "
        f"or --env-kwargs task:open_drawer (tasks: {', '.join(T.TASK_NAMES)}), or use the goal env "
        "selfgym/PlayTableGoal-v0 to reach goal states.",
        UserWarning,
        stacklevel=3,
    )


class PlayTableEnv(gym.Env):
    """A Franka Panda at a desk with a drawer, a sliding door, three light buttons, a shelf and two blocks.

    Args:
        task: one of ``tasks.TASK_NAMES`` (e.g. ``"open_drawer"``), a downstream task
            (``"push_to_target"``: push the cube into the green disc on the desk), or None for free play.
        obs_mode: ``"state"`` (Box: 15 proprioception + 22 scene floats, layout in
            ``scene.PROPRIO_KEYS`` / ``scene.SCENE_KEYS``) or ``"pixels"`` (Dict: ``image`` uint8
            (size, size, 3) from the static camera, ``proprio`` 15 floats).
        control: ``"ee"``: 7-D action (dx, dy, dz in units of 2 cm, droll, dpitch, dyaw in units
            of 0.1 rad, gripper: -1 closed .. 1 open), tracked by IK; ``"joint"``: 8-D action
            (7 absolute joint targets scaled to the joint ranges, gripper).
        reward_type: ``"dense"`` (reach + progress + success + 0.1 safety; goal env: success -
            normalised goal distance) or ``"sparse"`` (success - 1). Free play has reward 0.
        terminate_on_success: end the episode (``terminated``) the step the task's detector
            fires, as CALVIN's evaluation does; task mode only. The dense reward then also pays
            -1 per step, so every unsolved step is worth <= 0 and finishing sooner is always
            better (without it, hovering just short of success would out-earn finishing).
        merge_fixed_links: load the Panda with its fixed links (flange, hand, grasp target) merged
            into link 7: 9 links instead of 12. About 9% less CPU per step in free motion (random
            actions), but 2-36% more in contact-rich play; the scripted expert solves as many tasks
            (benchmarks/results/play_table_speed_notes_2026-11-30.md). The same bodies, not the same
            trajectories as the default (see ``scene.py``), so off by default: stored results and
            held-out cases were made with the 12-link robot.

    Actions outside [-1, 1] are clipped; a NaN/inf action or a wrong shape raises ValueError
    before the simulation is touched. Control at 30 Hz, physics at 240 Hz. Success ends the
    episode only with ``terminate_on_success``; an object leaving the table always terminates it.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    goal_conditioned = False  # PlayTableGoalEnv sets it

    def __init__(self, task: str | None = None, obs_mode: str = "state",
                 control: str = "ee", reward_type: str = "dense", render_mode: str | None = None,
                 renderer: str = "tiny", image_size: int = 84, render_size: int = 256,
                 terminate_on_success: bool = False, merge_fixed_links: bool = False) -> None:
        self.task = T.get_task(task)
        if self.task is None and not self.goal_conditioned:
            _warn_free_play_once()
        if not isinstance(terminate_on_success, (bool, np.bool_)):
            raise ValueError(f"PlayTableEnv: terminate_on_success must be true or false, got {terminate_on_success!r}")
        if terminate_on_success and (self.task is None or self.goal_conditioned):
            raise ValueError("PlayTableEnv: terminate_on_success needs a task (not free play or the goal env, "
                             "whose HER relabelling cannot follow a goal-dependent termination)")
        self.terminate_on_success = bool(terminate_on_success)
        for name, value, valid in (("obs_mode", obs_mode, ("state", "pixels")), ("control", control, ("ee", "joint")),
                                   ("reward_type", reward_type, ("dense", "sparse")),
                                   ("render_mode", render_mode, (None, "rgb_array"))):
            if value not in valid:
                raise ValueError(f"PlayTableEnv: {name} must be one of {valid}, got {value!r}")
        goal_conditioned = self.goal_conditioned
        if goal_conditioned and obs_mode != "state":
            raise ValueError("PlayTableGoalEnv needs obs_mode='state' (no nested Dict spaces)")
        self.obs_mode, self.control = obs_mode, control
        self.reward_type, self.render_mode, self.render_size = reward_type, render_mode, render_size
        self.scene = Scene(renderer=renderer, image_size=image_size, marker=self.task.marker if self.task else None,
                           merge_fixed_links=merge_fixed_links)
        n_act = 7 if control == "ee" else 8
        self.action_space = spaces.Box(-1.0, 1.0, (n_act,), np.float32)
        state = spaces.Box(-10.0, 10.0, (PROPRIO_DIM + SCENE_DIM,), np.float32)
        if obs_mode == "pixels":
            self.observation_space = spaces.Dict({
                "image": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
                "proprio": spaces.Box(-10.0, 10.0, (PROPRIO_DIM,), np.float32)})
        elif goal_conditioned:
            goal = spaces.Box(-10.0, 10.0, (SCENE_DIM,), np.float32)
            self.observation_space = spaces.Dict({"observation": state, "achieved_goal": goal, "desired_goal": goal})
        else:
            self.observation_space = state
        self._s0 = self._goal = np.zeros(SCENE_DIM, np.float32)
        self._proprio = np.zeros(PROPRIO_DIM, np.float32)

    # --- reset -----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng, sc = self.np_random, self.scene
        sc.restore_initial()
        start = dict(self.task.start) if self.task else {}
        drawer = start.get("drawer", rng.uniform(*L.DRAWER_RANGE) if rng.random() < 0.5 else 0.0)
        door = start.get("door", rng.uniform(*L.DOOR_RANGE))
        lights = (rng.random(3) < 0.5).astype(np.float32)
        if "light" in start:
            lights[start["light"][0]] = start["light"][1]
        sc.set_articulation(drawer, door, lights)
        long_pose = start.get("long", "upright" if rng.random() < 0.25 else "flat")
        if start.get("cube") == "off_target":
            (lx, ly), (cx, cy) = self._spots_off_target(rng)
        else:
            (lx, ly), (cx, cy) = self._two_spots(rng)
        yaw = rng.uniform(-np.pi / 2, np.pi / 2)
        if long_pose == "upright":
            quat = sc.pb.getQuaternionFromEuler([0, -np.pi / 2, yaw])
            sc.set_block(0, [lx, ly, T.LONG_UP_Z], quat)
        else:
            sc.set_block(0, [lx, ly, T.LONG_FLAT_Z], sc.pb.getQuaternionFromEuler([0, 0, yaw]))
        cube_yaw = sc.pb.getQuaternionFromEuler([0, 0, rng.uniform(-np.pi, np.pi)])
        if start.get("cube") == "shelf" or ("cube" not in start and rng.random() < 0.2):
            spot = [rng.uniform(L.SHELF_X[0] + 0.04, L.SHELF_X[1] - 0.06), rng.uniform(L.SHELF_Y[0] + 0.04, L.SHELF_Y[1] - 0.04)]
            sc.set_block(1, [*spot, L.SHELF_TOP + T.CUBE_Z], cube_yaw)
        else:
            sc.set_block(1, [cx, cy, T.CUBE_Z], cube_yaw)
        sc.reset_robot()
        sc.settle()
        self._target_pos = None
        self._target_rot = [0.0, 0.0, 0.0]
        self._proprio = sc.proprio()
        self._s0 = sc.scene_state()
        self._goal = self._s0.copy()
        if self.goal_conditioned:
            goal = (options or {}).get("goal")
            self._goal = self._validated_goal(goal) if goal is not None else self._sample_goal(rng)
        return self._obs(self._s0), self._info(self._s0, 0.0)

    @staticmethod
    def _two_spots(rng) -> list[np.ndarray]:
        while True:
            a, b = (np.array([rng.uniform(*L.PLAY_X), rng.uniform(*L.PLAY_Y)]) for _ in range(2))
            if np.linalg.norm(a - b) > 0.11:
                return [a, b]

    @staticmethod
    def _spots_off_target(rng) -> list[np.ndarray]:
        """Block spots for push_to_target: the cube on an arc around the target (10-14 cm away, on
        the side away from the robot and the cabinet, so the hand has room behind it), the long
        block >= 11 cm from the cube and >= 9 cm from the push path (from behind the cube to the target)."""
        target = np.array(L.TARGET_XY)
        while True:
            angle, radius = rng.uniform(*T.START_ANGLES), rng.uniform(*T.START_RADII)
            away = np.array([np.cos(angle), np.sin(angle)])
            cube_xy, long_xy = target + radius * away, np.array([rng.uniform(*L.PLAY_X), rng.uniform(*L.PLAY_Y)])
            start = cube_xy + 0.075 * away
            seg = target - start
            along = np.clip(np.dot(long_xy - start, seg) / np.dot(seg, seg), 0.0, 1.0)
            if np.linalg.norm(long_xy - cube_xy) > 0.11 and np.linalg.norm(long_xy - (start + along * seg)) > 0.09:
                return [long_xy, cube_xy]

    def _sample_goal(self, rng) -> np.ndarray:
        """The start state with one thing changed, like a Play-LMP test goal (a single task's effect)."""
        g, k = self._s0.copy(), SCENE_KEYS
        which = rng.integers(5)
        if which == 0:
            g[k["drawer"]] = 0.15 if g[k["drawer"]][0] < 0.075 else 0.0
        elif which == 1:
            g[k["door"]] = 0.19 if g[k["door"]][0] < 0.1 else 0.0
        elif which == 2:
            i = rng.integers(3)
            g[k["lights"].start + i] = 1.0 - g[k["lights"].start + i]
        else:
            key = "long_pos" if which == 3 else "cube_pos"
            old = g[k[key]][:2].copy()
            while np.linalg.norm(g[k[key]][:2] - old) < 0.1:  # far enough to be a real change
                g[k[key]][:2] = [rng.uniform(*L.PLAY_X), rng.uniform(*L.PLAY_Y)]
        return g

    def _validated_goal(self, goal) -> np.ndarray:
        goal = np.asarray(goal, dtype=np.float32)
        if goal.shape != (SCENE_DIM,) or not np.all(np.isfinite(goal)):
            raise ValueError(f"PlayTableEnv: options['goal'] must be a finite scene state of shape ({SCENE_DIM},), got {goal.shape}")
        return goal

    # --- step ------------------------------------------------------------------------------
    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"PlayTableEnv: action must have shape {self.action_space.shape}, got {action.shape}")
        a = action.tolist()
        if not all(map(math.isfinite, a)):
            raise ValueError(f"PlayTableEnv: action contains NaN or inf: {action}")
        a = [min(max(v, -1.0), 1.0) for v in a]
        sc = self.scene
        width = (a[-1] + 1.0) * 0.04
        sc.gripper_action = a[-1]
        if self.control == "ee":
            ee = self._proprio[:3].tolist()
            base = ee if self._target_pos is None else self._target_pos
            # integrate the target, but never more than 5 cm ahead of the hand (no wind-up), inside the workspace
            self._target_pos = [min(max(min(max(b + d * POS_STEP, e - 0.05), e + 0.05), lo), hi)
                                for b, d, e, lo, hi in zip(base, a[:3], ee, L.EE_LOW, L.EE_HIGH)]
            self._target_rot = [min(max(r + d * ROT_STEP, -m), m) for r, d, m in zip(self._target_rot, a[3:6], _ROT_MAX)]
            roll, pitch, yaw = self._target_rot
            joints = sc.ik(self._target_pos, [roll + np.pi, pitch + 0.0, yaw + 0.0])
        else:
            joints = [lo + (d + 1.0) * 0.5 * r for lo, d, r in zip(_ARM_LOW_F, a[:7], _ARM_RANGE_F)]
        sc.command_arm(joints, width)
        desk_q = sc.step()
        self._proprio = sc.proprio()
        s = sc.scene_state(desk_q)
        info = self._info(s, sc.contact_force())
        terminated = bool(info["object_off_table"]) or (self.terminate_on_success and info["is_success"])
        reward = self._reward(info)
        return self._obs(s), reward, terminated, False, info

    # --- observations, rewards, info -------------------------------------------------------
    def _obs(self, s: np.ndarray):
        if self.obs_mode == "pixels":
            return {"image": self.scene.camera_image(), "proprio": self._proprio.copy()}
        state = np.concatenate([self._proprio, s]).clip(-10, 10).astype(np.float32)
        if self.goal_conditioned:
            return {"observation": state, "achieved_goal": s.copy(), "desired_goal": self._goal.copy()}
        return state

    def _info(self, s: np.ndarray, force: float) -> dict[str, Any]:
        joint_pen = self._joint_penalty()
        off = False
        for i in _BLOCK_X:  # the long block and the cube
            x, y, z = s[i:i + 3].tolist()
            off = off or not (_OFF_X[0] < x < _OFF_X[1] and _OFF_Y[0] < y < _OFF_Y[1] and z > _OFF_Z)
        safety = -(joint_pen + max(0.0, force - SAFE_FORCE) / SAFE_FORCE + 10.0 * off)
        comps = {"safety": safety}
        if self.goal_conditioned:
            success = bool(self.goal_reached(s, self._goal))
            comps.update(goal_distance=-float(self._goal_distance(s, self._goal)), success=float(success))
        elif self.task is not None:
            success = bool(self.task.success(self._s0, s))
            gap = self._proprio[:3] - self.task.target(s)
            reach = math.sqrt(gap.dot(gap))  # = np.linalg.norm(gap), without its dispatch
            comps.update(reach=-reach, progress=self.task.progress(self._s0, s), success=float(success))
        else:
            success = False
        return {"is_success": success, "reward_components": comps, "object_off_table": off}

    def _joint_penalty(self) -> float:
        """Sum over arm joints of how far into the last 0.1 rad before a limit they are (0..1 each)."""
        q = self._proprio[7:14]
        if all(min(v - lo, hi - v) >= 0.1 for v, lo, hi in zip(q.tolist(), _ARM_LOW_F, _ARM_HIGH_F)):
            return 0.0  # the common case, which the expression below also gives (exactly 0.0)
        margin = np.minimum(q - ARM_LOW, ARM_HIGH - q)
        return float(np.clip((0.1 - margin) / 0.1, 0, 1).sum())

    def _reward(self, info: dict[str, Any]) -> float:
        c = info["reward_components"]
        if self.reward_type == "sparse" or (self.task is None and not self.goal_conditioned):
            return float(c.get("success", 0.0)) - (1.0 if "success" in c else 0.0)
        if self.goal_conditioned:  # exactly compute_reward's dense value, so HER relabelling agrees
            return float(c["goal_distance"] + c["success"])
        step_cost = 1.0 if self.terminate_on_success else 0.0
        return float(c["reach"] + c["progress"] + c["success"] + 0.1 * c["safety"] - step_cost)

    @staticmethod
    def _goal_distance(achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        """Sum over goal parts of |difference| / tolerance (buttons and block orientations ignored)."""
        d = 0.0
        for key, tol in GOAL_TOL.items():
            d = d + np.abs(achieved[..., SCENE_KEYS[key]] - desired[..., SCENE_KEYS[key]]).max(axis=-1) / tol
        return d

    @staticmethod
    def goal_reached(achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        ok = True
        for key, tol in GOAL_TOL.items():
            ok = ok & (np.abs(achieved[..., SCENE_KEYS[key]] - desired[..., SCENE_KEYS[key]]).max(axis=-1) < tol)
        return ok

    # --- misc ------------------------------------------------------------------------------
    def scene_state(self) -> np.ndarray:
        return self.scene.scene_state()

    def render(self):
        if self.render_mode == "rgb_array":
            return self.scene.camera_image(self.render_size)
        return None

    def close(self) -> None:
        self.scene.close()


class PlayTableGoalEnv(PlayTableEnv):
    """Goal-reaching PlayTable: Dict(observation, achieved_goal, desired_goal), the goal being the
    22-float scene state. Reset samples a goal one change away from the start (drawer, door, a
    light, or a block moved), like a Play-LMP test goal, unless ``options={"goal": state}`` is
    given. A goal is reached when drawer/door are within 3 cm, the lights match and both blocks
    are within 5 cm (buttons and block orientations are ignored). State observations only.
    """

    goal_conditioned = True

    def compute_reward(self, achieved_goal, desired_goal, info) -> np.ndarray:
        """Vectorised goal reward (HER): sparse 0 / -1, or dense -(normalised distance) + success."""
        achieved_goal, desired_goal = np.asarray(achieved_goal), np.asarray(desired_goal)
        success = self.goal_reached(achieved_goal, desired_goal).astype(np.float32)
        if self.reward_type == "sparse":
            return success - 1.0
        return (success - self._goal_distance(achieved_goal, desired_goal)).astype(np.float32)
