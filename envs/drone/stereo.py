"""The forward stereo pair: rendering both eyes and turning them into disparity.

Disparity is in pixels (higher = closer): d = f * B / Z for focal length f (pixels),
baseline B and depth Z. Pixels where matching fails (no texture, no unique match,
occluded) hold ``INVALID_DISPARITY``, never a silent zero.

The right eye is rendered like the left (``right_eye="render"``, the faithful default) or,
cheaper (one render instead of two), synthesised from the left image and depth buffer by image-based
rendering (``right_eye="warp"``: the left image resampled at x + d, with d the right view's
disparity from the depth buffer; disoccluded areas repeat a neighbouring surface). Either
way the matchers only see two grey images.

Modes: ``sgbm`` and ``bm`` run OpenCV's real stereo matchers on the two rendered images
(the trusted cue); ``fast_from_depth`` skips the right eye and matching, and derives
disparity from the left depth buffer with matcher-like noise (Gaussian error, 1/16 px
quantisation, dropouts, and invalid pixels wherever the image lacks texture).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
import pybullet as p

INVALID_DISPARITY = -1.0
DISPARITY_MODES = ("sgbm", "bm", "fast_from_depth")
RIGHT_EYE_MODES = ("render", "warp")
NUM_DISPARITIES = 16  # OpenCV's minimum search range; enough: 6 cm at 0.2 m is ~17 px at 64 px width
N_STRIPS = 5
SUMMARY_NAMES = ("cue", "p90", "valid_fraction") + tuple(f"strip{i}" for i in range(N_STRIPS))


@dataclass
class StereoCamera:
    width: int = 64
    height: int = 48
    hfov_deg: float = 60.0
    baseline: float = 0.06
    near: float = 0.05
    far: float = 12.0

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 12:
            raise ValueError(f"camera {self.width}x{self.height} is too small for block matching (min 16x12)")
        if not 0.0 < self.baseline < 1.0:
            raise ValueError(f"stereo baseline must be in (0, 1) m, got {self.baseline}")
        self.focal = (self.width / 2) / math.tan(math.radians(self.hfov_deg) / 2)  # pixels
        vfov = 2 * math.degrees(math.atan(math.tan(math.radians(self.hfov_deg) / 2) * self.height / self.width))
        self.projection = p.computeProjectionMatrixFOV(vfov, self.width / self.height, self.near, self.far)

    @property
    def fb(self) -> float:
        """focal * baseline: disparity (px) = fb / depth (m)."""
        return self.focal * self.baseline

    def depth_from_buffer(self, buf: np.ndarray) -> np.ndarray:
        """OpenGL depth buffer -> metric depth along the optical axis."""
        n, f = self.near, self.far
        return np.asarray(f * n / (f - (f - n) * buf), dtype=np.float32)  # no copy when buf is float32

    def render(self, client: int, x: float, y: float, z: float, yaw: float, renderer: int,
               right_eye: str = "render") -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(left grey, right grey or None, left depth in m) from a rectified forward pair;
        ``right_eye`` is "render", "warp" or "none"."""
        fx, fy = math.cos(yaw), math.sin(yaw)
        rx, ry = math.sin(yaw), -math.cos(yaw)  # right-hand side of the heading
        h = self.baseline / 2
        left = self._shot(client, (x - rx * h, y - ry * h, z), (fx, fy), renderer)
        if right_eye == "render":
            right = self._shot(client, (x + rx * h, y + ry * h, z), (fx, fy), renderer, depth=False)[0]
        elif right_eye == "warp":
            right = warp_right(left[0], left[1], self.fb)
        else:
            right = None
        return left[0], right, left[1]

    def _shot(self, client: int, eye: tuple, fwd: tuple, renderer: int, depth: bool = True):
        target = (eye[0] + fwd[0], eye[1] + fwd[1], eye[2])
        view = p.computeViewMatrix(eye, target, (0, 0, 1))
        _, _, rgb, dep, _ = p.getCameraImage(self.width, self.height, view, self.projection, renderer=renderer,
                                             flags=p.ER_NO_SEGMENTATION_MASK, physicsClientId=client)
        rgb = np.asarray(rgb, dtype=np.uint8).reshape(self.height, self.width, 4)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGBA2GRAY)
        if not depth:
            return grey, None
        return grey, self.depth_from_buffer(np.asarray(dep, np.float32).reshape(self.height, self.width))


