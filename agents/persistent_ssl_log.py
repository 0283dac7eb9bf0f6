"""What a persistent-SSL run logs against flight time, and the run's picture drawn from it.

The paper's claim is about time: as the drone keeps learning from the trusted cue, the
monocular cue should take over more and more, the training wheels should be needed less,
and collisions should stay at the stereo level. ``FlightWindow`` counts, between two log
rows, every training frame of every env; ``row()`` turns the counts into rates per minute of
simulated flight (all envs together), which the agent logs to metrics.csv:

``persistence_flight_min``             cumulative simulated flight time, minutes, all envs
``persistence_overrides_per_min``      frames on which stereo overrode the monocular cue
``persistence_override_events_per_min`` override events: a run of consecutive override frames
                                       in one env counts once (one "save" by the wheels)
``persistence_override_events_blind_per_min`` those of them that began on a frame on which the
                                       monocular cue had no estimate (looming, just after a turn in
                                       place): overrides no amount of learning can take over; the rest
                                       began on a frame the cue saw and called clear
``persistence_collisions_per_min``     collisions (the env's own count)
``persistence_mono_time``              fraction of frames flown on the monocular cue
``persistence_mono_error_px``          mean |monocular estimate - true disparity| (px) over
                                       frames with an estimate; the truth comes from the env's
                                       ``info["gt"]`` and is used only for this number
``persistence_distance_per_min``       metres truly flown per minute (from the env's true
                                       position; a step that collides moves the drone nowhere)
``persistence_distance_per_min_mono``  the same over the frames flown on the monocular cue
``persistence_distance_per_min_stereo`` and over the frames flown on stereo (NaN: no such frame)

``draw_persistence`` plots these four against flight time as ``persistence.png``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from selfgym.metrics import draw_from_metrics

PICTURE = "persistence.png"
PREFIX = "persistence/"


class FlightWindow:
    """Counts since the last log row, plus the flight time so far."""

    def __init__(self, dt: float) -> None:
        if not dt > 0:
            raise ValueError(f"control period dt must be positive, got {dt}")
        self.dt = dt
        self.total_frames = 0
        self._clear()

    def _clear(self) -> None:
        self.frames = self.override_frames = self.override_events = self.blind_events = self.collisions = self.mono_frames = 0
        self.err_sum, self.err_n = 0.0, 0
        self.metres = {True: 0.0, False: 0.0}  # keyed by "flown on the monocular cue"
        self.moves = {True: 0, False: 0}

    def frame(self, override: bool, new_event: bool, on_mono: bool, error: float, blind: bool = False) -> None:
        """One training frame of one env; ``error`` is NaN when there is no estimate or no truth;
        ``blind``: the monocular cue had no estimate on this frame."""
        self.frames += 1
        self.total_frames += 1
        self.override_frames += int(override)
        self.override_events += int(new_event)
        self.blind_events += int(new_event and blind)
        self.mono_frames += int(on_mono)
        if math.isfinite(error):
            self.err_sum += error
            self.err_n += 1

    def collided(self, n: int) -> None:
        self.collisions += n

    def moved(self, metres: float, on_mono: bool) -> None:
        """How far one env's drone truly moved on one frame, and the cue it flew on; a NaN
        (no previous position known) is not counted."""
        if math.isfinite(metres):
            self.metres[on_mono] += metres
            self.moves[on_mono] += 1

    def _per_min(self, *cues: bool) -> float:
        steps = sum(self.moves[c] for c in cues)
        return sum(self.metres[c] for c in cues) / (steps * self.dt / 60.0) if steps else float("nan")

    def row(self) -> dict[str, float]:
        """The rates since the last row (empty when no frame was flown), then a fresh window."""
        if self.frames == 0:
            return {}
        minutes = self.frames * self.dt / 60.0
        out = {
            "flight_min": self.total_frames * self.dt / 60.0,
            "overrides_per_min": self.override_frames / minutes,
            "override_events_per_min": self.override_events / minutes,
            "override_events_blind_per_min": self.blind_events / minutes,
            "collisions_per_min": self.collisions / minutes,
            "mono_time": self.mono_frames / self.frames,
            "mono_error_px": self.err_sum / self.err_n if self.err_n else float("nan"),
            "distance_per_min": self._per_min(True, False),
            "distance_per_min_mono": self._per_min(True),
            "distance_per_min_stereo": self._per_min(False),
        }
        self._clear()
        return {PREFIX + k: v for k, v in out.items()}

    def state_dict(self) -> dict[str, int]:
        return {"total_frames": self.total_frames}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.total_frames = int(state["total_frames"])
        self._clear()


def _series(rows: list[dict], column: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["persistence_flight_min"], r[column]) for r in rows
           if r.get("persistence_flight_min") is not None and r.get(column) is not None and not math.isnan(r[column])]
    return (np.array([p[0] for p in pts]), np.array([p[1] for p in pts])) if pts else (np.zeros(0), np.zeros(0))


def draw_persistence(run_dir: Path, title: str = "") -> Path | None:
    """persistence.png from the run's metrics.csv; None when there is no metrics.csv yet."""
    panels = (
        ("stereo overrides / min", (("persistence_overrides_per_min", "frames"),
                                    ("persistence_override_events_per_min", "events"),
                                    ("persistence_override_events_blind_per_min", "events, cue blind"))),
        ("collisions / min", (("persistence_collisions_per_min", None),)),
        ("time on monocular cue", (("persistence_mono_time", None),)),
        ("monocular error (px)", (("persistence_mono_error_px", None),)),
    )

    def draw(rows: list[dict[str, float | None]], axes: Any) -> None:
        for ax, (ylabel, columns) in zip(axes, panels):
            for column, label in columns:
                xs, ys = _series(rows, column)
                ax.plot(xs, ys, marker="." if len(xs) < 40 else None, label=label)
            if any(label for _, label in columns):
                ax.legend(fontsize=8)
            ax.set_ylabel(ylabel, fontsize=9)
            ax.grid(alpha=0.3)
        axes[2].set_ylim(-0.05, 1.05)
        axes[-1].set_xlabel("simulated flight time (min, all envs)")
        axes[0].set_title(title or "persistent self-supervised learning")

    return draw_from_metrics(run_dir, PICTURE, draw, nrows=len(panels), figsize=(6.5, 8))
