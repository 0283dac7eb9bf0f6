"""The PlayTable physics scene: loading, stepping, cheap state reads, resets and the camera.

``Scene`` owns one pybullet client (DIRECT, headless). It knows nothing about tasks or
rewards; the env (``env.py``) drives it. Physics runs at 240 Hz: one control step at 30 Hz is
one ``stepSimulation`` call with ``numSubSteps = 8`` fixed 1/240 s sub-steps, which saves
seven Python round trips per control step.

``merge_fixed_links=True`` loads the Panda with pybullet's ``URDF_MERGE_FIXED_LINKS``: the three
fixed links past the wrist (flange, hand, grasp target) become part of ``panda_link7``, so the
articulation has 9 links instead of 12 and every Featherstone pass (forward dynamics, one per motor
row and contact row in the solver) is shorter. The same bodies, masses and collision shapes, but
not bit-identical trajectories (other rounding, and IK then aims link 7 at the grasp pose through
the fixed offset), so it is opt-in.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import warnings

import numpy as np
import pybullet as p
import pybullet_data
from pybullet_utils.bullet_client import BulletClient

from selfgym.envs.play_table import layout as L

PHYSICS_HZ, CONTROL_HZ = 240, 30
ARM_JOINTS = list(range(7))
FINGER_JOINTS = [9, 10]
EE_LINK = 11  # panda_grasptarget: between the fingertips
# With merged fixed links: the fingers' joints, and panda_link7 -> panda_grasptarget (0.107 m to the
# flange, the hand turned -45 degrees about z, 0.105 m to the point between the fingertips).
MERGED_FINGER_JOINTS, MERGED_EE_LINK = [7, 8], 6
_LINK7_TO_GRASP = ((0.0, 0.0, 0.212), tuple(p.getQuaternionFromEuler((0.0, 0.0, -np.pi / 4))))
ARM_FORCES = [87.0] * 4 + [12.0] * 3
_MOTOR_FORCES = ARM_FORCES + [40.0, 40.0]
HOME_JOINTS = [0.0, -0.35, 0.0, -2.45, 0.0, 2.1, 0.785]
ARM_LOW = np.array([-2.9671, -1.8326, -2.9671, -3.0718, -2.9671, -0.0175, -2.9671])
ARM_HIGH = np.array([2.9671, 1.8326, 2.9671, -0.0698, 2.9671, 3.7525, 2.9671])
# Desk joint indices, fixed by the order of joints in layout.desk_urdf().
DRAWER, DOOR, BUTTONS = 0, 1, [2, 3, 4]
_DESK_JOINTS = [DRAWER, DOOR] + BUTTONS
SLIDE_SLACK = 0.01  # m past a drawer/door limit before the guard puts it back
_LOW, _HIGH = ARM_LOW.tolist() + [0.0, 0.0], ARM_HIGH.tolist() + [0.04, 0.04]
_RANGE, _REST = (ARM_HIGH - ARM_LOW).tolist() + [0.04, 0.04], HOME_JOINTS + [0.04, 0.04]
# The hot paths below work on Python floats: for arrays of 3-9 numbers numpy's per-call overhead
# costs more than the arithmetic (the same IEEE operations, so the results are bit-identical).
_ARM_LOW_F, _ARM_HIGH_F = ARM_LOW.tolist(), ARM_HIGH.tolist()
_SLIDES = ((DRAWER, *L.DRAWER_RANGE), (DOOR, *L.DOOR_RANGE))



@contextlib.contextmanager
def _quiet_stdout():
    """Silence C-level stdout: pybullet prints a line per link while it merges fixed links."""
    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


class Scene:
    """The Franka, the desk and two blocks in one headless pybullet world."""

    def __init__(self, renderer: str = "tiny", image_size: int = 84,
                 marker: tuple[tuple[float, float], float] | None = None, merge_fixed_links: bool = False) -> None:
        """``marker``: ((x, y), radius) of a flat disc drawn on the desk (visual only, no contact),
        made before the initial state is saved, so resets restore it with everything else.
        ``merge_fixed_links``: the 9-link Panda (faster, other trajectories; see the module docstring)."""
        if not isinstance(merge_fixed_links, (bool, np.bool_)):
            raise ValueError(f"Scene: merge_fixed_links must be true or false, got {merge_fixed_links!r}")
        self.merge_fixed_links = bool(merge_fixed_links)
        fingers = MERGED_FINGER_JOINTS if merge_fixed_links else FINGER_JOINTS
        self._motor_joints = ARM_JOINTS + fingers  # also the order proprio reads the joints in
        self._ee_link = MERGED_EE_LINK if merge_fixed_links else EE_LINK
        self._grasp_offset = _LINK7_TO_GRASP if merge_fixed_links else None
        self._grasp_offset_inv = p.invertTransform(*_LINK7_TO_GRASP) if merge_fixed_links else None
        self.pb = BulletClient(connection_mode=p.DIRECT)
        pb, self.cid = self.pb, self.pb._client  # hot paths call pybullet directly with cid
        pb.setAdditionalSearchPath(pybullet_data.getDataPath())
        pb.setGravity(0, 0, -9.81)
        pb.setPhysicsEngineParameter(fixedTimeStep=1.0 / CONTROL_HZ, numSubSteps=PHYSICS_HZ // CONTROL_HZ,
                                     numSolverIterations=50, deterministicOverlappingPairs=1,
                                     constraintSolverType=p.CONSTRAINT_SOLVER_LCP_DANTZIG)
        with _quiet_stdout() if merge_fixed_links else contextlib.nullcontext():
            merge = p.URDF_MERGE_FIXED_LINKS if merge_fixed_links else 0
            self.robot = pb.loadURDF("franka_panda/panda.urdf", useFixedBase=True,
                                     flags=p.URDF_ENABLE_CACHED_GRAPHICS_SHAPES | merge)
        # Static furniture as one static rigid body: contacts with it stay cheap rigid-rigid ones.
        self.static = pb.loadURDF(L.write_urdf(L.static_urdf()), useFixedBase=True, useMaximalCoordinates=True)
        self.desk = pb.loadURDF(L.write_urdf(L.desk_urdf()), useFixedBase=True)
        for link in (-1, 0, 1):  # the robot's base and shoulder sit on the table: no contact to compute
            pb.setCollisionFilterPair(self.robot, self.static, link, -1, 0)
        for link in (-1, DRAWER, DOOR):  # joints, not contacts, hold these parts; button caps hit the table
            pb.setCollisionFilterPair(self.desk, self.static, link, -1, 0)
        for j, (lo, hi) in zip([DRAWER, DOOR] + BUTTONS, [L.DRAWER_RANGE, L.DOOR_RANGE] + [(0.0, L.BUTTON_TRAVEL)] * 3):
            pb.changeDynamics(self.desk, j, jointLowerLimit=lo, jointUpperLimit=hi, jointLimitForce=2000.0)
        self.light_bodies = [
            pb.createMultiBody(0, -1, pb.createVisualShape(p.GEOM_SPHERE, radius=0.025, rgbaColor=L.LIGHT_OFF_RGBA), xyz)
            for xyz in L.LIGHT_XYZ]
        if marker is not None:
            (mx, my), radius = marker
            disc = pb.createVisualShape(p.GEOM_CYLINDER, radius=float(radius), length=0.001, rgbaColor=L.TARGET_RGBA)
            self.marker_body = pb.createMultiBody(0, -1, disc, [float(mx), float(my), 0.0006])
        # Blocks stay multibodies: restoreState then restores their contact caches too, which
        # keeps episodes bit-for-bit reproducible (maximal-coordinate bodies are not).
        self.blocks = [
            pb.loadURDF(L.write_urdf(L.block_urdf(L.LONG_SIZE, (1.0, 0.6, 0.1, 1))), [0.4, 0, 0.02]),
            pb.loadURDF(L.write_urdf(L.block_urdf(L.CUBE_SIZE, (0.8, 0.3, 0.8, 1))), [0.4, 0.1, 0.03]),
        ]
        for j in fingers:
            pb.changeDynamics(self.robot, j, lateralFriction=2.0, spinningFriction=0.01)
        for b in self.blocks:
            pb.changeDynamics(b, -1, lateralFriction=1.0, spinningFriction=0.002, rollingFriction=0.0)
        # Resting blocks and desk parts may sleep: Bullet then skips their contacts in the solver
        # until the robot touches them. This is most of the env's speed (see settle()).
        for body in (*self.blocks, self.desk):
            pb.changeDynamics(body, -1, activationState=p.ACTIVATION_STATE_ENABLE_SLEEPING)
        for j in range(7):  # no passive friction motors on the arm: it is position-controlled
            pb.changeDynamics(self.robot, j, linearDamping=0, angularDamping=0)
        # Drawer/door: a weak velocity motor acts as sliding friction. Buttons: a spring to 0.
        pb.setJointMotorControlArray(self.desk, [DRAWER, DOOR], p.VELOCITY_CONTROL,
                                     targetVelocities=[0, 0], forces=[3.0, 3.0])
        pb.setJointMotorControlArray(self.desk, BUTTONS, p.POSITION_CONTROL, targetPositions=[0, 0, 0],
                                     forces=[4.0] * 3, positionGains=[0.3] * 3)
        self.lights = np.zeros(3, dtype=np.float32)
        self._pressed = [False] * 3
        self.gripper_action = 1.0
        self.image_size = image_size
        self._renderer = self._setup_renderer(renderer)
        self._view = pb.computeViewMatrix([0.05, 0.75, 0.7], [0.5, -0.05, 0.05], [0, 0, 1])
        self._proj = pb.computeProjectionMatrixFOV(50, 1.0, 0.05, 3.0)
        self.reset_robot()
        self.settle()
        pb.stepSimulation()  # contact manifolds and islands exist from here on, so settle() takes the first time too
        self._init_state = pb.saveState()

    # --- rendering -----------------------------------------------------------------------
    def _setup_renderer(self, renderer: str) -> int:
        if renderer not in ("tiny", "egl"):
            raise ValueError(f"renderer must be 'tiny' or 'egl', got {renderer!r}")
        if renderer == "egl":
            try:
                spec = importlib.util.find_spec("eglRenderer")  # ships with pybullet on Linux
                plugin = self.pb.loadPlugin(spec.origin, "_eglRendererPlugin") if spec and spec.origin else -1
            except Exception:  # noqa: BLE001 - any failure means no EGL here
                plugin = -1
            if plugin >= 0:
                return p.ER_BULLET_HARDWARE_OPENGL
            warnings.warn("PlayTable: EGL rendering is not available here; using TinyRenderer (CPU)", stacklevel=3)
        return p.ER_TINY_RENDERER

    def camera_image(self, size: int | None = None) -> np.ndarray:
        """RGB uint8 (size, size, 3) from the static camera."""
        size = size or self.image_size
        _, _, rgba, _, _ = self.pb.getCameraImage(size, size, self._view, self._proj, renderer=self._renderer,
                                                  flags=p.ER_NO_SEGMENTATION_MASK, shadow=0)
        return np.asarray(rgba, dtype=np.uint8).reshape(size, size, 4)[:, :, :3]

    # --- resets --------------------------------------------------------------------------
    def restore_initial(self) -> None:
        """Back to the state saved after loading (same solver caches: reproducible episodes)."""
        self.pb.restoreState(self._init_state)
        self.lights[:] = 0
        self._pressed = [False] * 3
        self.gripper_action = 1.0

    def reset_robot(self, joints=HOME_JOINTS, width: float = 0.08) -> None:
        pb = self.pb
        for j, q in zip(ARM_JOINTS, joints):
            pb.resetJointState(self.robot, j, q)
        for j in self._motor_joints[7:]:
            pb.resetJointState(self.robot, j, width / 2)
        self.command_arm(np.asarray(joints), width)

    def settle(self) -> None:
        """Put the blocks and the desk to sleep: a reset places them at rest, so until the robot
        touches them (contact with an awake body wakes them) there is nothing to simulate.
        Without it they stay awake for Bullet's 2 s deactivation time, 60 of every 100 steps."""
        for body in (*self.blocks, self.desk):
            self.pb.changeDynamics(body, -1, activationState=p.ACTIVATION_STATE_SLEEP)

    def set_articulation(self, drawer: float, door: float, lights) -> None:
        self.pb.resetJointState(self.desk, DRAWER, drawer)
        self.pb.resetJointState(self.desk, DOOR, door)
        for b in BUTTONS:
            self.pb.resetJointState(self.desk, b, 0.0)
        self.lights[:] = lights
        self._recolor()

    def set_block(self, index: int, pos, quat) -> None:
        self.pb.resetBasePositionAndOrientation(self.blocks[index], pos, quat)
        self.pb.resetBaseVelocity(self.blocks[index], [0, 0, 0], [0, 0, 0])

    def _recolor(self) -> None:
        for i, body in enumerate(self.light_bodies):
            rgba = L.LIGHT_ON_RGBA[i] if self.lights[i] > 0.5 else L.LIGHT_OFF_RGBA
            self.pb.changeVisualShape(body, -1, rgbaColor=rgba)

    # --- control and stepping ------------------------------------------------------------
    def ik(self, pos, euler) -> list[float]:
        """The 7 arm joint targets that put the grasp point at ``pos`` with orientation ``euler``
        (clipped to the joint limits)."""
        quat = p.getQuaternionFromEuler(euler)
        if self._grasp_offset_inv is not None:  # merged links: the pose of link 7 that puts the grasp point there
            pos, quat = p.multiplyTransforms(pos, quat, *self._grasp_offset_inv)
        q = p.calculateInverseKinematics(
            self.robot, self._ee_link, pos, quat, lowerLimits=_LOW, upperLimits=_HIGH, jointRanges=_RANGE,
            restPoses=_REST, maxNumIterations=4, residualThreshold=1e-4, physicsClientId=self.cid)
        return [min(max(v, lo), hi) for v, lo, hi in zip(q[:7], _ARM_LOW_F, _ARM_HIGH_F)]

    def command_arm(self, joints: np.ndarray, width: float) -> None:
        """Position targets for the 7 arm joints and both fingers, in one call (a hot path)."""
        p.setJointMotorControlArray(self.robot, self._motor_joints, p.POSITION_CONTROL,
                                    targetPositions=[*joints, width / 2, width / 2], forces=_MOTOR_FORCES,
                                    physicsClientId=self.cid)

    def step(self) -> list[float]:
        """One 30 Hz control step (8 physics sub-steps), then the joint-limit guard and the button -> light logic.

        Returns the desk's joint positions after it (drawer, door, 3 buttons), for ``scene_state``."""
        cid = self.cid
        p.stepSimulation(physicsClientId=cid)
        q = [s[0] for s in p.getJointStates(self.desk, _DESK_JOINTS, physicsClientId=cid)]
        if self._guard_slides(q):
            q = [s[0] for s in p.getJointStates(self.desk, _DESK_JOINTS, physicsClientId=cid)]
        was, toggled = self._pressed, False
        self._pressed = [v > L.BUTTON_PRESSED for v in q[2:]]
        for i in range(3):
            if self._pressed[i] and not was[i]:
                self.lights[i] = 1.0 - self.lights[i]
                toggled = True
        if toggled:
            self._recolor()
        return q

    def _guard_slides(self, q) -> bool:
        """Put the drawer or door back on its limit if a hard push broke through it.

        Why: pybullet's joint limit is soft. A hard pull can carry a slide past it (2 cm in
        scripted over-pulls; once 16 cm in one step), and the limit does not pull it back,
        which left scene states outside the documented range.
        Returns whether it moved one (the joint positions read before are then stale).
        """
        moved = False
        for (joint, lo, hi), value in zip(_SLIDES, q):
            if not lo - SLIDE_SLACK <= value <= hi + SLIDE_SLACK:
                p.resetJointState(self.desk, joint, min(max(value, lo), hi), 0.0, physicsClientId=self.cid)
                p.changeDynamics(self.desk, -1, activationState=p.ACTIVATION_STATE_WAKE_UP, physicsClientId=self.cid)
                moved = True
        return moved

    # --- state reads ---------------------------------------------------------------------
    def proprio(self) -> np.ndarray:
        """The 15 proprioception floats (a hot path: Python floats, one array at the end)."""
        link = p.getLinkState(self.robot, self._ee_link, computeForwardKinematics=True, physicsClientId=self.cid)
        pos, quat = link[4], link[5]
        if self._grasp_offset is not None:
            pos, quat = p.multiplyTransforms(pos, quat, *self._grasp_offset)
        q = [s[0] for s in p.getJointStates(self.robot, self._motor_joints, physicsClientId=self.cid)]
        roll, pitch, yaw = p.getEulerFromQuaternion(quat)
        roll = (roll + 2 * np.pi) % (2 * np.pi) - np.pi  # roll about "pointing down": 0 there
        return np.array([*pos, roll, pitch, yaw, q[7] + q[8], *q[:7], self.gripper_action], dtype=np.float32)

    def scene_state(self, desk_q: list[float] | None = None) -> np.ndarray:
        """The 22 scene floats (a hot path: Python floats, one array at the end). ``desk_q``: the
        desk joint positions if the caller has them (``step`` returns them), else they are read."""
        if desk_q is None:
            desk_q = [s[0] for s in p.getJointStates(self.desk, _DESK_JOINTS, physicsClientId=self.cid)]
        out = list(desk_q)
        out += self.lights.tolist()
        for b in self.blocks:
            pos, quat = p.getBasePositionAndOrientation(b, physicsClientId=self.cid)
            out += [*pos, *(quat if quat[3] >= 0 else [-x for x in quat])]  # canonical sign: w >= 0
        return np.array(out, dtype=np.float32)

    def contact_force(self) -> float:
        """Largest normal force (N) on any robot contact this step."""
        pts = p.getContactPoints(bodyA=self.robot, physicsClientId=self.cid)
        return max((c[9] for c in pts), default=0.0)

    def close(self) -> None:
        try:
            self.pb.disconnect()
        except p.error:
            pass
