"""Looming: distance from the image's expansion between two frames while flying straight ahead.

A camera that moves ``moved`` m along its optical axis, to a surface now at depth Z, sees that
surface grow about the principal point by s = (Z + moved) / Z: about 4 % at 1.2 m for the DroneRoom's
0.05 m step, whatever the surface's texture. So Z = moved / (s - 1), and the disparity a stereo pair
of focal*baseline ``fb`` would report now is fb / Z = fb (s - 1) / moved, linear in s - 1. One camera,
frames before and after the move and the commanded (or IMU) motion: a monocular cue that needs no
texture-dependent learning, unlike the single-frame ones of benchmarks/drone_cue_search.py.

The fit is Gauss-Newton (Lucas-Kanade) on one scale per vertical strip of the corridor, on the raw
images: blurring them (tried, sigma 0.5-5 px, coarse to fine) made the estimate worse on DroneRoom
flights, since the fine texture the renderer draws moves consistently between frames and carries
most of the signal. Strips, averaged with equal weight as the stereo cue averages pixels, because
one scale for the whole corridor weighs each pixel by its distance from the centre: a near box
straight ahead, where the image barely moves, was drowned by the far wall at the sides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from selfgym.envs.drone.stereo import cue_columns

MAX_EXPANSION = 1.5  # a wall a step away; beyond it the linearisation is no longer trusted: clipped
STRIPS = 4  # vertical strips of the corridor (8 px each at 64 px width); chosen on recorded flights (4x1 over 2x2, 4x2, 4x3, 8x2)


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


def strip_expansions(prev: np.ndarray, cur: np.ndarray, strips: int = STRIPS, roi: float = 0.5,
                     iterations: int = 6, min_texture: float = 1.0, initial: float = 1.0) -> np.ndarray:
    """Per vertical strip of the corridor (the central ``roi`` fraction of columns, as the stereo cue),
    left to right: the scale s (> 1: the view grew) about the principal point (the image centre) that maps
    ``prev`` onto ``cur``. NaN for a strip too flat to show motion (mean squared radial derivative under
    ``min_texture``, grey levels per unit of scale). ``initial``: where the search starts (over several
    steps, e.g. the one-step estimate to the power of the steps: on the unblurred texture the fit
    converges only within a pixel or two of motion).

    Each Gauss-Newton step samples ``prev`` where the current estimates say each corridor pixel came
    from, linearises the rest of the motion with the mean of both images' gradients (symmetric: it
    converges on the larger motions of near walls) and composes each strip's increment into its estimate."""
    a, b = _check(prev, cur)
    h, w = a.shape
    cols = cue_columns(w, roi)
    n_cols = cols.stop - cols.start
    if not 1 <= strips <= n_cols:
        raise ValueError(f"strips must be in [1, {n_cols}] (the corridor's columns), got {strips}")
    if not (math.isfinite(initial) and 1.0 / MAX_EXPANSION <= initial <= MAX_EXPANSION):
        raise ValueError(f"initial scale must be in [{1 / MAX_EXPANSION:.3f}, {MAX_EXPANSION}], got {initial}")
    lo, hi = max(cols.start - 1, 0), min(cols.stop + 1, w)  # one spare column each side for the gradients
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    ys, xs = np.mgrid[0:h, lo:hi].astype(np.float32)
    inner = slice(cols.start - lo, cols.start - lo + n_cols)
    rx, ry = (xs - cx)[:, inner], (ys - cy)[:, inner]
    strip_of = np.minimum(np.arange(n_cols) * strips // n_cols, strips - 1)
    label = np.broadcast_to(strip_of, (h, n_cols)).ravel()
    strip_of_map = np.concatenate([strip_of[:1], strip_of, strip_of[-1:]])[: hi - lo]
    counts = np.bincount(label, minlength=strips)
    target = b[:, lo:hi]
    gxb, gyb = _gradients(target)
    target = target[:, inner]
    scale = np.full(strips, float(initial))
    for _ in range(iterations):
        inv = (1.0 / scale).astype(np.float32)[strip_of_map]
        warped = cv2.remap(a, cx + (xs - cx) * inv, cy + (ys - cy) * inv, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        gx, gy = _gradients(warped)
        jac = (((gx + gxb) * rx + (gy + gyb) * ry) * 0.5).ravel()
        err = (target - warped[:, inner]).ravel()
        hess = np.bincount(label, jac * jac, strips)
        # cur(p) ~ warped(p - delta (p - c)): cur is warped grown by 1 + delta, in each strip
        delta = -np.bincount(label, jac * err, strips) / np.maximum(hess, 1e-12)
        scale = np.clip(scale * (1.0 + delta), 1.0 / MAX_EXPANSION, MAX_EXPANSION)
        if np.abs(delta).max() < 1e-4:
            break
    return np.where(hess >= min_texture * counts, scale, np.nan)


def expansion(prev: np.ndarray, cur: np.ndarray, roi: float = 0.5, **options: float) -> float:
    """One scale for the whole corridor (``strip_expansions`` with one strip): the motion's size when
    the corridor is one surface; NaN when it is flat."""
    return float(strip_expansions(prev, cur, 1, roi, **options)[0])


def looming_disparity(scale: float | np.ndarray, moved: float, fb: float) -> float | np.ndarray:
    """The disparity (px) a stereo pair of focal*baseline ``fb`` would see now, at the current frame,
    for a surface that grew by ``scale`` while the camera moved ``moved`` m towards it:
    fb (s - 1) / moved. Negative for a shrinking view (noise); NaN passes through."""
    if not (math.isfinite(moved) and moved > 0):
        raise ValueError(f"looming needs a forward move > 0 m, got {moved}")
    if not (math.isfinite(fb) and fb > 0):
        raise ValueError(f"focal*baseline must be > 0 px*m, got {fb}")
    return fb * (scale - 1.0) / moved


def corridor_looming(prev: np.ndarray, cur: np.ndarray, moved: float, fb: float, strips: int = STRIPS,
                     initial: float = 1.0, roi: float = 0.5) -> float:
    """The looming cue: the mean over the corridor's strips of their looming disparities (px), strips
    too flat to say left out; NaN when all are. ``prev`` is the image ``moved`` m back along the optical
    axis (one forward step, or several with ``initial`` from the one-step estimate)."""
    disp = looming_disparity(strip_expansions(prev, cur, strips, roi, initial=initial), moved, fb)
    return float(np.mean(disp[np.isfinite(disp)])) if np.isfinite(disp).any() else float("nan")


def corridor_looming_steps(history: Sequence[np.ndarray], cur: np.ndarray, step: float, fb: float,
                           strips: int = STRIPS, roi: float = 0.5) -> float:
    """The looming cue over several forward moves: ``history`` holds the images 1, 2, ... k moves of
    ``step`` m back (all forward, nothing else between them), ``cur`` the image now. Over k moves the view
    grows k times as much for the same matching noise (on DroneRoom flights, median error 0.07-0.08 px over
    4 moves against 0.23 px over one); the k-move fit starts from the one-move scale to the power k, as it
    converges only within a pixel or two of motion. NaN when the corridor is too flat."""
    if not history:
        raise ValueError("looming needs at least one image from before a forward move")
    k = len(history)
    one = expansion(history[0], cur, roi) if k > 1 else float("nan")
    if not math.isfinite(one):  # one move, or too flat to start from
        return corridor_looming(history[0], cur, step, fb, strips, roi=roi)
    start = min(max(one ** k, 1.0 / MAX_EXPANSION), MAX_EXPANSION)
    return corridor_looming(history[-1], cur, k * step, fb, strips, initial=start, roi=roi)


def view_looming(prev: np.ndarray, cur: np.ndarray, moved: float, fb: float, strips: int = 8) -> np.ndarray:
    """Looming disparity (px) of ``strips`` vertical strips across the whole view, left to right (all
    columns but the one at each edge, which the gradients need): where, across the view, the surfaces
    are near. NaN for a strip too flat to show motion. The controller reads it when the corridor calls an
    obstacle, to know how far the obstacle reaches to the left before it turns blind."""
    width = np.asarray(cur).shape[-1]
    roi = (width - 2) / width  # cue_columns keeps one column each side: the 1-pixel margin of the gradients
    return looming_disparity(strip_expansions(prev, cur, strips, roi), moved, fb)
