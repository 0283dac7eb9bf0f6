"""Persistent self-supervised learning, from stereo to monocular vision (van Hecke et al. 2016).

The drone avoids obstacles on its trusted cue (stereo disparity) while a monocular estimator
learns to predict that cue from single images. When the estimator's ROC on recent,
not-yet-trained-on frames passes TPR > ``tpr_min`` and FPR < ``fpr_max``, the drone flies on
the monocular estimate. Strategies:

* ``training_wheels`` (the paper's): stereo stays on and overrides when it sees an imminent
  collision (the corridor's or any strip's disparity > ``stop_disparity``); those frames are labelled and buffered, which
  corrects the data bias of flying on one's own estimate (as DAgger does).
* ``naive``: the stereo cue is gone after the switch; no overrides, no new labels.
* ``stereo_only``: never switch (the reference).

The controller is the paper's flight plan: forward while no obstacle is seen; else turn in
place, and keep turning ``extra_turn_steps`` once the view is clear.

``learner=looming`` (the main job's, in hyperparams/persistent_ssl.yml; the class keeps the paper's
``knn``) judges distance from motion instead of appearance: the corridor's expansion since the frame
before a forward move (envs/drone/monocular.py). It has no estimate after a turn in place, so on the
monocular cue the turn is open-loop (``extra_turn_steps`` after the last obstacle call) and the drone
then flies one step ahead to look; its smoothing restarts at each turn. In varied rooms it is the
only learner here that meets the switching rule (10 of 10 seeds in each pre-registered part). Its
blind, fixed turns leave surfaces beside the path that the corridor cue does not see: alone it
collided more than stereo-only in held-out rooms (9 against 3 in 45 min). ``swept_path`` (m, 0: off)
reads the whole view's looming (``MonocularEstimator.view_inverse_depth``): a strip outside the
corridor whose depth Z at bearing b puts a surface less than ``swept_path`` to the side of the path
(Z tan|b|) is an obstacle. With 0.35 m, on 10 fresh seeds in held-out rooms: 0 collisions against
stereo-only's 6 in 60 min at 0.83 of its distance, evaluation FPR <= 0.09; so the job uses it
(benchmarks/results/drone_looming_varied_protocol.md, parts D-G). ``looming_steps=k`` (opt-in,
default 1: one move) measures the expansion over the last up to k forward moves
(``looming.corridor_looming_steps``, less matching noise; the chain restarts at a turn or collision),
with the same learned line.

The decision threshold ``tau_est`` is calibrated as the paper does: at each switching check,
on the ROC of a window of recent frames scored before they were learned from, the threshold
with TPR > ``tpr_min`` and the lowest FPR (``monocular.roc_threshold``). ``calibrate_on``
says which frames fill that window:

* ``stereo`` (default): every frame on which stereo runs and gives a valid cue (before the
  switch, and after it under training wheels, whose stereo runs on every frame to catch
  imminent collisions), scored with the smoothed estimate the decision thresholds. The
  window is then the flight the threshold will be used on.
* ``buffered``: only the frames put in the learner's buffer, scored with the raw estimate
  (the behaviour before this option). After the switch those are the override frames alone,
  a biased sample: in our runs it set the threshold too low (about 1.8 px against 2.0 on
  the whole flight), and the drone turned at most false alarms (evaluation FPR about 0.65).

The window keeps the last ``roc_window`` clear frames and, apart, the last ``roc_positives``
obstacle frames (``monocular.RocWindow``; ``roc_positives=0``: one mixed window of
``roc_window`` frames, as before), so that "TPR > 0.95" is judged on enough approaches.

Switching (``SwitchRule``). The paper's rule (the authors' ``ROC_BASED_RESULT``) is memoryless:
at every check, fly on mono iff TPR > ``tpr_min`` and FPR < ``fpr_max``. There the ROC is the
training data's. Here (``calibrate_on=stereo``) the window is the flight the cue steers, and its
FPR is a noisy estimate: 400 clear frames of a 10 Hz flight are a few dozen correlated views,
and a check replaces an eighth of them. When the cue's true FPR lies near the bound, the
memoryless rule flips with that noise (15-23 switches per 12,000 steps in our runs, against
1-13 with the buffered window), and each flip changes what is buffered (every frame on stereo,
override frames on mono) and so moves the window again; a seed may end training on stereo
because its last check fell on the wrong side (window FPR 0.45). Hysteresis, as a Schmitt
trigger: the way onto the monocular cue is the paper's rule unchanged (a cue never starts
steering unless it passes it), the way back needs clear evidence: one check clearly failing
(TPR < ``exit_tpr_min`` or FPR > ``exit_fpr_max``), or ``exit_patience`` checks in a row failing
the paper's rule. Under training wheels stereo still stops imminent collisions, so a marginal
cue that is kept costs turns (false alarms), not crashes. ``exit_patience=1`` is the paper's
rule whatever the exit bounds (a clear failure is a failure), and the default: hysteresis
measured worse (benchmarks/drone_flight_distance.py, 5 seeds x 12,000 steps). With exits at
TPR < 0.9 or FPR > 0.5 or 10 failing checks in a row, 3 of 5 seeds ended training on the
monocular cue (4 with the paper's rule), at 0.72 of stereo-only's distance per minute there
(0.81), and 2 seeds had evaluation FPR above 0.4 (none); 3 checks in a row did worse still. The
window FPR rises while the cue is flown on and falls on stereo (seed 0: +0.004 and -0.017 per
check), whatever is buffered on mono (``buffer_on_mono`` below): the paper's quick return to
stereo is what refreshes the cue, and a cue kept through marginal checks drifts further.

What the learner buffers while the drone flies on the monocular cue (``buffer_on_mono``; on
stereo every frame with a valid stereo cue is buffered, whatever the setting). Under training
wheels stereo still runs on every frame, so every frame could be labelled; the setting says which:

* ``overrides`` (default; the paper's training wheels as described there): the frames on which
  stereo overrode, imminent collisions only (DAgger's correction where it matters most); the cue
  stops learning about clear frames.
* ``mistakes`` (the authors' ``stereo_textons_active``): the overrides and the cue's mistakes,
  frames whose monocular call (the smoothed estimate > ``tau_est``, the call the drone flies
  on) differs from stereo's (disparity > ``obstacle_disparity``): false positives and false
  negatives. Those are the frames a new label corrects, and the buffer keeps refreshing on the
  flight the cue steers without filling with frames it already gets right.
* ``all``: every frame with a valid stereo cue, as on stereo (the cue keeps learning as before
  the switch; only who steers changes).

``naive`` has no stereo after the switch and buffers nothing there; ``stereo_only`` never flies on
mono. The setting carries no state (it is a hyperparameter, not checkpointed). Measured
(benchmarks/drone_flight_distance.py, 5 seeds x 12,000 steps), neither beats ``overrides``:
``mistakes`` ended 2 of 5 seeds on the monocular cue (``overrides``: 4), at 0.75 of stereo-only's
distance per minute there (0.81), with 3 collisions on mono in one seed (0) and evaluation FPR
above 0.4 in 3 seeds (0); ``all`` ended 4 on mono but timid (0.64), FPR above 0.4 in 1 seed. The
window FPR rose on mono with either (+0.006 per check on average) as with ``overrides``: not
what is buffered but the flight the cue steers drives it (likely; not tested apart).

``tau_est``, the window, its TPR/FPR and the count of failing checks are checkpointed; the
first three are logged (``ssl_tau_est``, ``ssl_roc_tpr``, ``ssl_roc_fpr``).

Overrides are counted two ways, both logged and reported per episode: per frame (every step
on which stereo overrode) and per event (a run of consecutive override frames in one env
counts once). The run's picture (``persistence.png``, see ``persistent_ssl_log``) plots
overrides, collisions, time on the monocular cue and the monocular error against flight time.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from selfgym.agents.base import TrainingHooks
from selfgym.agents.persistent_ssl_log import FlightWindow, draw_persistence
from selfgym.envs.drone.monocular import (IMAGE_LEARNERS, LEARNERS, MOTION_LEARNERS, MonocularEstimator, RocWindow,
                                           roc_threshold)
from selfgym.envs.drone.room_env import frame_key

STRATEGIES = ("training_wheels", "naive", "stereo_only")
CALIBRATION_FRAMES = ("stereo", "buffered")
BUFFER_ON_MONO = ("overrides", "mistakes", "all")
VIEW_STRIPS = 8  # strips of the whole view a motion learner reads to see what lies beside the corridor
EPISODE_KEYS = ("collisions", "mean_flight_time_between_collisions", "training_wheel_overrides",
                "training_wheel_override_events", "mono_fraction", "mono_disparity_error", "mono_distance_error",
                "mono_tpr", "mono_fpr")


@dataclass(frozen=True)
class SwitchRule:
    """When the flight cue changes, from one check's window TPR/FPR (see the module docstring)."""

    tpr_min: float = 0.95
    fpr_max: float = 0.4
    exit_tpr_min: float = 0.95
    exit_fpr_max: float = 0.4
    exit_patience: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.exit_patience, int) and self.exit_patience >= 1):
            raise ValueError(f"exit_patience must be an integer >= 1 (1: the paper's memoryless rule), "
                             f"got {self.exit_patience!r}")
        if not self.exit_tpr_min <= self.tpr_min:
            raise ValueError(f"exit_tpr_min {self.exit_tpr_min} must be <= tpr_min {self.tpr_min}: leaving the "
                             "monocular cue needs a worse TPR than reaching it")
        if not self.exit_fpr_max >= self.fpr_max:
            raise ValueError(f"exit_fpr_max {self.exit_fpr_max} must be >= fpr_max {self.fpr_max}: leaving the "
                             "monocular cue needs a worse FPR than reaching it")

    def passes(self, tpr: float, fpr: float) -> bool:
        """The paper's rule (NaN, a class missing from the window, fails it)."""
        return bool(tpr > self.tpr_min and fpr < self.fpr_max)

    def next(self, on_mono: bool, failing: int, tpr: float, fpr: float) -> tuple[bool, int]:
        """(fly on mono after this check, failing checks in a row on mono) from the state before it."""
        if self.passes(tpr, fpr):
            return True, 0
        if not on_mono:
            return False, 0
        failing += 1
        clearly = bool(tpr < self.exit_tpr_min or fpr > self.exit_fpr_max)
        return (False, 0) if clearly or failing >= self.exit_patience else (True, failing)


