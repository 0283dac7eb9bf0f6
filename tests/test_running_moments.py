"""Reward normalisation and RND's observation normalisation use SB3's RunningMeanStd: the
moments equal numpy's over everything seen, and state saved in the earlier format loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd

from selfgym.rewards.base import FunctionReward, TransitionBatch, batched
from selfgym.rewards.intrinsic._torch import RunningObsNorm


def _batch(obs: np.ndarray) -> TransitionBatch:
    n = len(obs)
    return TransitionBatch(obs, np.zeros((n, 1), np.float32), obs, np.zeros(n, np.float32), np.zeros(n, bool))


def test_reward_rms_is_sb3s_and_divides_by_the_running_std() -> None:
    module = FunctionReward(batched(lambda o, a, n, i: o[:, 0]), normalize="rms")
    assert isinstance(module.rms, RunningMeanStd)
    rng = np.random.default_rng(0)
    seen = []
    for scale in (1.0, 5.0, 20.0):
        values = (rng.normal(size=(32, 1)) * scale + 3.0).astype(np.float32)
        seen.append(values[:, 0].astype(np.float64))
        out = module(_batch(values))
    everything = np.concatenate(seen)
    # SB3 starts from a prior count of 1e-4 (mean 0, var 1): negligible after 96 values
    assert float(module.rms.mean) == pytest.approx(everything.mean(), rel=1e-5)
    assert float(module.rms.var) == pytest.approx(everything.var(), rel=1e-5)
    np.testing.assert_allclose(out, values[:, 0] / (everything.std() + 1e-8), rtol=1e-5)


def test_reward_rms_state_in_the_earlier_format_loads() -> None:
    module = FunctionReward(batched(lambda o, a, n, i: o[:, 0]), normalize="rms")
    module.load_state_dict({"rms": {"mean": 2.0, "var": 16.0, "count": 10.0}, "extra": {}})  # plain floats, as before
    assert module.state_dict()["rms"] == {"mean": 2.0, "var": 16.0, "count": 10.0}
    assert all(type(v) is float for v in module.state_dict()["rms"].values())  # plain data for torch.load(weights_only=True)


def test_observation_norm_starts_from_the_first_batch_and_clips() -> None:
    norm = RunningObsNorm(2, clip=3.0)
    assert norm.count == 0
    first = torch.tensor([[0.0, 10.0], [2.0, 30.0]])
    norm.update(first)
    np.testing.assert_array_equal(norm.rms.mean, [1.0, 20.0])  # exactly the first batch's moments
    np.testing.assert_array_equal(norm.rms.var, [1.0, 100.0])
    second = torch.tensor([[4.0, 20.0]])
    norm.update(second)
    everything = torch.cat([first, second]).double()
    np.testing.assert_allclose(norm.rms.mean, everything.mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(norm.rms.var, everything.var(0, unbiased=False).numpy(), rtol=1e-12)
    out = norm(torch.tensor([[100.0, 20.0]]))
    assert out[0, 0] == 3.0  # clipped
    # state in the earlier format (float64 tensors and a float count) loads; a wrong width does not
    other = RunningObsNorm(2)
    other.load({"mean": torch.tensor([1.0, 2.0], dtype=torch.float64), "var": torch.ones(2, dtype=torch.float64), "count": 5.0})
    assert other.count == 5.0 and torch.equal(other.state()["mean"], torch.tensor([1.0, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        RunningObsNorm(3).load(other.state())
