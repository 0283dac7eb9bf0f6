"""Per-episode flight metrics: what the env sees (collisions, flight time) and what the
agent reports through ``DroneRoomEnv.record_pilot``, scored against the ground truth."""

from __future__ import annotations

import numpy as np


def disparity_to_distance(disparity: float, fb: float, lo: float = 0.1, hi: float = 10.0) -> float:
    """Metric distance for a disparity (px), clipped to [lo, hi] m so tiny disparities stay finite."""
    return float(np.clip(fb / max(disparity, 1e-6), lo, hi))


class EpisodeStats:
    def __init__(self, dt: float) -> None:
        self.dt = dt
        self.steps = self.collisions = self.overrides = self.override_events = self.mono_steps = self.reports = 0
        self._last_override = False
        self._cue: bool | None = None  # the cue the last report flew on (None: no report for this frame)
        self.distance = 0.0
        self.cue_distance = {True: 0.0, False: 0.0}  # keyed by "flown on the monocular cue"
        self.cue_steps = {True: 0, False: 0}
        self.abs_err: list[float] = []
        self.dist_err: list[float] = []
        self.tp = self.fn = self.fp = self.tn = 0

    def step(self, travelled: float, collided: bool) -> None:
        """``travelled``: metres the drone truly moved (none on a collision). The step is
        credited to the cue of the pilot's report for the frame it acted on, if any."""
        self.steps += 1
        self.distance += travelled
        self.collisions += int(collided)
        if self._cue is not None:
            self.cue_distance[self._cue] += travelled
            self.cue_steps[self._cue] += 1
        self._cue = None

    def pilot(self, estimate: float, est_threshold: float, gt_threshold: float, gt_disparity: float, fb: float,
              on_mono: bool, override: bool) -> None:
        self.reports += 1
        self._cue = bool(on_mono)
        self.mono_steps += int(on_mono)
        self.overrides += int(override)  # frames
        self.override_events += int(override and not self._last_override)  # runs of consecutive override frames
        self._last_override = override
        if not np.isfinite(estimate):
            return  # no estimate yet (the learner has no data)
        self.abs_err.append(abs(estimate - gt_disparity))
        self.dist_err.append(abs(disparity_to_distance(estimate, fb) - disparity_to_distance(gt_disparity, fb)))
        said, truth = estimate > est_threshold, gt_disparity > gt_threshold
        self.tp += int(said and truth)
        self.fn += int(truth and not said)
        self.fp += int(said and not truth)
        self.tn += int(not said and not truth)

    def summary(self) -> dict[str, float]:
        """Top-level numbers for the final info. ``mean_flight_time_between_collisions`` is
        flight time / (collisions + 1): the mean length of the collision-free stretches,
        the last one cut off by the episode's end."""
        t = self.steps * self.dt
        out = {
            "collisions": float(self.collisions),
            "flight_time": t,
            "mean_flight_time_between_collisions": t / (self.collisions + 1),
            "distance_flown": self.distance,
            "distance_per_min": self.distance / (t / 60.0) if t else 0.0,
        }
        for on_mono, name in ((True, "mono"), (False, "stereo")):  # per minute flown on that cue, when flown on it
            if self.cue_steps[on_mono]:
                out[f"distance_per_min_{name}"] = self.cue_distance[on_mono] / (self.cue_steps[on_mono] * self.dt / 60.0)
        if self.reports:
            out["training_wheel_overrides"] = float(self.overrides)
            out["training_wheel_override_events"] = float(self.override_events)
            out["mono_fraction"] = self.mono_steps / self.reports
        if self.abs_err:
            out["mono_disparity_error"] = float(np.mean(self.abs_err))
            out["mono_distance_error"] = float(np.mean(self.dist_err))
        if self.tp + self.fn:
            out["mono_tpr"] = self.tp / (self.tp + self.fn)
        if self.fp + self.tn:
            out["mono_fpr"] = self.fp / (self.fp + self.tn)
        return out
