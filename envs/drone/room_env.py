"""DroneRoom: a drone at fixed height in a textured 5 x 5 m room with random obstacles,
seeing through a forward stereo pair (van Hecke et al. 2016).

Observation modes (``obs_mode``):
  ``ssl``            Dict(image: (H, W, 1) uint8 left image, stereo: stereo summary) - what
                     the persistent-SSL agent needs: the monocular cue and the trusted cue.
  ``mono_image``     the left image only.
  ``mono_features``  the 21-D texton histogram + entropy of the left image.
  ``stereo``         the stereo summary (``stereo.SUMMARY_NAMES``).
Ground truth (true disparity, distances, pose) is only in ``info["gt"]``, for evaluation.

Sensing options: ``disparity_mode`` (``sgbm``, ``bm``: OpenCV matching of the two images;
``fast_from_depth``: noisy disparity from the depth buffer, no matching), ``right_eye``
(``render`` or ``warp``, see ``stereo``), ``renderer`` (``tiny``: TinyRenderer, headless;
``egl``: pybullet's EGL plugin, an error when it cannot load). Room options (obstacle
counts, textures, drone radius) are ``scene.RoomConfig`` fields passed as keywords;
``texture_split`` (``all``, ``train``, ``test``) draws a room's textures from disjoint parts of
the pool, so that evaluation rooms can show textures never seen in training.

Collisions are counted; by default the drone is then put back at a random free pose and
keeps flying (the paper's persistent flights), or the episode ends with
``terminate_on_collision=True``. Episodes last ``flight_time`` simulated seconds.

An agent may tell the env what it is doing each step with ``record_pilot`` (its monocular
estimate, the cue it flies on, training-wheel overrides); the env compares that with the
ground truth and puts per-episode metrics in the final ``info``.
"""

from __future__ import annotations

import math
import pkgutil
import zlib
from dataclasses import fields
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import pybullet as p
from gymnasium import spaces

from selfgym.envs.drone.episode_stats import EpisodeStats
from selfgym.envs.drone.scene import Room, RoomConfig
from selfgym.envs.drone.stereo import (DISPARITY_MODES, INVALID_DISPARITY, NUM_DISPARITIES, RIGHT_EYE_MODES, SUMMARY_NAMES,
                               DisparityEstimator, StereoCamera, cue_columns, summarise)
from selfgym.envs.drone.textons import default_textons

OBS_MODES = ("ssl", "mono_image", "mono_features", "stereo")
RENDERERS = ("tiny", "egl")


def frame_key(image: np.ndarray) -> int:
    """A checksum that ties a pilot report to the observation it was computed from."""
    return zlib.crc32(np.ascontiguousarray(image).tobytes())


class DroneRoomEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        obs_mode: str = "ssl",
        discrete: bool = False,
        disparity_mode: str = "sgbm",
        right_eye: str = "render",
        width: int = 64,
        height: int = 48,
        baseline: float = 0.06,
        hfov_deg: float = 60.0,
        control_hz: float = 10.0,
        flight_time: float = 60.0,
        max_speed: float = 0.5,
        max_yaw_rate: float = math.radians(90.0),
        flight_height: float = 1.0,
        terminate_on_collision: bool = False,
        collision_penalty: float = 5.0,
        cue_roi: float = 0.5,
        obstacle_disparity: float = 2.8,
        renderer: str = "tiny",
        render_mode: str | None = None,
        **room_kwargs: Any,
    ) -> None:
        if obs_mode not in OBS_MODES:
            raise ValueError(f"unknown obs_mode {obs_mode!r}; choose one of {', '.join(OBS_MODES)}")
        if disparity_mode not in DISPARITY_MODES:
            raise ValueError(f"unknown disparity_mode {disparity_mode!r}; choose one of {', '.join(DISPARITY_MODES)}")
        if right_eye not in RIGHT_EYE_MODES:
            raise ValueError(f"unknown right_eye {right_eye!r}; choose one of {', '.join(RIGHT_EYE_MODES)}")
        if renderer not in RENDERERS:
            raise ValueError(f"unknown renderer {renderer!r}; choose one of {', '.join(RENDERERS)}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        known = {f.name for f in fields(RoomConfig)}
        unknown = sorted(set(room_kwargs) - known)
        if unknown:
            raise TypeError(f"DroneRoom got unknown option(s) {', '.join(unknown)}; "
                            f"room options: {', '.join(sorted(known))}")
        if control_hz <= 0 or flight_time <= 0:
            raise ValueError("control_hz and flight_time must be positive")
        self.room_cfg = RoomConfig(**room_kwargs)
        self.room_cfg.validate()  # a textureless scene fails here, before any rendering
        self.obs_mode, self.discrete, self.render_mode = obs_mode, discrete, render_mode
        self.dt, self.max_speed, self.max_yaw_rate, self.z = 1.0 / control_hz, max_speed, max_yaw_rate, flight_height
        self.max_steps = int(round(flight_time * control_hz))
        self.terminate_on_collision, self.collision_penalty = terminate_on_collision, collision_penalty
        self.cue_roi, self.obstacle_disparity = cue_roi, obstacle_disparity
        self.camera = StereoCamera(width, height, hfov_deg, baseline)
        self.matcher = DisparityEstimator(self.camera, disparity_mode)
        self.right_eye = right_eye if self.matcher.needs_right_eye else "none"
        self.client = p.connect(p.DIRECT)
        self.renderer = p.ER_TINY_RENDERER
        if renderer == "egl":
            self._load_egl()
        self.room = Room(self.client, self.room_cfg, primitives=renderer == "egl")
        self._textons = None
        if obs_mode == "mono_features":
            self._textons = default_textons()

        image = spaces.Box(0, 255, (height, width, 1), np.uint8)
        stereo = spaces.Box(INVALID_DISPARITY, float(NUM_DISPARITIES), (len(SUMMARY_NAMES),), np.float32)
        self.observation_space = {
            "ssl": spaces.Dict({"image": image, "stereo": stereo}),
            "mono_image": image,
            "mono_features": spaces.Box(0.0, 1.0, (21,), np.float32),
            "stereo": stereo,
        }[obs_mode]
        self.action_space = spaces.Discrete(2) if discrete else spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.stats = EpisodeStats(self.dt)
        self.pose = np.zeros(3)
        self._steps = 0
        self._frame: dict[str, Any] = {}
        self._layout_rng: dict[str, Any] | None = None  # np_random's state before the last room.randomise

    # -- set-up ---------------------------------------------------------------------------
    def _load_egl(self) -> None:
        loader = pkgutil.get_loader("eglRenderer")
        if loader is None:
            raise RuntimeError("renderer='egl' asked for, but pybullet's eglRenderer plugin is not available")
        if p.loadPlugin(loader.get_filename(), "_eglRendererPlugin", physicsClientId=self.client) < 0:
            raise RuntimeError("renderer='egl': loading the EGL plugin failed (no EGL device?)")
        self.renderer = p.ER_BULLET_HARDWARE_OPENGL

    # -- sensing --------------------------------------------------------------------------
    def _sense(self, clearance: float | None = None) -> None:
        x, y, yaw = self.pose
        left, right, depth = self.camera.render(self.client, x, y, self.z, yaw, self.renderer, self.right_eye)
        disp = self.matcher.compute(left, right, depth, self.np_random)
        true_disp = self.camera.fb / np.maximum(depth, 1e-3)
        self._frame = {
            "left": left,
            "disparity": disp,
            "stereo": summarise(disp, self.cue_roi),
            "gt_disparity": float(true_disp[:, cue_columns(true_disp.shape[1], self.cue_roi)].mean()),
            "gt_distance": self.room.ray(x, y, yaw),
            "gt_clearance": (self.room.clearance(x, y) if clearance is None else clearance) - self.room_cfg.drone_radius,
        }
        self._frame["key"] = frame_key(left)

    def _obs(self) -> Any:
        f = self._frame
        image = f["left"][:, :, None]
        if self.obs_mode == "ssl":
            return {"image": image, "stereo": f["stereo"].copy()}
        if self.obs_mode == "mono_image":
            return image
        if self.obs_mode == "stereo":
            return f["stereo"].copy()
        return self._textons.features(f["left"])

    def _info(self) -> dict[str, Any]:
        f = self._frame
        # per-step values are nested so that only episode metrics sit at the top level of the
        # final info (evaluate.py reports every top-level number there)
        return {
            "frame": {"stereo_cue": float(f["stereo"][0]), "collision": False},
            "gt": {"disparity": f["gt_disparity"], "distance": f["gt_distance"], "clearance": f["gt_clearance"],
                   "x": float(self.pose[0]), "y": float(self.pose[1]), "yaw": float(self.pose[2])},
        }

    # -- the agent's report ---------------------------------------------------------------
    def record_pilot(self, key: int, estimate: float, est_threshold: float, on_mono: bool, override: bool) -> bool:
        """The agent's monocular estimate (disparity, px) for the current frame, its obstacle
        threshold on that estimate, whether it flies on the monocular cue, and whether stereo
        overrode it. Ignored (returns False) when ``key`` is not the current frame's."""
        if key != self._frame.get("key"):
            return False
        self.stats.pilot(estimate, est_threshold, self.obstacle_disparity, self._frame["gt_disparity"],
                         self.camera.fb, on_mono, override)
        return True

    # -- gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        limit = self.spec.max_episode_steps if self.spec is not None else None
        if limit is not None and limit < self.max_steps:
            raise ValueError(f"flight_time needs {self.max_steps} steps but the TimeLimit cuts episodes at {limit}, "
                             "before the episode metrics are written; pass max_episode_steps to gym.make as well")
        self._layout_rng = self.np_random.bit_generator.state  # to rebuild this room in a copy (__setstate__)
        self.pose = np.array(self.room.randomise(self.np_random))
        self._steps = 0
        self.stats = EpisodeStats(self.dt)
        self._sense()
        return self._obs(), self._info()

    def place(self, x: float, y: float, yaw: float) -> Any:
        """Put the drone at a pose and sense from there (scripted set-ups and tests); returns the observation."""
        self.pose = np.array([x, y, yaw], dtype=np.float64)
        self._sense()
        return self._obs()

    def _command(self, action: Any) -> tuple[float, float]:
        if self.discrete:
            a = np.asarray(action)
            if a.size != 1 or not np.isfinite(a).all() or int(a.reshape(-1)[0]) not in (0, 1):
                raise ValueError(f"DroneRoom (discrete) takes action 0 (forward) or 1 (turn), got {action!r}")
            return (self.max_speed, 0.0) if int(a.reshape(-1)[0]) == 0 else (0.0, self.max_yaw_rate)
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,):
            raise ValueError(f"DroneRoom takes a (2,) action [forward speed, yaw rate] in [-1, 1], got shape {a.shape}")
        forward, turn = a.tolist()  # Python floats: the same IEEE arithmetic as numpy's, cheaper per step
        if not (math.isfinite(forward) and math.isfinite(turn)):
            raise ValueError(f"DroneRoom got a non-finite action {a.tolist()}")
        forward, turn = min(max(forward, -1.0), 1.0), min(max(turn, -1.0), 1.0)
        return self.max_speed * (forward + 1.0) / 2.0, self.max_yaw_rate * turn

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        speed, yaw_rate = self._command(action)
        x, y, yaw = self.pose
        yaw = (yaw + yaw_rate * self.dt + math.pi) % (2 * math.pi) - math.pi
        nx, ny = x + speed * self.dt * math.cos(yaw), y + speed * self.dt * math.sin(yaw)
        clearance = self.room.clearance(nx, ny)
        collided = clearance < self.room_cfg.drone_radius
        self._steps += 1
        self.stats.step(0.0 if collided else speed * self.dt, collided)  # a collision moves it nowhere
        if collided and not self.terminate_on_collision:
            self.pose = np.array(self.room.free_pose(self.np_random))  # the safety pilot puts it back
            self._sense()
        else:
            self.pose = np.array([nx, ny, yaw])
            self._sense(clearance)
        terminated = bool(collided and self.terminate_on_collision)
        truncated = self._steps >= self.max_steps
        components = {"progress": speed * self.dt, "collision": -1.0 if collided else 0.0}
        reward = float(components["progress"] + self.collision_penalty * components["collision"])
        info = self._info()
        info["frame"]["collision"] = bool(collided)
        info["reward_components"] = components
        if terminated or truncated:
            info.update(self.stats.summary())
            info["is_success"] = self.stats.collisions == 0
        return self._obs(), reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._top_view()

    def _top_view(self, size: int = 192) -> np.ndarray:
        """A map of the room (obstacles, drone, heading) beside the left camera image."""
        L = self.room_cfg.half_size
        img = np.full((size, size, 3), 235, np.uint8)

        def px(x: float, y: float) -> tuple[int, int]:
            return int((x + L) / (2 * L) * (size - 1)), int((L - y) / (2 * L) * (size - 1))

        scale = (size - 1) / (2 * L)
        for cx, cy, r in self.room.layout.poles:
            cv2.circle(img, px(cx, cy), max(int(r * scale), 1), (60, 60, 160), -1)
        for cx, cy, yaw, hx, hy in self.room.layout.boxes:
            c, s = math.cos(yaw), math.sin(yaw)
            corners = [px(cx + c * u - s * v, cy + s * u + c * v) for u, v in ((hx, hy), (-hx, hy), (-hx, -hy), (hx, -hy))]
            cv2.fillPoly(img, [np.array(corners, np.int32)], (60, 120, 60))
        x, y, yaw = self.pose
        cv2.circle(img, px(x, y), max(int(self.room_cfg.drone_radius * scale), 1), (200, 80, 0), 1)
        cv2.line(img, px(x, y), px(x + 0.5 * math.cos(yaw), y + 0.5 * math.sin(yaw)), (200, 80, 0), 2)
        cam = cv2.resize(self._frame["left"], (size * 4 // 3, size), interpolation=cv2.INTER_NEAREST)
        return np.concatenate([img, np.repeat(cam[:, :, None], 3, axis=2)], axis=1)

    # -- pickling and copying ------------------------------------------------------------
    # A pybullet client and OpenCV's matcher do not pickle. A copy gets its own DIRECT client
    # with the same room rebuilt in it: the last reset's ``room.randomise`` is replayed from the
    # generator state it started from (``_layout_rng``), which puts every obstacle and texture
    # back where it was, so the copy renders what the original would. The matcher is rebuilt
    # by DisparityEstimator's own __setstate__.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["client"], state["room"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.client = p.connect(p.DIRECT)
        egl = self.renderer != p.ER_TINY_RENDERER
        if egl:
            self._load_egl()
        self.room = Room(self.client, self.room_cfg, primitives=egl)
        if self._layout_rng is not None:
            rng = np.random.default_rng()
            rng.bit_generator.state = self._layout_rng
            self.room.randomise(rng)

    def close(self) -> None:
        if getattr(self, "client", None) is not None and p.isConnected(self.client):
            p.disconnect(self.client)
        self.client = None
