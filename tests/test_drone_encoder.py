"""The learned visual encoder (Barlow Twins + stereo-label head) and held-out texture rooms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.agents import get_agent_class
from selfgym.env_factory import make_vec_env
from selfgym.envs.drone.barlow import BarlowRegressor, barlow_twins_loss
from selfgym.envs.drone.monocular import MonocularEstimator
from selfgym.envs.drone.room_env import DroneRoomEnv
from selfgym.envs.drone.scene import texture_split_indices
from selfgym.envs.drone.textures import make_texture

torch.set_num_threads(1)


def test_barlow_twins_loss_against_hand_values():
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])  # standardised, uncorrelated columns
    assert float(barlow_twins_loss(z, z, 0.5)) == pytest.approx(0.0, abs=1e-3)  # C = I
    assert float(barlow_twins_loss(z, -z, 0.5)) == pytest.approx(8.0, abs=1e-3)  # C = -I: 2 x (1 - (-1))^2
    same = torch.tensor([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]])  # two redundant features: C = all ones
    assert float(barlow_twins_loss(same, same, 0.5)) == pytest.approx(0.5 * 2, abs=1e-3)
    with pytest.raises(ValueError, match="batch"):
        barlow_twins_loss(z[:1], z[:1], 0.5)


def _texture_crops(n: int) -> np.ndarray:
    """(n, 48, 32) crops of the room's procedural textures at several scales: frame-like images."""
    rng = np.random.default_rng(0)
    kinds = ("blobs", "bricks", "checker", "stripes")
    textures = [make_texture(k, s, size=128) for k in kinds for s in range(2)]
    out = np.zeros((n, 48, 32), np.uint8)
    for i in range(n):
        tex = textures[i % len(textures)]
        step = int(rng.integers(1, 3))
        y, x = rng.integers(0, 128 - 48 * step, 2)
        out[i] = tex[y:y + 48 * step:step, x:x + 32 * step:step]
    return out


def test_encoder_ssl_loss_falls_on_a_fixed_batch():
    model = BarlowRegressor((48, 32), capacity=64, batch_size=64, train_every=10**9, seed=0)
    images = _texture_crops(64)
    for im in images:
        model.add(im, 1.0)
    batch = model._tensor(images)

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(model.ssl_loss(batch, torch.Generator().manual_seed(123)))  # the same two views each time

    before = fixed_loss()
    model.train(20)
    after = fixed_loss()
    assert after < 0.7 * before, (before, after)


def test_barlow_learner_regresses_labels_and_round_trips():
    est = MonocularEstimator("barlow", (48, 64), capacity=128, train_every=10**9)
    images = _texture_crops(96)
    labels = images.astype(np.float32).std(axis=(1, 2)) / 16.0  # a learnable function of the image
    for im, y in zip(images, labels):
        est.add(np.ascontiguousarray(im), float(y))  # already the 32 central columns
    err = lambda e: float(np.mean(np.abs(e.model.predict(images) - labels)))  # noqa: E731
    before = err(est)
    est.model.train(30)
    assert err(est) < before
    clone = MonocularEstimator("barlow", (48, 64), capacity=128, train_every=10**9)
    clone.load_state_dict(est.state_dict())
    np.testing.assert_allclose(clone.model.predict(images[:4]), est.model.predict(images[:4]), rtol=1e-5)


def test_learner_and_device_are_checked():
    venv = make_vec_env("selfgym/DroneRoom-v0", 1, 0, dict(n_textures=1, disparity_mode="fast_from_depth"))
    cls = get_agent_class("persistent_ssl")
    with pytest.raises(ValueError, match=r"unknown learner 'resnet'; choose one of knn, cnn, barlow"):
        cls(venv, device="cpu", seed=0, logger=None, reward_modules=[], learner="resnet")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            cls(venv, device="cuda", seed=0, logger=None, reward_modules=[], learner="barlow")
    agent = cls(venv, device="auto", seed=0, logger=None, reward_modules=[], learner="barlow")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert agent.estimator.model.device.type == expected
    venv.close()


def test_held_out_textures_never_appear_in_training_rooms():
    train_env, test_env = DroneRoomEnv(texture_split="train"), DroneRoomEnv(texture_split="test")
    train_pool, test_pool = set(train_env.room.texture_pool), set(test_env.room.texture_pool)
    assert train_pool and test_pool and not train_pool & test_pool
    assert len(train_pool | test_pool) == 12  # together they are the whole pool
    seen_train, seen_test = set(), set()
    for seed in range(40):
        train_env.reset(seed=seed)
        test_env.reset(seed=seed)
        seen_train |= set(train_env.room.shown_textures)
        seen_test |= set(test_env.room.shown_textures)
    assert seen_train <= train_pool and not seen_train & test_pool
    assert seen_test == test_pool  # every held-out texture is used in evaluation rooms
    assert len(seen_train) == len(train_pool)
    train_env.close()
    test_env.close()
    assert texture_split_indices(12, "test") == [3, 7, 11]
    with pytest.raises(ValueError, match="unknown texture_split 'val'; choose one of all, train, test"):
        DroneRoomEnv(texture_split="val")
    with pytest.raises(ValueError, match="n_textures >= 4"):
        DroneRoomEnv(texture_split="test", n_textures=1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_cuda_without_gpu_is_refused_before_any_folder(run_cli, tmp_path):
    out = run_cli("train.py", "--device", "cuda", "-n", "10", "-params", "learner:barlow")
    assert out.returncode != 0
    assert "--device cuda was asked for but torch sees no CUDA device" in out.stderr + out.stdout
    assert not (tmp_path / "logs").exists()
