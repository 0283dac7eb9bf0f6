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
# Bumped whenever make_texture changes any texture; part of the cache file name, so a machine with
# textures cached by an older generator writes new files instead of silently reusing the old ones.
# 2: stripes and checker are aperiodic along the rows (stripes_9's 5-px period at 2 m let SGBM
# match a wrong stripe within its 16-px search, labelling walls 1.7-3 m away as obstacles) and
# speckle is coarser (its 0.8-texel grain aliased differently in the two eyes at range).
GENERATOR_VERSION = 2


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


def _uneven_edges(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``n - 1`` sorted cut points splitting ``range(size)`` into ``n`` parts whose widths vary
    from about 0.4 to 1.6 times the mean, so that the pattern does not repeat with one period."""
    widths = rng.uniform(0.4, 1.6, n)
    return np.round(np.cumsum(widths)[:-1] / widths.sum() * size).astype(int)


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
        # fine spots on a coarser mottle: at range (4-7 texels per pixel) the fine part alone
        # aliases differently in the two eyes and the stereo match wanders
        img = sum(cv2.GaussianBlur(rng.random((s, s)).astype(np.float32), (0, 0), sig) * w
                  for sig, w in ((1.2, 1.0), (3.0, 2.5)))
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
        # uneven column widths and a grey level per square: no period along the rows to mismatch
        xx = np.searchsorted(_uneven_edges(rng, n, s), np.arange(s), side="right")
        yy = np.arange(s) * n // s
        sq = (yy[:, None] + xx[None, :]) % 2
        shade = rng.uniform(0.6, 1.0, (n, n))[yy[:, None], xx[None, :]]
        img = sq.astype(np.float32) * shade * rng.uniform(0.5, 1.0) + 0.4 * rng.random((s, s)).astype(np.float32)
    elif kind == "stripes":
        # vertical bars of uneven width and grey level: a stripe pattern with no period along the
        # rows (the epipolar lines), so block matching cannot lock onto a neighbouring stripe
        n = int(rng.integers(4, 9))
        col = np.searchsorted(_uneven_edges(rng, 2 * n, s), np.arange(s), side="right")
        level = np.where(np.arange(2 * n) % 2 == 0, rng.uniform(0.0, 0.35, 2 * n), rng.uniform(0.65, 1.0, 2 * n))
        noise = cv2.GaussianBlur(rng.random((s, s)).astype(np.float32), (0, 0), 1.5)
        img = cv2.GaussianBlur(np.tile(level[col].astype(np.float32), (s, 1)), (0, 0), 1.5) + 0.5 * noise
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


def texture_file_name(kind: str, seed: int, contrast: float = 1.0) -> str:
    """The cache file name: every input of ``make_texture`` and the generator's version."""
    return f"{kind}_{seed}_c{int(round(contrast * 100))}_{TEXTURE_SIZE}_g{GENERATOR_VERSION}.png"


def texture_files(n: int = 12, contrast: float = 1.0, seed: int = 0) -> list[Path]:
    """``n`` cached PNGs cycling through the kinds; written only when missing."""
    if n < 1:
        raise TexturelessSceneError(f"n_textures must be >= 1, got {n}: a room without textures cannot be matched")
    out = []
    for i in range(n):
        kind = TEXTURE_KINDS[i % len(TEXTURE_KINDS)]
        path = cache_dir() / texture_file_name(kind, seed + i, contrast)
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp.png")
            cv2.imwrite(str(tmp), make_texture(kind, seed + i, contrast))
            os.replace(tmp, path)  # atomic: parallel envs never read half a file
        out.append(path)
    return out
