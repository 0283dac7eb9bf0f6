"""The opt-in ``stats_knn`` monocular learner: standardised kNN on image statistics (issue 18, item 4)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.agents import get_agent_class
from selfgym.env_factory import make_vec_env
from selfgym.envs.drone.monocular import (LEARNERS, KNNRegressor, MonocularEstimator, StandardisedKNNRegressor,
                                          image_statistics)
from selfgym.envs.drone.room_env import DroneRoomEnv

torch.set_num_threads(1)


def test_learner_ranks_a_near_wall_above_a_far_one_after_learning_the_room():
    """Learn from stereo-labelled views of one single-texture room (the default job's setting) at
    0.5-3.5 m from a wall; then, from lateral offsets and headings it never saw, a wall 0.6 m away
    gets a higher estimate than one 3.0 m away."""
    env = DroneRoomEnv(n_textures=1, disparity_mode="fast_from_depth", min_obstacles=0, max_obstacles=0)
    est = MonocularEstimator("stats_knn")
    rng = np.random.default_rng(0)
    try:
        env.reset(seed=3)
        for _ in range(160):
            d, y, yaw = rng.uniform(0.5, 3.5), rng.uniform(-1.2, 1.2), rng.uniform(-0.3, 0.3)
            obs = env.place(2.5 - d * np.cos(yaw), y, yaw)
            if obs["stereo"][0] >= 0:
                est.add(est.inputs(obs["image"]), float(obs["stereo"][0]))
        est.model.fit()
        near, far = [], []
        for y, yaw in ((-0.9, 0.15), (-0.3, -0.1), (0.4, 0.05), (1.0, -0.2)):
            near.append(est.predict(est.inputs(env.place(2.5 - 0.6, y, yaw)["image"])))
            far.append(est.predict(est.inputs(env.place(2.5 - 3.0, y, yaw)["image"])))
    finally:
        env.close()
    assert est.n_samples > 130
    assert min(near) > max(far), f"near {near} against far {far}"
    assert min(near) > 2.8 > max(far), f"near {near} against far {far} around the 2.8 px obstacle bound"


def test_state_round_trips_and_resumes_identically():
    """Saved between refits (the fitted snapshot older than the buffer), loaded into a fresh
    estimator through torch.save: the same predictions now and after more learning."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (90, 48, 64), dtype=np.uint8)
    labels = rng.uniform(0.5, 6.0, 90)
    est = MonocularEstimator("stats_knn", capacity=50, refit_every=20)
    for im, y in zip(images[:67], labels[:67]):
        est.add(est.inputs(im), float(y))
    assert est.model.since_fit > 0  # the fitted set is not the buffer: the state must carry both
    buf = io.BytesIO()
    torch.save(est.state_dict(), buf)
    buf.seek(0)
    clone = MonocularEstimator("stats_knn", capacity=50, refit_every=20)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    queries = [est.inputs(im) for im in images[67:]]
    assert [clone.predict(q) for q in queries] == [est.predict(q) for q in queries]
    for im, y in zip(images[67:], labels[67:]):
        est.add(est.inputs(im), float(y))
        clone.add(clone.inputs(im), float(y))
        assert clone.predict(queries[0]) == est.predict(queries[0])
    with pytest.raises(ValueError, match="stats_knn"):
        MonocularEstimator("knn").load_state_dict(est.state_dict())


def test_standardisation_stops_a_wide_feature_from_deciding_the_neighbours():
    """Label = feature 0 (range 10); feature 1 is noise of range 10,000. On raw distances the noise
    picks the neighbours (error near guessing); standardised, feature 0 counts as much as it."""
    rng = np.random.default_rng(2)
    def data(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.column_stack([rng.uniform(0, 10, n), rng.uniform(0, 1e4, n)]).astype(np.float32)
        return x, x[:, 0].copy()

    (x, y), (xq, yq) = data(1000), data(200)
    errors = {}
    for name, model in (("raw", KNNRegressor(2, capacity=1000)), ("standardised", StandardisedKNNRegressor(2, capacity=1000))):
        for xi, yi in zip(x, y):
            model.add(xi, float(yi))
        model.fit()
        errors[name] = float(np.abs(model.predict(xq) - yq).mean())
    assert errors["raw"] > 2.0 and errors["standardised"] < 0.8, errors


def test_a_feature_constant_over_the_buffer_changes_no_neighbour():
    """std 0 over the fitted set: scale 1, not a division by ~0 that would drown the other features."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    y = x[:, 0] + 0.1 * x[:, 1]
    with_const, without = StandardisedKNNRegressor(4, capacity=300), StandardisedKNNRegressor(3, capacity=300)
    for xi, yi in zip(x, y):
        with_const.add(np.append(xi, 0.25), float(yi))
        without.add(xi, float(yi))
    with_const.fit()
    without.fit()
    q = rng.normal(size=(50, 3)).astype(np.float32)
    q_const = np.column_stack([q, np.full(50, 0.75, np.float32)])  # off the buffer's constant by 0.5
    np.testing.assert_allclose(with_const.predict(q_const), without.predict(q), rtol=1e-6)


def test_image_statistics_refuses_a_wrong_image():
    assert image_statistics(np.zeros((48, 32), np.uint8)).shape == (20,)
    with pytest.raises(ValueError, match="shape"):
        image_statistics(np.zeros((48, 32, 3), np.uint8))


def test_agent_takes_the_learner_and_names_it_among_the_valid_ones():
    assert "stats_knn" in LEARNERS
    venv = make_vec_env("selfgym/DroneRoom-v0", 1, 0, dict(n_textures=1, flight_time=10.0, disparity_mode="fast_from_depth"))
    cls = get_agent_class("persistent_ssl")
    try:
        agent = cls(venv, device="cpu", seed=0, logger=None, reward_modules=[], learner="stats_knn",
                    min_samples=60, roc_window=60, switch_check_every=25, refit_every=50)
        agent.learn(120, type("Hooks", (), {"on_step": lambda self, n: True})())
        assert agent.estimator.learner == "stats_knn" and agent.estimator.n_samples > 60
        with pytest.raises(ValueError, match="unknown learner 'textons'.*stats_knn"):
            cls(venv, device="cpu", seed=0, logger=None, reward_modules=[], learner="textons")
    finally:
        venv.close()
