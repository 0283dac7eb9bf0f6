"""Procedural grey textures for the room, written once as PNG files to a cache folder.

Stereo matching and texton features both need texture, so every surface gets a
high-contrast pattern; a scene configured without texture is refused up front.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

TEXTURE_KINDS = ("blobs", "bricks", "checker", "stripes", "speckle", "cells")
TEXTURE_SIZE = 256


class TexturelessSceneError(ValueError):
    """The scene would have no texture: stereo matching and textons cannot work on it."""


def cache_dir() -> Path:
    """``$SELFGYM_CACHE/drone_textures`` or a folder under the system temp dir."""
    root = os.environ.get("SELFGYM_CACHE") or os.path.join(tempfile.gettempdir(), "selfgym_cache")
    path = Path(root) / "drone_textures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _stretch(img: np.ndarray, contrast: float) -> np.ndarray:
    img = img.astype(np.float32)
    lo, hi = np.percentile(img, (2, 98))
    img = np.clip((img - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0)
    return np.clip(127.5 + (img - 0.5) * 255.0 * contrast, 0, 255).astype(np.uint8)


def make_texture(kind: str, seed: int, contrast: float = 1.0, size: int = TEXTURE_SIZE) -> np.ndarray:
    """A (size, size) uint8 grey texture of the given kind; deterministic in ``seed``."""
    if kind not in TEXTURE_KINDS:
        raise ValueError(f"unknown texture kind {kind!r}; known: {', '.join(TEXTURE_KINDS)}")
    if not 0.0 < contrast <= 1.0:
        raise TexturelessSceneError(f"texture contrast must be in (0, 1], got {contrast!r}: "
                                    "a flat texture cannot be matched")
    rng = np.random.default_rng(seed)
    s = size
    if kind == "blobs":
        img = sum(cv2.GaussianBlur(rng.random((s, s)).astype(np.float32), (0, 0), sig) * w
                  for sig, w in ((1.0, 1.0), (2.5, 2.0), (6.0, 3.0)))
    elif kind == "speckle":
        img = cv2.GaussianBlur(rng.random((s, s)).astype(np.float32), (0, 0), 0.8)
    elif kind == "bricks":
        bh, bw = int(rng.integers(8, 16)), int(rng.integers(16, 32))
        img = np.zeros((s, s), np.float32)
        for r in range(0, s, bh):
            shift = (r // bh % 2) * bw // 2
            for c in range(-bw, s, bw):
                img[r:r + bh - 1, max(c + shift, 0):max(c + shift + bw - 1, 0)] = rng.uniform(0.3, 1.0)
        img += 0.3 * rng.random((s, s)).astype(np.float32)
    elif kind == "checker":
        n = int(rng.integers(6, 14))
        yy, xx = np.mgrid[0:s, 0:s] * n // s
        img = ((yy + xx) % 2).astype(np.float32) * rng.uniform(0.5, 1.0) + 0.4 * rng.random((s, s)).astype(np.float32)
    elif kind == "stripes":
        freq, phase = rng.uniform(4, 12), rng.uniform(0, np.pi)
        xx = np.mgrid[0:s, 0:s][1].astype(np.float32)
        noise = cv2.GaussianBlur(rng.random((s, s)).astype(np.float32), (0, 0), 1.5)
        img = np.sin(2 * np.pi * freq * xx / s + phase) + 0.8 * noise
    else:  # cells: random Voronoi-like patches with dark borders
        pts = rng.random((24, 2)) * s
        yy, xx = np.mgrid[0:s, 0:s]
        d = np.stack([np.hypot(yy - py, xx - px) for py, px in pts])
        order = np.sort(d, axis=0)
        img = rng.random(len(pts))[d.argmin(0)] * np.clip((order[1] - order[0]) / 3.0, 0, 1)
    # every kind also carries fine grain, so there is detail to match at close range and the
    # look of a surface changes with distance (the monocular cue textons pick up)
    img = _stretch(img, 1.0).astype(np.float32) / 255.0
    grain = cv2.GaussianBlur(rng.random((s, s)).astype(np.float32), (0, 0), 0.7)
    return _stretch(img + 0.35 * (grain - grain.mean()) / (grain.std() + 1e-6) * 0.25, contrast)


def texture_files(n: int = 12, contrast: float = 1.0, seed: int = 0) -> list[Path]:
    """``n`` cached PNGs cycling through the kinds; written only when missing."""
    if n < 1:
        raise TexturelessSceneError(f"n_textures must be >= 1, got {n}: a room without textures cannot be matched")
    out = []
    for i in range(n):
        kind = TEXTURE_KINDS[i % len(TEXTURE_KINDS)]
        path = cache_dir() / f"{kind}_{seed + i}_c{int(round(contrast * 100))}_{TEXTURE_SIZE}.png"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp.png")
            cv2.imwrite(str(tmp), make_texture(kind, seed + i, contrast))
            os.replace(tmp, path)  # atomic: parallel envs never read half a file
        out.append(path)
    return out
