"""Persistent SSL against flight time: overrides counted per frame and per event, the
columns in metrics.csv, and the run's picture drawn from them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.agents import get_agent_class
from selfgym.agents.persistent_ssl_log import PICTURE, FlightWindow
from selfgym.env_factory import make_vec_env
from selfgym.envs.drone.episode_stats import EpisodeStats
from selfgym.metrics import make_logger, read_metrics

torch.set_num_threads(1)

OVERRIDES = [False, True, True, False, True, False, False, True]  # 4 frames in 3 events


def test_overrides_counted_per_frame_and_per_event():
    stats = EpisodeStats(dt=0.1)
    for override in OVERRIDES:
        stats.step(0.05, collided=False)
        stats.pilot(3.0, 2.8, 2.8, 3.0, 3.33, on_mono=True, override=override)
    summary = stats.summary()
    assert summary["training_wheel_overrides"] == 4.0
    assert summary["training_wheel_override_events"] == 3.0

    window = FlightWindow(dt=0.1)  # 8 frames = 0.8 s of flight
    previous = False
    for override in OVERRIDES:
        window.frame(override, override and not previous, on_mono=True, error=float("nan"))
        previous = override
    window.collided(1)
    row = window.row()
    minutes = 0.8 / 60
    assert row["persistence/overrides_per_min"] == pytest.approx(4 / minutes)
    assert row["persistence/override_events_per_min"] == pytest.approx(3 / minutes)
    assert row["persistence/collisions_per_min"] == pytest.approx(1 / minutes)
    assert row["persistence/mono_time"] == 1.0 and math.isnan(row["persistence/mono_error_px"])
    assert row["persistence/override_events_blind_per_min"] == 0.0  # blind defaults to False
    assert window.row() == {}  # a fresh window after each row
    # an event counts as blind by the frame it began on: the cue had no estimate there
    blind = [False, True, False, False, False, False, False, True]
    previous = False
    for override, no_estimate in zip(OVERRIDES, blind):
        window.frame(override, override and not previous, on_mono=True, error=float("nan"), blind=no_estimate)
        previous = override
    row = window.row()
    assert row["persistence/override_events_per_min"] == pytest.approx(3 / minutes)
    assert row["persistence/override_events_blind_per_min"] == pytest.approx(2 / minutes)
    with pytest.raises(ValueError, match="dt"):
        FlightWindow(dt=0.0)


def test_run_logs_flight_metrics_and_draws_the_persistence_picture(tmp_path):
    venv = make_vec_env("selfgym/DroneRoom-v0", 1, 0, dict(n_textures=1, flight_time=10.0,
                                                           disparity_mode="fast_from_depth"))
    logger, _ = make_logger(tmp_path)
    agent = get_agent_class("persistent_ssl")(venv, device="cpu", seed=0, logger=logger, reward_modules=[],
                                              min_samples=100, roc_window=100, switch_check_every=25, refit_every=50,
                                              log_interval=100)

    class Hooks:
        def on_step(self, num_timesteps: int) -> bool:
            return True

    agent.learn(450, Hooks())  # 4 full windows and a partial one
    venv.close()
    assert agent.total_override_events <= agent.total_overrides
    rows = read_metrics(tmp_path / "metrics.csv")
    assert len(rows) == 5
    flight = [r["persistence_flight_min"] for r in rows]
    assert flight[-1] == pytest.approx(450 * 0.1 / 60) and flight == sorted(flight)
    for column in ("persistence_overrides_per_min", "persistence_override_events_per_min",
                   "persistence_override_events_blind_per_min",
                   "persistence_collisions_per_min", "persistence_mono_time", "persistence_mono_error_px",
                   "ssl_overrides_total", "ssl_override_events_total"):
        assert all(r.get(column) is not None for r in rows), column
    assert np.isfinite(rows[-1]["persistence_mono_error_px"])  # the learner has estimates by then
    picture = agent.draw_picture(tmp_path, "test")
    assert picture == tmp_path / PICTURE
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 10_000