def warp_right(left: np.ndarray, depth: np.ndarray, fb: float, iterations: int = 3) -> np.ndarray:
    """The right eye's image from the left image and depth buffer: right(x) = left(x + d_r(x)),
    where the right view's disparity d_r solves d_r(x) = d_left(x + d_r(x)) by fixed-point
    iteration (at an occlusion edge it settles on one of the two surfaces)."""
    h, w = left.shape
    d_left = (fb / np.maximum(depth, 1e-3)).astype(np.float32)
    map_x0 = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w))
    map_y = np.ascontiguousarray(np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)))
    d_right = d_left
    for _ in range(iterations):
        d_right = cv2.remap(d_left, map_x0 + d_right, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return cv2.remap(left, map_x0 + d_right, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def texture_mask(grey: np.ndarray, threshold: float = 4.0, block: int = 5) -> np.ndarray:
    """True where the local mean absolute x-gradient reaches ``threshold`` grey levels
    (what block matching needs to find a unique match)."""
    gx = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3, scale=0.25))  # /4, exactly
    return cv2.blur(gx, (block, block)) >= threshold


class DisparityEstimator:
    """Disparity maps from a stereo pair (or, in fast mode, from the depth buffer)."""

    def __init__(self, camera: StereoCamera, mode: str = "sgbm", texture_threshold: float = 4.0,
                 noise_px: float = 0.15, dropout: float = 0.03) -> None:
        if mode not in DISPARITY_MODES:
            raise ValueError(f"unknown disparity mode {mode!r}; choose one of {', '.join(DISPARITY_MODES)}")
        self.camera, self.mode = camera, mode
        self.texture_threshold, self.noise_px, self.dropout = texture_threshold, noise_px, dropout
        self.matcher = self._make_matcher(mode)

    @staticmethod
    def _make_matcher(mode: str) -> Any:
        """OpenCV's matcher for ``mode`` (None in fast mode). Its settings are all fixed here, so
        pickling drops it and unpickling rebuilds it: OpenCV objects do not pickle."""
        block = 5
        if mode == "sgbm":
            return cv2.StereoSGBM_create(minDisparity=0, numDisparities=NUM_DISPARITIES, blockSize=block,
                                         P1=8 * block * block, P2=32 * block * block, disp12MaxDiff=1,
                                         uniquenessRatio=10, speckleWindowSize=0, speckleRange=0)
        if mode == "bm":
            matcher = cv2.StereoBM_create(numDisparities=NUM_DISPARITIES, blockSize=7)
            matcher.setTextureThreshold(10)
            matcher.setUniquenessRatio(10)
            return matcher
        return None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["matcher"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.matcher = self._make_matcher(self.mode)

    @property
    def needs_right_eye(self) -> bool:
        return self.matcher is not None

    def compute(self, left: np.ndarray, right: np.ndarray | None, depth: np.ndarray | None = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
        """(H, W) float32 disparity in px; ``INVALID_DISPARITY`` where it could not be measured."""
        valid_texture = texture_mask(left, self.texture_threshold)
        if self.matcher is None:
            if depth is None:
                raise ValueError("fast_from_depth mode needs the left depth buffer")
            rng = rng if rng is not None else np.random.default_rng()
            disp = self.camera.fb / np.maximum(depth, 1e-3)
            disp = disp + rng.normal(0.0, self.noise_px, disp.shape).astype(np.float32)
            disp = np.round(disp * 16.0) / 16.0  # the matchers' sub-pixel step
            ok = valid_texture & (rng.random(disp.shape) >= self.dropout) & (disp >= 0) & (disp < NUM_DISPARITIES)
            return np.where(ok, disp, INVALID_DISPARITY).astype(np.float32)
        if right is None:
            raise ValueError(f"{self.mode} matching needs the right image")
        pad = NUM_DISPARITIES  # pad on the left so the left border gets a full search range too
        lp = cv2.copyMakeBorder(left, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
        rp = cv2.copyMakeBorder(right, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
        raw = self.matcher.compute(lp, rp)[:, pad:]
        disp = raw.astype(np.float32)
        disp *= 1.0 / 16.0  # exact (a power of two), in place: this runs every step
        disp[(raw < 0) | ~valid_texture] = INVALID_DISPARITY
        return disp


def cue_columns(width: int, roi: float = 0.5) -> slice:
    """The central ``roi`` fraction of image columns: the drone's flight corridor."""
    margin = int(round(width * (1 - roi) / 2))
    return slice(margin, width - margin)


@lru_cache(maxsize=8)
def _strips(width: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Start column and width of each of the ``N_STRIPS`` vertical strips."""
    edges = np.linspace(0, width, N_STRIPS + 1).astype(int)
    return edges[:-1], tuple(int(w) for w in np.diff(edges))


def _kth_smallest(v: np.ndarray, k: int) -> float:
    """``np.partition(v, k)[k]``, by counting when every value lies on the matchers' 1/16 px grid
    in [0, NUM_DISPARITIES) (as the estimators' disparities do): the same value, several
    times faster than partitioning a few thousand floats, every step."""
    q = v * np.float32(16.0)  # exact: a power of two
    qi = q.astype(np.intp)
    if len(v) and qi.min() >= 0 and qi.max() < 16 * NUM_DISPARITIES and (qi == q).all():
        counts = np.cumsum(np.bincount(qi, minlength=16 * NUM_DISPARITIES))
        return float(np.searchsorted(counts, k, side="right")) / 16.0
    return float(np.partition(v, k)[k])


def summarise(disp: np.ndarray, roi: float = 0.5, min_valid: float = 0.05) -> np.ndarray:
    """The stereo summary (see ``SUMMARY_NAMES``): mean disparity of valid pixels in the
    central columns (the cue), 90th percentile and valid fraction over the whole image,
    and the mean of each of ``N_STRIPS`` vertical strips. A statistic with fewer than
    ``min_valid`` valid pixels is ``INVALID_DISPARITY``.

    This runs every step, so it makes few numpy calls: column sums (float32, as they always
    were) and counts once, every statistic a slice of them; counts and quotients in Python
    numbers, which give the same values as numpy's float64 arithmetic did."""
    rows, width = disp.shape
    valid = disp != INVALID_DISPARITY
    col_sum = np.where(valid, disp, 0.0).sum(0)
    col_n = np.count_nonzero(valid, axis=0).tolist()
    out = [INVALID_DISPARITY] * len(SUMMARY_NAMES)
    cols = cue_columns(width, roi)
    n = sum(col_n[cols])
    if n > 0 and n >= min_valid * rows * (cols.stop - cols.start):
        out[0] = float(col_sum[cols].sum()) / n
    total = sum(col_n)
    out[2] = np.float32(total / disp.size)  # compared as stored, in float32
    if total > 0 and out[2] >= min_valid:
        v = disp[valid]
        out[1] = _kth_smallest(v, int(0.9 * (len(v) - 1)))
    starts, widths = _strips(width)
    s_sum = np.add.reduceat(col_sum, starts).tolist()
    for i, (a, w) in enumerate(zip(starts.tolist(), widths)):
        s_n = sum(col_n[a:a + w])
        if s_n > 0 and s_n >= min_valid * rows * w:
            out[3 + i] = s_sum[i] / s_n
    return np.array(out, dtype=np.float32)
