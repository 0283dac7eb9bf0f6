"""PlayTable's state-observation layout: 15 proprioception floats, then 22 scene floats.

Plain data without pybullet, so that reward modules and evaluation code can read observations
without loading the simulator.
"""

from __future__ import annotations

# Scene-state layout (22 floats); the detectors and the goal distance index into it.
SCENE_KEYS = {"drawer": slice(0, 1), "door": slice(1, 2), "buttons": slice(2, 5), "lights": slice(5, 8),
              "long_pos": slice(8, 11), "long_quat": slice(11, 15), "cube_pos": slice(15, 18),
              "cube_quat": slice(18, 22)}
SCENE_DIM = 22
# Proprioception layout (15 floats).
# ee_euler = (roll - pi wrapped to [-pi, pi), pitch, yaw): all zero with the gripper pointing down.
PROPRIO_KEYS = {"ee_pos": slice(0, 3), "ee_euler": slice(3, 6), "gripper_width": slice(6, 7),
                "arm_joints": slice(7, 14), "gripper_action": slice(14, 15)}
PROPRIO_DIM = 15
STATE_DIM = PROPRIO_DIM + SCENE_DIM
