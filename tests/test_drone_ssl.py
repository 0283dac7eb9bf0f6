"""The monocular learner and the persistent-SSL agent on DroneRoom."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import yaml

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.agents import get_agent_class
from selfgym.envs.drone.monocular import MonocularEstimator, roc_threshold
from selfgym.envs.drone.room_env import DroneRoomEnv
from selfgym.env_factory import make_vec_env

torch.set_num_threads(1)


class _Hooks:
    def __init__(self) -> None:
        self.calls = 0

    def on_step(self, num_timesteps: int) -> bool:
        self.calls += 1
        return True


def _stereo_flight(env: DroneRoomEnv, n: int, seed: int) -> list[tuple[np.ndarray, float]]:
    """(image, stereo label) pairs from a stereo-avoidance flight, as the agent collects them."""
    obs, _ = env.reset(seed=seed)
    data, hold = [], 0
    for _ in range(n):
        cue = float(obs["stereo"][0])
        if cue < 0 or cue > 2.8:
            act, hold = np.array([-1.0, 1.0], np.float32), 5
        elif hold > 0:
            act, hold = np.array([-1.0, 1.0], np.float32), hold - 1
        else:
            act = np.array([1.0, 0.0], np.float32)
        obs, _, _, truncated, _ = env.step(act)
        if truncated:
            obs, _ = env.reset()
        if obs["stereo"][0] >= 0:
            data.append((obs["image"].copy(), float(obs["stereo"][0])))
    return data


def test_monocular_error_falls_as_labelled_data_grows():
    env = DroneRoomEnv(n_textures=1, disparity_mode="sgbm")
    train, test = _stereo_flight(env, 550, seed=1), _stereo_flight(env, 150, seed=2)
    env.close()
    est = MonocularEstimator("knn", refit_every=10**9)
    test_x = np.array([est.inputs(im) for im, _ in test])
    test_y = np.array([y for _, y in test])
    errors = []
    for n in (40, 500):
        for im, y in train[est.n_samples:n]:
            est.add(est.inputs(im), y)
        est.model.fit()
        errors.append(float(np.mean(np.abs(est.model.predict(test_x) - test_y))))
    baseline = float(np.mean(np.abs(np.mean([y for _, y in train[:500]]) - test_y)))
    assert errors[1] < errors[0], errors
    assert errors[1] < 0.8 * baseline, (errors, baseline)


def test_cnn_estimator_trains_on_labels():
    est = MonocularEstimator("cnn", train_every=10**9)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, 48, 64, 1), dtype=np.uint8)
    labels = images.mean(axis=(1, 2, 3)) / 64.0  # a learnable function of the image
    for im, y in zip(images, labels):
        est.add(est.inputs(im), float(y))
    before = np.mean(np.abs([est.predict(est.inputs(im)) - y for im, y in zip(images, labels)]))
    est.model.train(100)
    after = np.mean(np.abs([est.predict(est.inputs(im)) - y for im, y in zip(images, labels)]))
    assert after < before
    with pytest.raises(ValueError, match="finite"):
        est.add(est.inputs(images[0]), float("nan"))
    with pytest.raises(ValueError, match="unknown monocular learner"):
        MonocularEstimator("svm")


def test_roc_threshold_rule():
    labels = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    tau, tpr, fpr = roc_threshold(labels * 0.5, labels, gt_threshold=3.5)  # a perfect ranking
    assert tpr == 1.0 and fpr == 0.0 and 1.5 < tau <= 2.0
    tau, tpr, fpr = roc_threshold(np.zeros(6), labels, gt_threshold=3.5)  # no information
    assert tpr == 1.0 and fpr == 1.0


def _agent(strategy: str, **kw):
    venv = make_vec_env("selfgym/DroneRoom-v0", 1, 0, dict(n_textures=1, flight_time=10.0, disparity_mode="fast_from_depth"))
    cls = get_agent_class("persistent_ssl")
    return cls(venv, device="cpu", seed=0, logger=None, reward_modules=[], strategy=strategy, **kw), venv


def test_agent_learns_switches_and_reports_metrics():
    agent, venv = _agent("training_wheels", min_samples=150, roc_window=150, switch_check_every=25, refit_every=50)
    hooks = _Hooks()
    agent.learn(900, hooks)
    assert agent.num_timesteps == 900 and hooks.calls == 900
    assert agent.estimator.n_samples >= 150
    assert agent.switch_steps, "the monocular estimator never passed the ROC rule"
    # a rollout through predict reports to the env, which puts the metrics in the final info
    obs = venv.reset()
    infos = [{}]
    for _ in range(100):
        action, _ = agent.predict(obs)
        obs, _, dones, infos = venv.step(action)
    assert dones[0]
    for key in ("collisions", "mean_flight_time_between_collisions", "training_wheel_overrides", "mono_fraction",
                "mono_disparity_error", "mono_distance_error"):
        assert key in infos[0], key
    # checkpoints hold plain data and tensors only
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    clone, _ = _agent("training_wheels")
    clone.load_state_dict(state)
    assert clone.on_mono == agent.on_mono and clone.estimator.n_samples == agent.estimator.n_samples
    x = agent.estimator.inputs(obs["image"][0])
    assert clone.estimator.predict(x) == pytest.approx(agent.estimator.predict(x))
    venv.close()


def test_stereo_only_never_switches_and_naive_has_no_overrides():
    agent, venv = _agent("stereo_only", min_samples=100, roc_window=100)
    agent.learn(300, _Hooks())
    assert not agent.on_mono and not agent.switch_steps
    venv.close()
    agent, venv = _agent("naive", min_samples=150, roc_window=150, switch_check_every=25, refit_every=50)
    agent.learn(600, _Hooks())
    assert agent.total_overrides == 0
    venv.close()


def test_agent_refuses_wrong_env_and_settings():
    venv = make_vec_env("selfgym/DroneRoom-v0", 1, 0, dict(obs_mode="stereo"))
    cls = get_agent_class("persistent_ssl")
    with pytest.raises(ValueError, match="obs_mode='ssl'"):
        cls(venv, device="cpu", seed=0, logger=None, reward_modules=[])
    venv.close()
    venv = make_vec_env("selfgym/DroneRoom-v0", 1, 0, {})
    with pytest.raises(ValueError, match="strategy"):
        cls(venv, device="cpu", seed=0, logger=None, reward_modules=[], strategy="yolo")
    with pytest.raises(ValueError, match="stop_disparity"):
        cls(venv, device="cpu", seed=0, logger=None, reward_modules=[], stop_disparity=1.0)
    venv.close()


def test_mono_estimate_wrapper_for_rl():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    checked = gym.make("selfgym/DroneRoomMonoEstimate-v0", n_textures=1, disparity_mode="fast_from_depth")
    sb3_check_env(checked)
    checked.close()
    from selfgym.envs.drone.wrappers import make_mono_estimate_env

    raw = make_mono_estimate_env(n_textures=1, disparity_mode="fast_from_depth")
    gym_check_env(raw)  # the wrapper itself, not only the env inside
    raw.close()
    env = gym.make("selfgym/DroneRoomMonoEstimate-v0", n_textures=1, disparity_mode="fast_from_depth")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3,) and (obs == -1.0).all()  # nothing learned yet: explicit "no estimate"
    for _ in range(30):
        obs, _, _, _, info = env.step(np.array([0.0, 0.5], np.float32))
    assert (obs > 0).all() and info["frame"]["mono_estimate"] == pytest.approx(float(obs[1]))
    env.close()
    with pytest.raises(ValueError, match="obs_mode"):
        gym.make("selfgym/DroneRoomMonoEstimate-v0", obs_mode="stereo")


@pytest.mark.slow
def test_train_then_evaluate_reports_drone_metrics(run_cli, tmp_path):
    out = run_cli("train.py", "--env", "selfgym/DroneRoom-v0", "--agent", "persistent_ssl", "-n", "1200", "--seed", "0",
                  "--eval-freq", "0", "--no-final-eval", "--env-kwargs", "flight_time:20",
                  "disparity_mode:fast_from_depth", "-params", "min_samples:200", "roc_window:200")
    assert out.returncode == 0, out.stderr[-2000:]
    run = tmp_path / "logs" / "persistent_ssl" / "selfgym-DroneRoom-v0_1"
    assert (run / "persistence.png").exists() and "What was learned: logs/persistent_ssl/selfgym-DroneRoom-v0_1/persistence.png" in out.stdout
    out = run_cli("evaluate.py", "--run", str(run), "-n", "2")
    assert out.returncode == 0, out.stderr[-2000:]
    for key in ("collisions", "mean_flight_time_between_collisions", "training_wheel_overrides", "mono_fraction",
                "mono_disparity_error", "mono_distance_error", "mono_fpr"):
        assert key in out.stdout, key
    # the job trains in rooms of the training textures; evaluation can fly it in rooms of the held-out ones
    assert yaml.safe_load((run / "config.yaml").read_text())["env_kwargs"]["texture_split"] == "train"
    out = run_cli("evaluate.py", "--run", str(run), "-n", "1", "--env-kwargs", "texture_split:test", "--output", str(tmp_path / "held_out.json"))
    assert out.returncode == 0, out.stderr[-2000:]
    held_out = json.loads((tmp_path / "held_out.json").read_text())
    assert held_out["env_kwargs"]["texture_split"] == "test" and held_out["env_kwargs"]["n_textures"] == 12


@pytest.mark.parametrize("learner", ["knn", "stats_knn", "cnn"])
def test_estimator_refuses_images_it_would_learn_garbage_from(learner):
    est = MonocularEstimator(learner, (48, 64))
    est.add(est.inputs(np.full((48, 64, 1), 100, np.uint8)), 1.0)  # the env's own observation is fine
    with pytest.raises(ValueError, match="NaN or infinite"):
        est.inputs(np.full((48, 64), np.nan, np.float32))
    with pytest.raises(ValueError, match="takes 48x64 images.*got shape \\(40, 64\\)"):
        est.inputs(np.zeros((40, 64), np.uint8))
    with pytest.raises(ValueError, match="stereo label must be finite"):
        est.add(est.inputs(np.zeros((48, 64), np.uint8)), float("nan"))
