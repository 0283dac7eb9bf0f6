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


def test_looming_steps_measures_over_the_last_forward_moves(monkeypatch):
    """looming_steps=k: the cue is the expansion over up to k forward moves (corridor_looming_steps), the
    chain restarting at a turn; the default measures over one move."""
    from selfgym.envs.drone.looming import corridor_looming_steps

    agent, venv = _agent("looming", looming_steps=3)
    calls = []
    inputs = agent.estimator.inputs
    monkeypatch.setattr(agent.estimator, "inputs",
                        lambda image, before=None, moved=0.0, earlier=(): (calls.append((image, before, moved, earlier)),
                                                                           inputs(image, before, moved, earlier))[1])
    obs, start = venv.reset(), np.ones(1, bool)
    for _ in range(5):
        obs["stereo"][:] = 1.0  # stereo (flown on) sees a clear corridor: straight ahead
        action, _ = agent.predict(obs, episode_start=start)
        assert int(action[0]) == 0
        obs, _, done, _ = venv.step(action)
        start = done
    assert [len(c[3]) for c in calls] == [0, 0, 1, 2, 2]
    image, before, moved, earlier = calls[-1]
    history = [agent.estimator._grey(im) for im in (before, *earlier)]
    value = float(inputs(image, before, moved, earlier)[0])
    assert value == pytest.approx(corridor_looming_steps(history, agent.estimator._grey(image), moved, 1.0), rel=1e-5)
    assert value != pytest.approx(float(inputs(image, before, moved)[0]), rel=1e-3)  # not the one-move cue
    obs["stereo"][:] = 9.0  # an obstacle: turn, which breaks the chain
    agent.predict(obs, episode_start=start)
    obs, *_ = venv.step(np.ones(1, np.int64))
    obs["stereo"][:] = 9.0
    agent.predict(obs, episode_start=np.zeros(1, bool))
    assert len(calls[-1][3]) == 0 and calls[-1][2] == 0.0
    venv.close()


@pytest.mark.parametrize("bad, learner", [(0, "looming"), (2.5, "looming"), (True, "looming"), (4, "knn")])
def test_looming_steps_rejects_bad_values(bad, learner):
    venv = make_vec_env("selfgym/DroneRoomDiscrete-v0", 1, 0, dict(disparity_mode="fast_from_depth"))
    with pytest.raises(ValueError, match="looming_steps"):
        get_agent_class("persistent_ssl")(venv, device="cpu", seed=0, learner=learner, looming_steps=bad)
    venv.close()


def _empty_room_agent(**kw):
    """A looming agent on the monocular cue in an empty room, its line fitted to f B = 3.33 px m."""
    venv = make_vec_env("selfgym/DroneRoomDiscrete-v0", 1, 0,
                        dict(n_textures=12, texture_split="train", min_obstacles=0, max_obstacles=0,
                             disparity_mode="fast_from_depth"))
    agent = get_agent_class("persistent_ssl")(venv, device="cpu", seed=0, learner="looming", **kw)
    agent.on_mono, agent.tau_est = True, 2.0
    agent.estimator.model.coef = np.array([3.33, 0.0])
    env = venv.envs[0].unwrapped
    env.reset(seed=3)
    return agent, venv, env


def _fly_two_frames(agent, env, x: float, y: float, yaw: float = 0.0) -> int:
    """Two controller steps on the monocular cue: a blind first frame (it flies ahead to look), then the
    frame one 0.05-m move further along ``yaw``; stereo shows nothing (no training-wheel override)."""
    agent._reset_env_state([0], for_predict=True)
    action = None
    for step in (0.0, 0.05):
        obs = env.place(x + step * math.cos(yaw), y + step * math.sin(yaw), yaw)
        batch = {"image": obs["image"][None], "stereo": np.ones((1, *obs["stereo"].shape), np.float32)}
        action = agent._act(batch, learn=False, for_predict=True)
    return int(action[0])


@pytest.mark.parametrize("lateral, turns", [(0.27, 1), (0.6, 0)])
def test_swept_path_sees_a_surface_beside_the_corridor(lateral, turns):
    """Flying parallel to a wall on the right: the corridor is clear (a wall 2 m ahead) but a wall 0.27 m
    to the side is in the drone's path (its radius is 0.25 m): swept_path turns; 0.6 m off, it flies on."""
    agent, venv, env = _empty_room_agent(swept_path=0.3)
    wall = env.room_cfg.half_size
    assert _fly_two_frames(agent, env, 0.0, -(wall - lateral), 0.0) == turns
    plain, plain_venv, plain_env = _empty_room_agent()
    assert _fly_two_frames(plain, plain_env, 0.0, -(wall - lateral), 0.0) == 0  # the corridor alone never sees it
    venv.close()
    plain_venv.close()


def test_swept_path_geometry():
    agent, venv, _ = _empty_room_agent(swept_path=0.3)
    depth = np.full(8, 0.4)  # inverse depth, 1/m: everything 2.5 m away
    assert not agent._in_swept_path(depth)
    near_beside, near_ahead = depth.copy(), depth.copy()
    near_beside[7], near_ahead[3] = 2.2, 10.0  # 0.45 m away at 26 degrees right: 0.22 m to the side
    assert agent._in_swept_path(near_beside) and not agent._in_swept_path(near_ahead)  # ahead is the corridor's call
    assert not agent._in_swept_path(np.full(8, np.nan))
    venv.close()


@pytest.mark.parametrize("kw, match", [({"swept_path": -0.1}, "swept_path"), ({"swept_path": float("nan")}, "swept_path"),
                                       ({"swept_path": [0.3, 0.4]}, "swept_path must be a half-width"),  # a wrong shape
                                       ({"swept_path": 0.3, "learner": "knn"}, "motion learner.*set swept_path to 0"),
                                       # a misspelt learner is named as such, not as a learner the side check cannot use
                                       ({"swept_path": 0.35, "learner": "loming"}, "unknown learner 'loming'; choose one of")])
def test_view_options_reject_bad_values(kw, match):
    venv = make_vec_env("selfgym/DroneRoomDiscrete-v0", 1, 0, dict(disparity_mode="fast_from_depth"))
    with pytest.raises(ValueError, match=match):
        get_agent_class("persistent_ssl")(venv, device="cpu", seed=0, **{"learner": "looming", **kw})
    venv.close()


def test_an_override_on_a_frame_the_cue_could_not_see_is_logged_blind():
    """Right after a turn the looming cue has no estimate; if stereo then sees an imminent collision, the
    training wheels override, and the flight log counts that event as blind (no learning removes it);
    one that begins where the cue saw and called clear is not."""
    agent, venv, env = _empty_room_agent()
    agent._reset_env_state([0], for_predict=False)
    agent._frame_gt = np.array([1.0])
    imminent = np.full((1, *env.place(0.0, 0.0, 0.0)["stereo"].shape), 6.0, np.float32)  # > stop_disparity 5 px
    obs = env.place(0.0, 0.0, 0.0)
    agent._act({"image": obs["image"][None], "stereo": imminent}, learn=True)
    assert (agent.flight.override_events, agent.flight.blind_events) == (1, 1)
    agent._reset_env_state([0], for_predict=False)  # a clear, seen frame first, then the override
    for step, stereo in ((0.0, 1.0), (0.05, 1.0), (0.10, 6.0)):
        obs = env.place(step, 0.0, 0.0)
        agent._act({"image": obs["image"][None], "stereo": np.full_like(imminent, stereo)}, learn=True)
    assert (agent.flight.override_events, agent.flight.blind_events) == (2, 1)
    venv.close()