def resolve_device(device: str) -> str:
    """``auto``: CUDA when torch sees a GPU, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but torch sees no CUDA device; use cpu or auto")
    return device


class PersistentSSLAgent:
    def __init__(
        self,
        env: Any,
        *,
        device: str = "auto",
        seed: int | None = None,
        logger: Any = None,
        reward_modules: list | None = None,
        strategy: str = "training_wheels",
        learner: str = "knn",
        buffer_size: int = 2000,
        k: int = 5,
        refit_every: int = 200,
        obstacle_disparity: float = 2.8,
        stop_disparity: float = 5.0,
        tpr_min: float = 0.95,
        fpr_max: float = 0.4,
        roc_window: int = 400,
        min_samples: int = 400,
        switch_check_every: int = 50,
        smoothing: int = 4,
        extra_turn_steps: int = 5,
        online_in_predict: bool = False,
        log_interval: int = 600,
        feature_roi: float = 0.5,
        calibrate_on: str = "stereo",
        roc_positives: int = 60,
        exit_tpr_min: float = 0.95,
        exit_fpr_max: float = 0.4,
        exit_patience: int = 1,
        buffer_on_mono: str = "overrides",
        looming_steps: int = 1,
        swept_path: float = 0.0,
    ) -> None:
        if learner not in LEARNERS:
            raise ValueError(f"unknown learner {learner!r}; choose one of {', '.join(LEARNERS)}")
        if not (isinstance(looming_steps, (int, np.integer)) and not isinstance(looming_steps, bool) and looming_steps >= 1):
            raise ValueError(f"looming_steps must be an integer >= 1 (1: looming over one forward move), got {looming_steps!r}")
        if looming_steps > 1 and learner not in MOTION_LEARNERS:
            raise ValueError(f"looming_steps={looming_steps} needs a motion learner ({', '.join(MOTION_LEARNERS)}), "
                             f"got learner {learner!r}")
        if not (isinstance(swept_path, (int, float, np.integer, np.floating)) and not isinstance(swept_path, bool)
                and math.isfinite(swept_path) and swept_path >= 0):
            raise ValueError(f"swept_path must be a half-width in m >= 0 (0: off), got {swept_path!r}")
        if swept_path and learner not in MOTION_LEARNERS:
            raise ValueError(f"swept_path needs a motion learner ({', '.join(MOTION_LEARNERS)}), got learner {learner!r}; "
                             f"set swept_path to 0 to fly {learner!r}")
        if buffer_on_mono not in BUFFER_ON_MONO:
            raise ValueError(f"unknown buffer_on_mono {buffer_on_mono!r}; choose one of {', '.join(BUFFER_ON_MONO)}")
        if calibrate_on not in CALIBRATION_FRAMES:
            raise ValueError(f"unknown calibrate_on {calibrate_on!r}; choose one of {', '.join(CALIBRATION_FRAMES)}")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
        space = env.observation_space
        if not (isinstance(space, gym.spaces.Dict) and {"image", "stereo"} <= set(space.spaces)):
            raise ValueError("persistent_ssl needs DroneRoom's obs_mode='ssl' (a Dict with 'image' and 'stereo'), "
                             f"got {space}")
        act = env.action_space
        if isinstance(act, gym.spaces.Discrete) and act.n == 2:
            self.discrete = True
        elif isinstance(act, gym.spaces.Box) and act.shape == (2,):
            self.discrete = False
        else:
            raise ValueError(f"persistent_ssl flies DroneRoom's actions (Discrete(2) or Box(2,)), got {act}")
        if not stop_disparity > obstacle_disparity > 0:
            raise ValueError(f"need stop_disparity > obstacle_disparity > 0, got {stop_disparity}, {obstacle_disparity}")
        if reward_modules:
            raise ValueError("persistent_ssl learns from stereo labels, not rewards: it takes no --reward modules")
        self.env, self.logger, self.strategy, self.calibrate_on = env, logger, strategy, calibrate_on
        self.buffer_on_mono, self.looming_steps = buffer_on_mono, int(looming_steps)
        self.n_envs = env.num_envs
        torch_device = resolve_device(device) if learner in IMAGE_LEARNERS else "cpu"
        self.estimator = MonocularEstimator(learner, tuple(space["image"].shape[:2]), buffer_size, k, refit_every,
                                            seed=seed or 0, device=torch_device, roi=feature_roi)
        self.tau_gt, self.tau_stop, self.tpr_min, self.fpr_max = obstacle_disparity, stop_disparity, tpr_min, fpr_max
        self.switch_rule = SwitchRule(tpr_min, fpr_max, exit_tpr_min, exit_fpr_max, exit_patience)
        self.failing_checks = 0  # checks in a row on mono that failed the paper's rule
        self.min_samples, self.switch_check_every, self.extra_turn_steps = min_samples, switch_check_every, extra_turn_steps
        self.smoothing, self.online_in_predict, self.log_interval = smoothing, online_in_predict, log_interval
        self.roc = RocWindow(obstacle_disparity, roc_window, roc_positives)
        self.tau_est, self.tpr, self.fpr = float(obstacle_disparity), float("nan"), float("nan")
        self.on_mono = False
        self.switch_steps: list[int] = []  # steps at which the flight cue changed
        self.num_timesteps = 0
        self.total_overrides = 0  # frames
        self.total_override_events = 0
        self.flight = FlightWindow(float(env.get_attr("dt", [0])[0]))
        # metres one forward command flies (the controller flies ahead at full speed): a motion learner's baseline
        self.step_m = float(env.get_attr("max_speed", [0])[0]) * self.flight.dt
        self.swept_path = float(swept_path)
        if self.swept_path:  # the view's geometry: the bearing each strip of it looks along
            camera = env.get_attr("camera", [0])[0]
            width, focal = camera.width, camera.focal
            edges = 0.5 + np.arange(VIEW_STRIPS + 1) * (width - 2) / VIEW_STRIPS  # pixel edges (view_looming skips column 0)
            self._strip_bearing = np.arctan(((width - 1) / 2.0 - (edges[:-1] + edges[1:]) / 2) / focal)  # > 0: left
            self._corridor_half = math.atan(float(env.get_attr("cue_roi", [0])[0]) * (width / 2.0) / focal)
        self._frame_gt = np.full(self.n_envs, np.nan)  # true disparity of each env's current frame (logging only)
        self._frame_pos = np.full((self.n_envs, 2), np.nan)  # true (x, y) of each env's drone (logging only)
        self._frame_on_mono = np.zeros(self.n_envs, bool)  # the cue each env's last training action flew on
        self._since_check = 0
        self._reset_env_state(range(self.n_envs))
        self._obs: Any = None
        self.episode_history: list[dict[str, float]] = []  # every finished training episode (not checkpointed)

    # -- per-env controller state (training and predict() keep their own) --------------------
    def _controller(self, n: int, for_predict: bool) -> dict[str, Any]:
        name = "_pred_ctrl" if for_predict else "_train_ctrl"
        ctrl = getattr(self, name, None)
        if ctrl is None or len(ctrl["hold"]) != n:
            ctrl = {"hist": [deque(maxlen=max(self.smoothing, 1)) for _ in range(n)], "hold": np.zeros(n, np.int64),
                    "prev_override": np.zeros(n, bool),
                    # a motion learner's context: the last frame and how far the drone flew ahead since it
                    "before": [None] * n, "moved": np.zeros(n),
                    # and the frames of the forward moves before that one, newest first (looming_steps > 1)
                    "earlier": [deque(maxlen=self.looming_steps - 1) for _ in range(n)]}
            setattr(self, name, ctrl)
        return ctrl

    def _reset_env_state(self, indices: Any, for_predict: bool = False) -> None:
        ctrl = self._controller(self.n_envs, for_predict)
        for i in indices:
            if i < len(ctrl["hold"]):
                ctrl["hist"][i].clear()
                ctrl["hold"][i] = 0
                ctrl["prev_override"][i] = False
                ctrl["before"][i], ctrl["moved"][i] = None, 0.0
                ctrl["earlier"][i].clear()

    def _act(self, obs: dict[str, np.ndarray], learn: bool, for_predict: bool = False) -> np.ndarray:
        images, stereo = np.asarray(obs["image"]), np.asarray(obs["stereo"], np.float32)
        n = len(images)
        ctrl = self._controller(n, for_predict)
        hist, hold = ctrl["hist"], ctrl["hold"]
        motion = self.estimator.needs_motion
        actions = np.zeros(n, np.int64) if self.discrete else np.zeros((n, 2), np.float32)
        for i in range(n):
            cue = float(stereo[i, 0])
            cue_valid = cue >= 0.0
            # imminent collision: the corridor or any vertical strip of the view is closer than tau_stop
            imminent = max(cue, float(stereo[i, 3:].max())) > self.tau_stop
            earlier = ctrl["earlier"][i]
            if not ctrl["moved"][i]:
                earlier.clear()  # a turn or a collision broke the chain of forward moves
            inputs = self.estimator.inputs(images[i], ctrl["before"][i], ctrl["moved"][i], tuple(earlier))
            seen = bool(np.isfinite(inputs).all())  # looming after a turn in place sees nothing
            raw = self.estimator.predict(inputs) if seen else float("nan")
            if motion and not ctrl["moved"][i]:
                hist[i].clear()  # the view turned: looming's earlier estimates were of another corridor
            if np.isfinite(raw):
                hist[i].append(raw)
            est = float(np.mean(hist[i])) if hist[i] else float("nan")
            on_mono = self.on_mono and self.strategy != "stereo_only"
            override = False
            if on_mono:
                # no estimate: an image learner's silence is an obstacle (be safe); a motion learner's
                # (after a turn) is not a call at all: finish the turn, then fly ahead to look
                obstacle = est > self.tau_est if np.isfinite(est) else not motion
                if self.strategy == "training_wheels" and imminent and not obstacle:
                    obstacle = override = True
            else:
                obstacle = (not cue_valid) or cue > self.tau_gt or imminent
            labelled = cue_valid and (not on_mono or self._buffers_on_mono(override, est, cue))
            stereo_runs = self.strategy != "naive" or not on_mono
            if learn and stereo_runs:  # every score is taken before its frame is learned from: an honest ROC
                if self.calibrate_on == "stereo" and cue_valid and np.isfinite(est):
                    self.roc.add(est, cue)
                elif self.calibrate_on == "buffered" and labelled and np.isfinite(raw):
                    self.roc.add(raw, cue)
                if labelled and seen:
                    self.estimator.add(inputs, cue)
            new_event = override and not ctrl["prev_override"][i]
            ctrl["prev_override"][i] = override
            if learn:
                self.total_overrides += int(override)
                self.total_override_events += int(new_event)
            if learn and not for_predict:  # the flight log is the training flight's (predict's frames have no gt here)
                self.flight.frame(override, new_event, on_mono, abs(est - self._frame_gt[i]), blind=not np.isfinite(est))
                self._frame_on_mono[i] = on_mono
            if on_mono and self.swept_path and seen and not obstacle:  # what lies beside the corridor, in the path
                obstacle = self._in_swept_path(
                    self.estimator.view_inverse_depth(images[i], ctrl["before"][i], ctrl["moved"][i], VIEW_STRIPS))
            if obstacle:
                turn, hold[i] = True, self.extra_turn_steps
            elif hold[i] > 0:
                turn, hold[i] = True, hold[i] - 1
            else:
                turn = False
            if self.discrete:
                actions[i] = int(turn)
            else:
                actions[i] = (-1.0, 1.0) if turn else (1.0, 0.0)
            if motion:  # learn() zeroes ``moved`` when the step collided (the drone is put back elsewhere)
                if ctrl["moved"][i] and earlier.maxlen and not turn:
                    earlier.appendleft(ctrl["before"][i])
                ctrl["before"][i], ctrl["moved"][i] = images[i].copy(), 0.0 if turn else self.step_m
            if i < self.n_envs:
                self.env.env_method("record_pilot", frame_key(images[i][:, :, 0] if images[i].ndim == 3 else images[i]),
                                    est, self.tau_est, on_mono, override, indices=[i])
        if learn:
            self._since_check += n
            if self._since_check >= self.switch_check_every:
                self._since_check = 0
                self._update_switch()
        return actions

    def _in_swept_path(self, inverse_depth: np.ndarray) -> bool:
        """A surface beside the corridor that flying on would graze: a strip outside the corridor whose
        looming depth Z at bearing b puts it less than ``swept_path`` m to the side (Z tan|b|). The corridor
        cue is a mean over 32 degrees; a pole 20-30 degrees off, 0.5-0.9 m away, is in the drone's path and
        in neither the corridor nor, until it is too late, a stereo strip's mean."""
        beside = np.abs(self._strip_bearing) > self._corridor_half
        lateral = np.tan(np.abs(self._strip_bearing[beside])) / np.maximum(inverse_depth[beside], 1e-6)
        return bool(np.any((inverse_depth[beside] > 0) & (lateral < self.swept_path)))

    def _buffers_on_mono(self, override: bool, est: float, cue: float) -> bool:
        """Whether a frame flown on the monocular cue, with a valid stereo ``cue``, is buffered."""
        if self.buffer_on_mono == "all" or override:
            return True
        if self.buffer_on_mono == "overrides":
            return False
        mono_obstacle = not np.isfinite(est) or est > self.tau_est  # the call flown on (no estimate: obstacle)
        return mono_obstacle != (cue > self.tau_gt)  # a false positive or a false negative

    def _update_switch(self) -> None:
        """The ROC rule: choose tau_est on recent prequential estimates; the cue by ``switch_rule``."""
        if self.strategy == "stereo_only" or not self.roc.ready(self.min_samples):
            return
        if self.strategy == "naive" and self.on_mono:
            return  # no stereo any more: nothing new to judge by
        if self.estimator.n_samples < self.min_samples:
            return
        self.tau_est, self.tpr, self.fpr = roc_threshold(*self.roc.pairs(), self.tau_gt, self.tpr_min)
        on_mono, self.failing_checks = self.switch_rule.next(self.on_mono, self.failing_checks, self.tpr, self.fpr)
        if on_mono != self.on_mono:
            self.on_mono = on_mono
            self.switch_steps.append(self.num_timesteps)

    # -- Agent protocol -------------------------------------------------------------------
    def learn(self, total_timesteps: int, hooks: TrainingHooks) -> None:
        if self._obs is None:
            self._obs = self.env.reset()
            self._reset_env_state(range(self.n_envs))
            for i in range(self.n_envs):
                self._frame_pos[i] = self._reset_position(i)
        episodes: deque[dict[str, float]] = deque(maxlen=20)
        next_log = self.num_timesteps + self.log_interval
        start, start_steps = time.time(), self.num_timesteps
        while self.num_timesteps < total_timesteps:
            actions = self._act(self._obs, learn=True)
            self._obs, _, dones, infos = self.env.step(actions)
            self.num_timesteps += self.n_envs
            ctrl = self._controller(self.n_envs, False)
            for i, info in enumerate(infos):
                self._frame_gt[i] = np.nan if dones[i] else float(info.get("gt", {}).get("disparity", np.nan))
                if info.get("frame", {}).get("collision", False):
                    ctrl["moved"][i] = 0.0  # put back elsewhere: the last frame is not behind this one
                self._track_distance(i, info, bool(dones[i]))
            self.flight.collided(sum(bool(info.get("frame", {}).get("collision", False)) for info in infos))
            for i in np.flatnonzero(dones):
                self._reset_env_state([i])
                record = {k: float(infos[i][k]) for k in EPISODE_KEYS if k in infos[i]}
                if "episode" in infos[i]:
                    record["return"], record["length"] = float(infos[i]["episode"]["r"]), float(infos[i]["episode"]["l"])
                record["end_step"] = float(self.num_timesteps)
                record["on_mono_at_end"] = float(self.on_mono)
                episodes.append(record)
                self.episode_history.append(record)
            if self.logger is not None and self.num_timesteps >= next_log:
                next_log += self.log_interval
                self._log(episodes, (self.num_timesteps - start_steps) / max(time.time() - start, 1e-9))
            if not hooks.on_step(self.num_timesteps):
                break
        if self.logger is not None and self.flight.frames:  # the last, partial window
            self._log(episodes, (self.num_timesteps - start_steps) / max(time.time() - start, 1e-9))

    @staticmethod
    def _position(info: dict[str, Any]) -> np.ndarray:
        gt = info.get("gt", {})
        return np.array([gt.get("x", np.nan), gt.get("y", np.nan)], np.float64)

    def _track_distance(self, i: int, info: dict[str, Any], done: bool) -> None:
        """Metres env ``i``'s drone truly moved this step (from the env's true position): none
        on a collision, as the drone is put back elsewhere; unknown (not counted) without a
        previous position."""
        pos = self._position(info)
        collided = bool(info.get("frame", {}).get("collision", False))
        self.flight.moved(0.0 if collided else float(np.hypot(*(pos - self._frame_pos[i]))), bool(self._frame_on_mono[i]))
        self._frame_pos[i] = self._reset_position(i) if done else pos

    def _reset_position(self, i: int) -> np.ndarray:
        """Env ``i``'s position after its last reset (SB3's VecEnvs keep the reset infos)."""
        infos = getattr(self.env, "reset_infos", None)
        return self._position(infos[i]) if infos is not None and i < len(infos) else np.full(2, np.nan)

    def _log(self, episodes: deque, fps: float) -> None:
        lg = self.logger
        lg.record("time/total_timesteps", self.num_timesteps)
        lg.record("time/fps", fps)
        lg.record("ssl/on_mono", float(self.on_mono))
        lg.record("ssl/tau_est", self.tau_est)
        lg.record("ssl/roc_tpr", self.tpr)
        lg.record("ssl/roc_fpr", self.fpr)
        lg.record("ssl/buffer", self.estimator.n_samples)
        lg.record("ssl/overrides_total", self.total_overrides)
        lg.record("ssl/override_events_total", self.total_override_events)
        for key, value in self.flight.row().items():
            lg.record(key, value)
        if episodes:
            for key in ("return", "length"):
                vals = [e[key] for e in episodes if key in e]
                if vals:
                    lg.record(f"rollout/ep_{'rew' if key == 'return' else 'len'}_mean", float(np.mean(vals)))
            for key in EPISODE_KEYS:
                vals = [e[key] for e in episodes if key in e]
                if vals:
                    lg.record(f"episode/{key}", float(np.mean(vals)))
        lg.dump(self.num_timesteps)

    def draw_picture(self, run_dir: Path, title: str = "") -> Path | None:
        """The run's picture: overrides, collisions, time on mono and mono error against flight time."""
        return draw_persistence(run_dir, title)

    def predict(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """The persistent-SSL controller for a batch from ``self.env`` (its pilot reports go there;
        a report for a frame another env shows is ignored by the env)."""
        if not isinstance(observation, dict) or "image" not in observation or "stereo" not in observation:
            raise ValueError("persistent_ssl.predict needs DroneRoom 'ssl' observations: a dict with 'image' and 'stereo'")
        if episode_start is not None:
            self._reset_env_state(np.flatnonzero(np.asarray(episode_start)), for_predict=True)
        return self._act(observation, learn=self.online_in_predict, for_predict=True), state

    def state_dict(self, include_buffers: bool = True) -> dict[str, Any]:
        # the estimator's buffer is its model (kNN's data), so it is always saved
        return {
            "estimator": self.estimator.state_dict(),
            **self.roc.state_dict(),  # roc_est, roc_label
            "tau_est": self.tau_est, "tpr": self.tpr, "fpr": self.fpr, "on_mono": self.on_mono,
            "failing_checks": self.failing_checks, "switch_steps": list(self.switch_steps), "num_timesteps": self.num_timesteps,
            "total_overrides": self.total_overrides, "total_override_events": self.total_override_events,
            "flight": self.flight.state_dict(), "strategy": self.strategy,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("strategy", self.strategy) != self.strategy:
            raise ValueError(f"checkpoint is for strategy {state['strategy']!r}, this agent uses {self.strategy!r}")
        self.estimator.load_state_dict(state["estimator"])
        self.roc.load_state_dict(state)
        self.tau_est, self.tpr, self.fpr = float(state["tau_est"]), float(state["tpr"]), float(state["fpr"])
        self.on_mono, self.switch_steps = bool(state["on_mono"]), list(state["switch_steps"])
        self.failing_checks = int(state.get("failing_checks", 0))  # absent before hysteresis: none counted
        self.num_timesteps, self.total_overrides = int(state["num_timesteps"]), int(state["total_overrides"])
        self.total_override_events = int(state.get("total_override_events", 0))
        if "flight" in state:
            self.flight.load_state_dict(state["flight"])
