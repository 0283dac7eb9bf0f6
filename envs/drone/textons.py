"""Texton-histogram features of one grey image (van Hecke et al. 2016, after de Croon et al.):
10 intensity and 10 gradient textons (5 x 5 px), a grid of sampled patches each mapped to
its nearest texton, and the normalised 20-bin histogram plus its entropy: 21-D.

As in the paper the dictionaries are learned offline; here by k-means on patches of the
room's procedural textures seen at several scales, once, then cached as a .npz file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from selfgym.envs.drone.textures import cache_dir, texture_files

PATCH = 5
N_TEXTONS = 10
N_FEATURES = 2 * N_TEXTONS + 1


def gradient_image(grey: np.ndarray) -> np.ndarray:
    """The x-derivative, as the paper's gradient textons use."""
    return cv2.Sobel(grey.astype(np.float32), cv2.CV_32F, 1, 0, ksize=3) / 4.0


@lru_cache(maxsize=16)
def _grid_index(h: int, w: int, n_side: int) -> np.ndarray:
    """Flat pixel offsets of every patch pixel, (n_side**2, PATCH*PATCH), for an (h, w) image."""
    ys = np.linspace(0, h - PATCH, n_side).astype(int)
    xs = np.linspace(0, w - PATCH, n_side).astype(int)
    corners = (ys[:, None] * w + xs[None, :]).reshape(-1, 1)
    offsets = (np.arange(PATCH)[:, None] * w + np.arange(PATCH)[None, :]).reshape(1, -1)
    return corners + offsets


def grid_patches(img: np.ndarray, n_side: int = 14) -> np.ndarray:
    """(n_side**2, PATCH*PATCH) patches on a regular grid (the paper: 200 samples -> 14 x 14)."""
    h, w = img.shape
    return np.ascontiguousarray(img).reshape(-1)[_grid_index(h, w, n_side)].astype(np.float32)


@dataclass
class TextonDictionary:
    intensity: np.ndarray  # (N_TEXTONS, 25)
    gradient: np.ndarray  # (N_TEXTONS, 25)
    n_side: int = 14

    def features(self, grey: np.ndarray) -> np.ndarray:
        """21-D float32: 20-bin texton histogram (sums to 1) and its entropy / log(20)."""
        if grey.ndim == 3:
            grey = grey[:, :, 0]
        if grey.shape[0] < PATCH or grey.shape[1] < PATCH:
            raise ValueError(f"texton features need an image of at least {PATCH}x{PATCH}, got {grey.shape}")
        hist = np.zeros(2 * N_TEXTONS, np.float64)
        for offset, img, words in ((0, grey, self.intensity), (N_TEXTONS, gradient_image(grey), self.gradient)):
            patches = grid_patches(img, self.n_side)
            d = (patches * patches).sum(1)[:, None] - 2 * patches @ words.T + (words * words).sum(1)[None, :]
            hist[offset:offset + N_TEXTONS] += np.bincount(d.argmin(1), minlength=N_TEXTONS)
        hist /= hist.sum()
        nz = hist[hist > 0]
        entropy = float(-(nz * np.log(nz)).sum() / np.log(len(hist)))
        return np.concatenate([hist, [entropy]]).astype(np.float32)

    def save(self, path: str) -> None:
        np.savez(path, intensity=self.intensity, gradient=self.gradient)


def learn_textons(images: list[np.ndarray], seed: int = 0, per_image: int = 400) -> TextonDictionary:
    """k-means (k = 10) on random 5 x 5 patches of the images and of their x-gradients."""
    rng = np.random.default_rng(seed)
    cv2.setRNGSeed(seed)
    sets = []
    for transform in (lambda g: g.astype(np.float32), gradient_image):
        rows = []
        for img in images:
            t = transform(img)
            ys = rng.integers(0, t.shape[0] - PATCH, per_image)
            xs = rng.integers(0, t.shape[1] - PATCH, per_image)
            win = np.lib.stride_tricks.sliding_window_view(t, (PATCH, PATCH))
            rows.append(win[ys, xs].reshape(-1, PATCH * PATCH))
        data = np.concatenate(rows).astype(np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
        _, _, centres = cv2.kmeans(data, N_TEXTONS, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
        sets.append(centres[np.lexsort(centres.T[::-1])])  # a canonical order
    return TextonDictionary(sets[0], sets[1])


def default_textons() -> TextonDictionary:
    """The dictionary for the room's textures at the viewing scales of a 64 x 48 camera."""
    path = cache_dir() / "textons_v2.npz"
    if path.exists():
        data = np.load(path)
        return TextonDictionary(data["intensity"], data["gradient"])
    images = []
    for f in texture_files():
        tex = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        for scale in (1.0, 0.5, 0.25):
            images.append(cv2.resize(tex, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    textons = learn_textons(images)
    tmp = path.with_name(f"textons_v2.{os.getpid()}.tmp.npz")
    textons.save(str(tmp))
    os.replace(tmp, path)
    return textons
