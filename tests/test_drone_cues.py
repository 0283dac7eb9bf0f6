"""The monocular cue search (benchmarks/drone_cue_search.py): its switching checks are the agent's
rule, its smoothing restarts in each room as the agent's does, its AUC is the pairwise one, and
the unlearned gradient cue ranks a near wall above a far one in rendered rooms."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from drone_cue_search import (FPR_MAX, POSITIVES, TAU_GT, WINDOW, OnlineModel, features,  # noqa: E402
                              online_checks, smooth)

from selfgym.envs.drone.monocular import roc_auc  # noqa: E402
from selfgym.envs.drone.room_env import DroneRoomEnv  # noqa: E402


def _flight(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cue = np.where(rng.random(n) < 0.15, rng.uniform(2.9, 6.0, n), rng.uniform(0.5, 2.7, n))
    return cue, np.repeat(np.arange(n // 600 + 1), 600)[:n]


def test_checks_pass_a_perfect_cue_and_fail_a_noisy_one():
    cue, room = _flight(3000, 0)
    perfect = online_checks(cue, cue)
    assert perfect and all(c["met"] and c["tpr"] > 0.95 and c["fpr"] == 0.0 for c in perfect)
    assert perfect[0]["i"] + 1 >= WINDOW + POSITIVES  # no check before the window holds 400 clear and 60 obstacle frames
    noisy = cue + np.random.default_rng(1).normal(0.0, 3.0, len(cue))
    checks = online_checks(noisy, cue)
    assert checks and not any(c["met"] for c in checks) and np.median([c["fpr"] for c in checks]) > FPR_MAX


def test_per_room_window_restarts_in_each_room():
    cue, room = _flight(3000, 2)
    checks = online_checks(cue, cue, room, per_room=(200, 20))
    assert checks
    for c in checks:  # each check's window was filled inside the room of its frame
        start = int(np.flatnonzero(room == room[c["i"]])[0])
        pos = (cue[start:c["i"] + 1] > TAU_GT).sum()
        assert pos >= 20 and (c["i"] + 1 - start) - pos >= 200


def test_smoothing_is_the_agents_running_mean_restarted_per_room():
    raw = np.array([1.0, 3.0, 5.0, 7.0, 9.0, 100.0, 2.0])
    room = np.array([0, 0, 0, 0, 0, 1, 1])
    assert smooth(raw, room, 4) == pytest.approx([1.0, 2.0, 3.0, 4.0, 6.0, 100.0, 51.0])


def test_auc_is_the_pairwise_probability_with_ties_halved():
    rng = np.random.default_rng(3)
    s, y = rng.integers(0, 5, 200).astype(float), rng.random(200) < 0.3
    diff = s[y][:, None] - s[~y][None, :]
    assert roc_auc(s, y) == pytest.approx(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def test_online_model_learns_a_linear_cue_and_knn_a_step():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 3))
    model = OnlineModel("ridge", refit_every=100)
    for xi in x:
        model.add(xi, float(2.0 * xi[0] - xi[2] + 1.0))
    assert model.predict(np.array([[1.0, 0.0, 0.0]]))[0] == pytest.approx(3.0, abs=0.05)
    with pytest.raises(ValueError, match="ridge or knn"):
        OnlineModel("svm")


def test_gradient_cue_ranks_a_near_wall_above_a_far_wall():
    """Facing the same textured wall (no obstacles), from 0.6 m and from 3.0 m: the unlearned cue
    (minus the corridor's mean absolute gradient) is higher near, in every room drawn."""
    env = DroneRoomEnv(disparity_mode="fast_from_depth", min_obstacles=0, max_obstacles=0, texture_split="train")
    try:
        near, far = [], []
        for seed in range(6):
            env.reset(seed=seed)
            near.append(env.place(2.5 - 0.6, 0.0, 0.0)["image"][:, :, 0])
            far.append(env.place(2.5 - 3.0, 0.0, 0.0)["image"][:, :, 0])
    finally:
        env.close()
    x, _ = features(np.array(near + far))
    score = -x[:, 0]
    assert (score[:6] > score[6:]).all(), f"near {score[:6]} against far {score[6:]}"
