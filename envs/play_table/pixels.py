"""PlayTablePixelsGoal-v0: goal-reaching PlayTable seen through the static camera.

Learning from play on pixels (Lynch et al. 2019, section 5) observes the camera image and the
robot's proprioception, and is given a goal *image*. ``PlayTableGoalEnv`` is state-only (its
spaces are Gymnasium's goal-env convention, which cannot nest the pixel Dict), so this env is a
flat Dict instead:

    image        (S, S, 3) uint8   the static camera now
    proprio      (15,) float32     hand, gripper and arm joints (``observation.PROPRIO_KEYS``)
    goal_image   (S, S, 3) uint8   the goal scene through the same camera
    achieved_goal, desired_goal    the 22-float scene states (rewards, ``compute_reward`` and
                                   the task detectors; a pixel policy does not read them)

The physics, tasks, goals and rewards are ``PlayTableGoalEnv``'s: a seeded episode is the state
env's, step for step. The goal image of the env's own goals (a sampled or given scene state) is
drawn in a second, render-only pybullet world with the goal's drawer, door, lights and blocks
and the arm as it is at reset, so rendering it never touches the episode's physics. Held-out
test cases (``heldout.py``) hand the policy the demonstration's last frame instead, as the paper.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from selfgym.envs.play_table.env import PlayTableGoalEnv
from selfgym.envs.play_table.observation import PROPRIO_DIM, PROPRIO_KEYS, SCENE_KEYS
from selfgym.envs.play_table.scene import Scene

DEFAULT_IMAGE_SIZE = 64  # a TinyRenderer frame costs the same at 48-84 px (per-triangle work); the CNN does not


class PlayTablePixelsGoalEnv(PlayTableGoalEnv):
    """PlayTableGoalEnv with camera observations (see the module doc).

    Args:
        task: as ``PlayTableEnv``'s (the held-out evaluation makes one env per task), or None.
        image_size: side of the square camera image and goal image, pixels (>= 36, the
            Nature-CNN's smallest input).
        reward_type, control, render_mode, renderer, render_size: as ``PlayTableEnv``'s.
    """

    def __init__(self, task: str | None = None, image_size: int = DEFAULT_IMAGE_SIZE, reward_type: str = "dense",
                 control: str = "ee", render_mode: str | None = None, renderer: str = "tiny",
                 render_size: int = 256) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 36:
            raise ValueError(f"PlayTablePixelsGoalEnv: image_size must be a whole number >= 36, got {image_size!r}")
        super().__init__(task=task, obs_mode="state", control=control, reward_type=reward_type,
                         render_mode=render_mode, renderer=renderer, image_size=int(image_size),
                         render_size=render_size)
        self.image_size, self.renderer = int(image_size), renderer
        image = spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
        goal = self.observation_space["desired_goal"]
        self.observation_space = spaces.Dict({
            "image": image, "proprio": spaces.Box(-10.0, 10.0, (PROPRIO_DIM,), np.float32), "goal_image": image,
            "achieved_goal": goal, "desired_goal": goal})
        self._goal_image = np.zeros(image.shape, np.uint8)
        self._goal_scene: Scene | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        self._goal_image = self.render_goal(self._goal)
        obs["goal_image"] = self._goal_image.copy()
        return obs, info

    def _obs(self, s: np.ndarray) -> dict[str, np.ndarray]:
        return {"image": self.scene.camera_image(), "proprio": self._proprio.clip(-10, 10),
                "goal_image": self._goal_image.copy(), "achieved_goal": s.copy(), "desired_goal": self._goal.copy()}

    def render_goal(self, goal: np.ndarray) -> np.ndarray:
        """The scene state ``goal`` (22 floats) through the camera, the arm as it is now."""
        if self._goal_scene is None:
            self._goal_scene = Scene(renderer=self.renderer, image_size=self.image_size,
                                     marker=self.task.marker if self.task else None)
        scene, keys = self._goal_scene, SCENE_KEYS
        scene.set_articulation(float(goal[keys["drawer"]][0]), float(goal[keys["door"]][0]), goal[keys["lights"]])
        scene.set_block(0, goal[keys["long_pos"]].tolist(), goal[keys["long_quat"]].tolist())
        scene.set_block(1, goal[keys["cube_pos"]].tolist(), goal[keys["cube_quat"]].tolist())
        scene.reset_robot(self._proprio[PROPRIO_KEYS["arm_joints"]].tolist(),
                          float(self._proprio[PROPRIO_KEYS["gripper_width"]][0]))
        return scene.camera_image()

    def close(self) -> None:
        if self._goal_scene is not None:
            self._goal_scene.close()
            self._goal_scene = None
        super().close()
