"""PlayTable play data: the collect command writes a play log; the window sampler relabels goals."""

from __future__ import annotations

import numpy as np
import pytest

from selfgym.envs.play_table.collect import main as collect_main
from selfgym.envs.play_table.dataset import PlayDataset


@pytest.fixture(scope="module")
def play_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("play") / "play.npz"
    collect_main(["--hours", "0.004", "--out", str(path), "--seed", "3"])  # 432 steps
    return path


def test_collect_writes_aligned_arrays(play_log):
    data = PlayDataset(play_log)
    assert len(data) == 432
    assert data.obs.shape == (432, 37) and data.actions.shape == (432, 7) and data.scene_states.shape == (432, 22)
    np.testing.assert_array_equal(data.scene_states, data.obs[:, 15:])
    assert np.abs(data.actions).max() <= 1.0
    assert data.meta["hours"] == 0.004
    # the play policy moves the arm around
    assert np.ptp(data.obs[:, :3], axis=0).max() > 0.1


def test_goal_windows_are_hindsight_relabelled(play_log):
    data = PlayDataset(play_log)
    batch = data.sample_windows(16, window=32, rng=np.random.default_rng(0))
    assert batch["obs"].shape == (16, 32, 37) and batch["actions"].shape == (16, 32, 7)
    k = batch["start"]
    np.testing.assert_array_equal(batch["obs"][:, 0], data.obs[k])
    np.testing.assert_array_equal(batch["goal"], data.scene_states[k + 32])
    np.testing.assert_array_equal(batch["goal_obs"], data.obs[k + 32])


def test_windows_never_cross_episodes(tmp_path):
    ids = np.repeat([0, 1], [40, 40]).astype(np.int32)
    np.savez(tmp_path / "p.npz", obs=np.zeros((80, 37), np.float32), actions=np.zeros((80, 7), np.float32),
             scene_states=np.zeros((80, 22), np.float32), episode_ids=ids)
    data = PlayDataset(tmp_path / "p.npz")
    starts = data.valid_starts(32)
    assert np.all(ids[starts] == ids[starts + 32])
    assert len(starts) == 16
    with pytest.raises(ValueError, match="no window"):
        data.sample_windows(1, window=50)


def test_not_a_play_log_is_rejected(tmp_path):
    np.savez(tmp_path / "x.npz", obs=np.zeros((3, 37)))
    with pytest.raises(ValueError, match="missing arrays"):
        PlayDataset(tmp_path / "x.npz")
