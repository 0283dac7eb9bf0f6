"""persistent_ssl with the looming learner: a cue from motion, learned to scale from stereo."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.agents import get_agent_class
from selfgym.env_factory import make_vec_env
from selfgym.envs.drone.monocular import LineRegressor, MonocularEstimator
from selfgym.envs.drone.room_env import DroneRoomEnv

torch.set_num_threads(1)


class _Hooks:
    def on_step(self, num_timesteps: int) -> bool:
        return True


def test_line_regressor_learns_a_scale_and_round_trips():
    rng = np.random.default_rng(0)
    line = LineRegressor(capacity=500, refit_every=50)
    assert np.isnan(line.predict(np.ones(1))).all()  # nothing to say before it is fitted
    for x in rng.uniform(0.2, 2.0, 400):
        line.add(np.array([x], np.float32), 3.3 * x + 0.1 + rng.normal(0, 0.05))
    slope, intercept = line.coef
    assert slope == pytest.approx(3.3, abs=0.05) and intercept == pytest.approx(0.1, abs=0.05)
    clone = LineRegressor(capacity=500, refit_every=50)
    clone.load_state_dict(line.state_dict())
    assert clone.predict(np.array([1.0])) == pytest.approx(line.predict(np.array([1.0])))


def test_looming_inputs_need_a_forward_move_and_rank_distance():
    env = DroneRoomEnv(n_textures=12, texture_split="train", min_obstacles=0, max_obstacles=0)
    env.reset(seed=3)
    est = MonocularEstimator("looming")
    assert est.needs_motion and not MonocularEstimator("knn").needs_motion
    image = env.place(0.0, 0.0, 0.0)["image"]
    assert np.isnan(est.inputs(image)).all() and np.isnan(est.inputs(image, image, 0.0)).all()
    with pytest.raises(ValueError, match="non-finite inputs"):
        est.add(est.inputs(image), 2.0)
    wall = env.room_cfg.half_size  # flying straight at the +x wall of an empty room

    def inverse_depth(distance: float) -> float:
        before = env.place(wall - distance - 0.05, 0.3, 0.0)["image"]
        return float(est.inputs(env.place(wall - distance, 0.3, 0.0)["image"], before, 0.05)[0])

    near, mid, far = inverse_depth(0.8), inverse_depth(1.5), inverse_depth(3.0)
    assert near > mid > far, (near, mid, far)
    assert near == pytest.approx(1 / 0.8, rel=0.3)  # (s - 1) / moved is the inverse depth, about
    env.close()


def _agent(learner: str, **kw):
    venv = make_vec_env("selfgym/DroneRoomDiscrete-v0", 1, 0,
                        dict(n_textures=12, texture_split="train", flight_time=20.0, disparity_mode="fast_from_depth"))
    cls = get_agent_class("persistent_ssl")
    return cls(venv, device="cpu", seed=0, logger=None, reward_modules=[], learner=learner, **kw), venv


def test_looming_agent_learns_only_from_forward_frames_and_switches():
    agent, venv = _agent("looming", min_samples=150, roc_window=150, roc_positives=20, switch_check_every=25,
                         refit_every=50)
    seen = []
    add = agent.estimator.add
    agent.estimator.add = lambda x, y: (seen.append(x.copy()), add(x, y))[1]
    agent.learn(1500, _Hooks())
    assert len(seen) == agent.estimator.n_samples >= 150 and np.isfinite(np.concatenate(seen)).all()
    assert agent.estimator.model.coef[0] > 0, "stereo should teach looming a positive scale"
    assert agent.switch_steps, "the looming cue never passed the ROC rule in varied rooms"
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    clone, clone_venv = _agent("looming")
    clone.load_state_dict(torch.load(buf, weights_only=True))
    np.testing.assert_allclose(clone.estimator.model.coef, agent.estimator.model.coef)
    venv.close()
    clone_venv.close()


@pytest.mark.parametrize("learner, turns", [("looming", 0), ("knn", 1)])
def test_on_mono_without_an_estimate(learner, turns):
    """A motion cue says nothing after a turn: the drone flies ahead to look; an image learner's
    silence (nothing learned yet) is taken as an obstacle."""
    agent, venv = _agent(learner)
    agent.on_mono, agent.tau_est = True, 2.8
    obs = venv.reset()
    obs["stereo"][:] = 1.0  # stereo sees a clear corridor and nothing imminent: no override
    action, _ = agent.predict(obs, episode_start=np.ones(1, bool))
    assert int(action[0]) == turns
    venv.close()


def test_a_collision_is_not_a_forward_move(monkeypatch):
    """After a collision the drone is put back elsewhere: the frame before is not behind it."""
    agent, venv = _agent("looming")
    agent.learn(200, _Hooks())
    ctrl = agent._controller(1, False)
    real_step = venv.step

    def colliding_step(actions):
        obs, rewards, dones, infos = real_step(actions)
        infos[0].setdefault("frame", {})["collision"] = True
        return obs, rewards, dones, infos

    monkeypatch.setattr(venv, "step", colliding_step)
    agent.learn(201, _Hooks())
    assert ctrl["moved"][0] == 0.0 and math.isfinite(agent.step_m) and agent.step_m == pytest.approx(0.05)
    venv.close()
