"""The cnn learner's texture-invariance options: ``arch="global"`` and ``input_transform="gradient"``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from selfgym.envs.drone.monocular import CNNRegressor, MonocularEstimator, SmallCNN, StatsCNN, gradient_image
from selfgym.envs.drone.textures import make_texture

torch.set_num_threads(1)


def test_gradient_image_against_hand_values():
    x = torch.zeros(1, 1, 3, 4)
    x[..., :, 2:] = 0.5  # a vertical step between columns 1 and 2
    g = gradient_image(x)[0, 0]
    expected = torch.zeros(3, 4)
    expected[:, 1] = 4.0 * 0.5  # |x[:, 2] - x[:, 1]|; the last column and row are padded with zero
    assert torch.allclose(g, expected)
    assert torch.allclose(gradient_image(x + 0.3), g)  # a grey level offset changes nothing


def test_defaults_unchanged_and_bad_options_named():
    est = MonocularEstimator("cnn", (48, 64))
    assert isinstance(est.model.model, SmallCNN) and est.model.input_transform == "image"
    assert set(est.state_dict()["model"]["model"]) == set(SmallCNN().state_dict())  # old checkpoints still load
    with pytest.raises(ValueError, match="'pooled'.*grid, global"):
        MonocularEstimator("cnn", (48, 64), arch="pooled")
    with pytest.raises(ValueError, match="'edges'.*image, gradient"):
        MonocularEstimator("cnn", (48, 64), input_transform="edges")


def test_global_arch_has_no_layout_and_round_trips():
    net, grid = StatsCNN(), SmallCNN()
    x = torch.rand(2, 1, 48, 32)
    x[..., :24, :] *= 0.2  # a dark top half
    halves = torch.cat([x[..., 24:, :], x[..., :24, :]], dim=2)  # top and bottom halves swapped
    with torch.no_grad():
        moved = float((net(x) - net(halves)).abs().max()), float((grid(x) - grid(halves)).abs().max())
        scale = float(net(x).abs().max()), float(grid(x).abs().max())
    assert moved[0] < 0.05 * scale[0]  # only the seam and the borders change what the global average sees
    a = CNNRegressor((48, 32), capacity=64, arch="global", input_transform="gradient", seed=1)
    for i in range(40):
        a.add(np.full((48, 32), i, np.uint8), float(i % 5))
    b = CNNRegressor((48, 32), capacity=64, arch="global", input_transform="gradient", seed=2)
    b.load_state_dict(a.state_dict())
    probe = np.random.default_rng(0).integers(0, 255, (3, 48, 32), dtype=np.uint8)
    assert np.allclose(a.predict(probe), b.predict(probe))


def _zoomed_crops(kinds: tuple[str, ...], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 48, 32) crops of textures magnified 1-4x, and the magnification: closer surfaces look
    magnified, the monocular cue in a frame filled by one surface."""
    rng = np.random.default_rng(seed)
    textures = [make_texture(k, 100 + s, size=128) for k in kinds for s in range(2)]
    images, zoom = np.zeros((n, 48, 32), np.uint8), np.zeros(n, np.float32)
    for i in range(n):
        z = int(rng.integers(1, 5))
        tex = textures[int(rng.integers(len(textures)))]
        y, x = rng.integers(0, 128 - 48 // z - 1, 2)
        patch = tex[y:y + (48 + z - 1) // z, x:x + (32 + z - 1) // z]
        images[i] = cv2.resize(patch, (patch.shape[1] * z, patch.shape[0] * z), interpolation=cv2.INTER_LINEAR)[:48, :32]
        zoom[i] = z
    return images, zoom


def test_global_gradient_cnn_ranks_magnification_of_unseen_textures():
    train_x, train_z = _zoomed_crops(("blobs", "checker", "stripes"), 600, 0)
    test_x, test_z = _zoomed_crops(("bricks", "cells", "speckle"), 200, 1)  # kinds never trained on
    est = CNNRegressor((48, 32), capacity=600, arch="global", input_transform="gradient", train_every=600, seed=0)
    for image, z in zip(train_x, train_z):
        est.add(image, float(z))
    est.train(150)
    pred = est.predict(test_x)
    far, near = pred[test_z == 1], pred[test_z >= 3]
    auc = float((near[:, None] > far[None, :]).mean())
    assert auc > 0.8, f"magnification of unseen textures ranked with AUC {auc:.2f}"
