"""Looming: distance from the image's expansion between two frames while flying straight ahead.

A camera that moves ``moved`` m along its optical axis, to a surface now at depth Z, sees that
surface grow about the principal point by s = (Z + moved) / Z: about 4 % at 1.2 m for the DroneRoom's
0.05 m step, whatever the surface's texture. So Z = moved / (s - 1), and the disparity a stereo pair
of focal*baseline ``fb`` would report now is fb / Z = fb (s - 1) / moved, linear in s - 1: one scale
fitted to the corridor averages its pixels' expansions as the stereo cue averages their disparities.
One camera, two successive frames and the commanded (or IMU) motion: a monocular cue that needs no
texture-dependent learning, unlike the single-frame ones of benchmarks/drone_cue_search.py.

The fit is Gauss-Newton (Lucas-Kanade) on that one scale, on the raw images: blurring them (tried,
sigma 0.5-5 px, coarse to fine) made the estimate worse on DroneRoom flights, since the fine texture
the renderer draws moves consistently between frames and carries most of the signal.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from selfgym.envs.drone.stereo import cue_columns

MAX_EXPANSION = 1.5  # a wall a step away; beyond it the linearisation is no longer trusted: clipped


def _check(prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prev, cur = np.asarray(prev), np.asarray(cur)
    if prev.ndim != 2 or prev.shape != cur.shape:
        raise ValueError(f"looming needs two grey images of one (H, W) shape, got {prev.shape} and {cur.shape}")
    if prev.shape[0] < 8 or prev.shape[1] < 8:
        raise ValueError(f"looming needs images of at least 8x8 pixels, got {prev.shape}")
    a, b = prev.astype(np.float32), cur.astype(np.float32)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("looming got an image with non-finite pixels")
    return a, b


def _gradients(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y derivatives in grey levels per pixel (Sobel / 8), cropped by the 1-pixel margin."""
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)[:, 1:-1]
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)[:, 1:-1]
    return gx, gy


def expansion(prev: np.ndarray, cur: np.ndarray, roi: float = 0.5, iterations: int = 6,
              min_texture: float = 1.0) -> float:
    """The scale s (> 1: the view grew) that maps ``prev`` onto ``cur`` about the principal point
    (the image centre), fitted on the central ``roi`` fraction of columns of ``cur`` (the flight
    corridor, as the stereo cue). NaN where the corridor is too flat to show motion (mean squared
    radial derivative under ``min_texture`` grey levels per unit of scale, squared).

    Each Gauss-Newton step samples ``prev`` where the current estimate says each corridor pixel came
    from, linearises the rest of the motion with the mean of both images' gradients (symmetric: it
    converges on the larger motions of near walls) and composes the increment into the estimate."""
    a, b = _check(prev, cur)
    h, w = a.shape
    cols = cue_columns(w, roi)
    lo, hi = max(cols.start - 1, 0), min(cols.stop + 1, w)  # one spare column each side for the gradients
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    ys, xs = np.mgrid[0:h, lo:hi].astype(np.float32)
    rx, ry = (xs - cx)[:, 1:-1], (ys - cy)[:, 1:-1]
    target = b[:, lo:hi]
    gxb, gyb = _gradients(target)
    target = target[:, 1:-1]
    scale = 1.0
    for _ in range(iterations):
        inv = 1.0 / scale
        warped = cv2.remap(a, cx + (xs - cx) * inv, cy + (ys - cy) * inv, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        gx, gy = _gradients(warped)
        jac = ((gx + gxb) * rx + (gy + gyb) * ry).ravel() * 0.5
        err = (target - warped[:, 1:-1]).ravel()
        hess = float(jac @ jac)
        if hess < min_texture * jac.size:
            return float("nan")
        delta = -float(jac @ err) / hess  # cur(p) ~ warped(p - delta (p - c)): cur is warped grown by 1 + delta
        scale = min(max(scale * (1.0 + delta), 1.0 / MAX_EXPANSION), MAX_EXPANSION)
        if abs(delta) < 1e-4:
            break
    return scale


def looming_disparity(scale: float, moved: float, fb: float) -> float:
    """The disparity (px) a stereo pair of focal*baseline ``fb`` would see now, at the current frame,
    for a surface that grew by ``scale`` while the camera moved ``moved`` m towards it:
    fb (s - 1) / moved. Negative for a shrinking view (noise); NaN passes through."""
    if not (math.isfinite(moved) and moved > 0):
        raise ValueError(f"looming needs a forward move > 0 m, got {moved}")
    if not (math.isfinite(fb) and fb > 0):
        raise ValueError(f"focal*baseline must be > 0 px*m, got {fb}")
    return fb * (scale - 1.0) / moved
