"""Online monocular distance estimators trained on stereo labels (van Hecke et al. 2016).

``knn``: the paper's learner - 21-D texton histograms, k-nearest-neighbour regression
(k = 5) on a bounded circular buffer (2,000 pairs), refit every 200 frames.
``cnn``: a small CNN regressor on the raw 48 x 64 image, trained online on a bounded
image buffer - the "self-labelled data scales to deep learning" alternative.
``cnn`` options (off by default): ``arch="global"`` (``StatsCNN``: full-resolution filters
averaged over the whole corridor, no spatial layout) and ``input_transform="gradient"``
(the per-pixel absolute intensity gradient instead of the image). On rooms with textures never
seen in training they rank obstacles better than the default network, which learns
texture-specific layouts (benchmarks/results/drone_encoder_roc_global.md).
``barlow``: a learned visual encoder self-supervised twice over (``barlow``): Barlow Twins on
two augmentations of each buffered frame for the encoder, stereo labels for the head.
``stats_knn`` (opt-in): the kNN on 20 standardised image statistics (``image_statistics``)
instead of textons. In single-texture rooms it met the switching rule at more checks than the
texton kNN in a replay of recorded stereo flights (benchmarks/results/drone_cue_search.md,
finding 4); flying on it, a pilot found the same distance as the texton kNN with half the cue
switches (benchmarks/results/drone_stats_knn_pilot.md).

Both only ever see (image, stereo disparity) pairs collected in flight; the threshold
rule picks the estimate threshold from an ROC sweep, as the authors' code does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from selfgym.envs.drone.barlow import BarlowRegressor
from selfgym.envs.drone.buffer import ImageRegressorBuffer, LabelledBuffer
from selfgym.envs.drone.looming import corridor_looming_steps, view_looming
from selfgym.envs.drone.stereo import cue_columns
from selfgym.envs.drone.textons import N_FEATURES, default_textons

LEARNERS = ("knn", "cnn", "barlow", "stats_knn", "looming")
IMAGE_LEARNERS = ("cnn", "barlow")  # torch models: they take a device
MOTION_LEARNERS = ("looming",)  # they need the frame before a forward move, and say nothing after a turn


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties one half (rank form); non-finite scores
    are left out, and NaN when either class is empty."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    ok = np.isfinite(scores)
    s, y = scores[ok], positive[ok]
    if y.all() or not y.any():
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    _, first, counts = np.unique(s[order], return_index=True, return_counts=True)
    ranks = np.empty(len(s))
    ranks[order] = np.repeat(first + (counts - 1) / 2.0, counts)  # tied scores share their mean rank
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n_pos * (n_pos - 1) / 2.0) / (n_pos * n_neg))


def roc_threshold(estimates: np.ndarray, labels: np.ndarray, gt_threshold: float,
                  tpr_min: float = 0.95) -> tuple[float, float, float]:
    """(threshold, TPR, FPR): positives are labels > gt_threshold; among estimate thresholds
    whose TPR exceeds ``tpr_min``, the one with the lowest FPR (ties: the highest threshold).
    With no positives or no negatives, TPR or FPR is NaN and the threshold is gt_threshold."""
    est, pos = np.asarray(estimates, np.float64), np.asarray(labels) > gt_threshold
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float(gt_threshold), float("nan") if n_pos == 0 else 1.0, float("nan") if n_neg == 0 else 0.0
    cands = np.unique(est)
    said = est[None, :] > (cands[:, None] - 1e-9)  # "obstacle" iff estimate >= candidate
    tpr = (said & pos).sum(1) / n_pos
    fpr = (said & ~pos).sum(1) / n_neg
    ok = np.flatnonzero(tpr > tpr_min)
    if ok.size == 0:
        i = 0  # the lowest threshold: the best TPR available
    else:
        i = ok[np.lexsort((-cands[ok], fpr[ok]))[0]]
    return float(cands[i] - 1e-6), float(tpr[i]), float(fpr[i])


class RocWindow:
    """Recent (estimate, stereo label) pairs that the ROC rule judges the monocular cue on.

    With ``positives`` > 0 the two classes are kept apart: the last ``positives`` frames whose
    label says "obstacle" (> ``gt_threshold``) and the last ``size`` frames that say "clear".
    Obstacle frames are rare in flight (5-15%), and a mixed window of 400 frames may hold
    only 15-20 of them, a handful of approaches: "TPR > 0.95" on so few is met by luck. TPR
    and FPR are rates within one class, so keeping the classes apart biases neither.
    ``positives=0``: one window of the last ``size`` frames of either class.
    """

    def __init__(self, gt_threshold: float, size: int, positives: int = 0) -> None:
        if size < 1 or positives < 0:
            raise ValueError(f"ROC window sizes must be size >= 1 and positives >= 0, got {size}, {positives}")
        self.gt_threshold, self.size, self.positives = gt_threshold, size, positives
        self._pos: deque[tuple[float, float]] = deque(maxlen=positives or size)
        self._neg: deque[tuple[float, float]] = self._pos if positives == 0 else deque(maxlen=size)

    def add(self, estimate: float, label: float) -> None:
        (self._pos if label > self.gt_threshold else self._neg).append((float(estimate), float(label)))

    def ready(self, min_samples: int) -> bool:
        """Enough frames to judge by: ``min(min_samples, size)`` clear (or mixed) frames, and a
        full window of obstacle frames when the classes are kept apart."""
        if self.positives == 0:
            return len(self._pos) >= min(min_samples, self.size)
        return len(self._neg) >= min(min_samples, self.size) and len(self._pos) >= self.positives

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(estimates, labels), obstacle frames first when the classes are kept apart."""
        rows = list(self._pos) + ([] if self._neg is self._pos else list(self._neg))
        return np.array([r[0] for r in rows], np.float64), np.array([r[1] for r in rows], np.float64)

    def __len__(self) -> int:
        return len(self._pos) + (0 if self._neg is self._pos else len(self._neg))

    def state_dict(self) -> dict[str, torch.Tensor]:
        est, label = self.pairs()
        return {"roc_est": torch.tensor(est, dtype=torch.float32), "roc_label": torch.tensor(label, dtype=torch.float32)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._pos.clear()
        self._neg.clear()
        for est, label in zip(state["roc_est"].tolist(), state["roc_label"].tolist()):
            self.add(est, label)


class KNNRegressor(LabelledBuffer):
    """k-NN mean of buffered labels; the fitted set is a snapshot refreshed every ``refit_every``."""

    def __init__(self, dim: int, capacity: int = 2000, k: int = 5, refit_every: int = 200) -> None:
        super().__init__((dim,), np.float32, capacity)
        self.k, self.refit_every = k, refit_every
        self.since_fit = 0
        self._fit_x, self._fit_y = self.x[:0], self.y[:0]

    def add(self, x: np.ndarray, y: float) -> None:
        self._push(x, y)
        self.since_fit += 1
        if self.since_fit >= self.refit_every or len(self._fit_y) < self.k <= self.size:
            self.fit()

    def fit(self) -> None:
        self._fit_x, self._fit_y = self.x[: self.size].copy(), self.y[: self.size].copy()
        self.since_fit = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n,) estimates for (n, dim) queries; NaN while fewer than k samples are fitted."""
        x = np.atleast_2d(x).astype(np.float32)
        if len(self._fit_y) < self.k:
            return np.full(len(x), np.nan, np.float32)
        d = ((x[:, None, :] - self._fit_x[None, :, :]) ** 2).sum(-1)
        nn_idx = np.argpartition(d, self.k - 1, axis=1)[:, : self.k]
        return self._fit_y[nn_idx].mean(1)

    def state_dict(self) -> dict[str, Any]:
        return {**self._buffer_state(), "since_fit": self.since_fit}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self._load_buffer(s)
        self.since_fit = int(s["since_fit"])
        self.fit()


class StandardisedKNNRegressor(KNNRegressor):
    """``KNNRegressor`` on features standardised by the fitted set's mean and std, refit with it.

    Image statistics mix scales (log gradients span units, histogram fractions hundredths);
    raw Euclidean distances would be decided by the widest. A feature constant over the fitted
    set keeps scale 1: dividing by ~0 would swamp every other feature in float32. The fitted
    snapshot is checkpointed too, so a resumed learner predicts exactly as before the save.
    """

    def __init__(self, dim: int, capacity: int = 2000, k: int = 5, refit_every: int = 200) -> None:
        self.mean, self.scale = np.zeros(dim, np.float32), np.ones(dim, np.float32)
        super().__init__(dim, capacity, k, refit_every)
        self._fit_raw = self._fit_x

    def fit(self) -> None:
        super().fit()
        self._standardise(self._fit_x)

    def _standardise(self, raw: np.ndarray) -> None:
        self._fit_raw = raw
        if len(raw):
            std = raw.std(0)
            self.mean, self.scale = raw.mean(0), np.where(std > 1e-6, std, 1.0).astype(np.float32)
        self._fit_x = (raw - self.mean) / self.scale

    def predict(self, x: np.ndarray) -> np.ndarray:
        return super().predict((np.atleast_2d(x).astype(np.float32) - self.mean) / self.scale)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "fit_x": torch.from_numpy(self._fit_raw.copy()),
                "fit_y": torch.from_numpy(self._fit_y.copy())}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self._load_buffer(s)
        self.since_fit = int(s["since_fit"])
        self._fit_y = s["fit_y"].numpy().copy()
        self._standardise(s["fit_x"].numpy().copy())


N_STATISTICS = 20
_FLAT = 0.02  # |d/dx| + |d/dy| below this (in [0, 1] grey levels): a flat pixel


def _gradient(x: np.ndarray) -> np.ndarray:
    """|d/dx| + |d/dy| per pixel of an (h, w) image (last row / column zero)."""
    g = np.zeros_like(x)
    g[:, :-1] += np.abs(np.diff(x, axis=1))
    g[:-1, :] += np.abs(np.diff(x, axis=0))
    return g


def _block_mean(x: np.ndarray, k: int) -> np.ndarray:
    h, w = x.shape
    return x[: h // k * k, : w // k * k].reshape(h // k, k, w // k, k).mean((1, 3))


def image_statistics(image: np.ndarray) -> np.ndarray:
    """20 statistics of an (h, w) uint8 corridor image for the ``stats_knn`` learner.

    Distance: a near surface shows its texture magnified - less fine detail per pixel - so the
    log mean gradient at scales 1, 2, 4 (block means), the log intensity std and the two log ratios
    between scales. Which texture is seen, so that neighbours come from the same surface: x/y
    gradient anisotropy, the fraction of flat pixels and an 8-bin grey histogram. Layout: the log
    mean gradient of 4 row bands (floor and ceiling show at the top and bottom when the view is far).
    The cue search's feature set (drone_cue_search.py ``rich_features``) also held one quarter-strip's
    fine gradient by a slip; it is left out here (no reason to favour one side; replay in
    benchmarks/results/drone_stats_knn_pilot.md).
    """
    x = np.asarray(image, np.float32) / 255.0
    if x.ndim != 2 or min(x.shape) < 8:
        raise ValueError(f"image_statistics needs an (h, w) image with h, w >= 8, got shape {x.shape}")
    lg = [float(np.log(_gradient(_block_mean(x, k) if k > 1 else x).mean() + 1e-4)) for k in (1, 2, 4)]
    gx, gy = np.abs(np.diff(x, axis=1))[:-1, :], np.abs(np.diff(x, axis=0))[:, :-1]
    g = _gradient(x)
    hist = [((x >= a) & (x < a + 0.125)).mean() for a in np.arange(0.0, 1.0, 0.125)]
    bands = [np.log(band.mean() + 1e-4) for band in np.array_split(g, 4, axis=0)]
    out = [*lg, np.log(x.std() + 1e-4), lg[0] - lg[1], lg[1] - lg[2],
           np.log(gx.mean() + 1e-4) - np.log(gy.mean() + 1e-4), ((gx + gy) < _FLAT).mean(), *hist, *bands]
    return np.asarray(out, np.float32)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(), nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class StatsCNN(nn.Module):
    """Texture statistics of the whole corridor: two 3 x 3 layers at full resolution (the fine
    grain that every surface carries, magnified as it comes closer), averaged over the image,
    so no spatial layout - which, learned from a few textures, does not transfer to others."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


CNN_ARCHS = {"grid": SmallCNN, "global": StatsCNN}
INPUT_TRANSFORMS = ("image", "gradient")


def gradient_image(x: torch.Tensor) -> torch.Tensor:
    """|d/dx| + |d/dy| of (B, 1, H, W) images in [0, 1], same shape (last row / column zero),
    scaled by 4 to keep it near the image's range: how much detail each pixel sees, not its grey level."""
    gx = nn.functional.pad((x[..., :, 1:] - x[..., :, :-1]).abs(), (0, 1, 0, 0))
    gy = nn.functional.pad((x[..., 1:, :] - x[..., :-1, :]).abs(), (0, 0, 0, 1))
    return 4.0 * (gx + gy)


class CNNRegressor(ImageRegressorBuffer):
    """A small CNN trained online: every ``train_every`` added frames, ``grad_steps`` Adam
    steps on minibatches from a bounded image buffer.

    ``arch``: ``grid`` (``SmallCNN``, the default) or ``global`` (``StatsCNN``).
    ``input_transform``: ``image`` (the default) or ``gradient`` (``gradient_image``), applied
    alike in training and prediction.
    """

    def __init__(self, shape: tuple[int, int], capacity: int = 2000, lr: float = 1e-3, batch_size: int = 64,
                 train_every: int = 20, grad_steps: int = 4, seed: int = 0, device: str = "cpu",
                 arch: str = "grid", input_transform: str = "image") -> None:
        if arch not in CNN_ARCHS:
            raise ValueError(f"unknown cnn arch {arch!r}; choose one of {', '.join(CNN_ARCHS)}")
        if input_transform not in INPUT_TRANSFORMS:
            raise ValueError(f"unknown cnn input_transform {input_transform!r}; choose one of {', '.join(INPUT_TRANSFORMS)}")
        super().__init__(shape, capacity, batch_size, train_every, grad_steps, seed, device)
        self.arch, self.input_transform = arch, input_transform
        self.model = CNN_ARCHS[arch]().to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(gradient_image(images) if self.input_transform == "gradient" else images)

    def train(self, steps: int) -> float:
        loss = torch.zeros(())
        for _ in range(steps):
            images, labels = self._batch()
            loss = nn.functional.smooth_l1_loss(self._forward(images), labels)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        return float(loss.detach())

    def _estimate(self, images: torch.Tensor) -> torch.Tensor:
        return self._forward(images)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), **self._buffer_state()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["opt"])
        self._load_buffer(s)


class LineRegressor(LabelledBuffer):
    """Least-squares line y = a x + b through the buffered (1-D input, label) pairs, refit every
    ``refit_every`` additions: the calibration of a cue that is already a distance up to scale
    (looming's inverse depth against stereo disparity, f B / Z). NaN until ``min_fit`` pairs."""

    def __init__(self, capacity: int = 2000, refit_every: int = 200, min_fit: int = 20) -> None:
        super().__init__((1,), np.float32, capacity)
        self.refit_every, self.min_fit = refit_every, min_fit
        self.since_fit = 0
        self.coef = np.full(2, np.nan)  # slope, intercept

    def add(self, x: np.ndarray, y: float) -> None:
        self._push(x, y)
        self.since_fit += 1
        if self.since_fit >= self.refit_every or (not np.isfinite(self.coef).all() and self.size >= self.min_fit):
            self.fit()

    def fit(self) -> None:
        self.since_fit = 0
        if self.size >= self.min_fit:
            x, y = self.x[: self.size, 0].astype(np.float64), self.y[: self.size].astype(np.float64)
            self.coef = np.polyfit(x, y, 1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64).reshape(-1)
        return (self.coef[0] * x + self.coef[1]).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {**self._buffer_state(), "since_fit": self.since_fit, "coef": torch.from_numpy(self.coef.copy())}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self._load_buffer(s)
        self.since_fit, self.coef = int(s["since_fit"]), s["coef"].numpy().copy()


class MonocularEstimator:
    """Image -> estimated stereo disparity (px), learned online from stereo labels."""

    def __init__(self, learner: str = "knn", image_shape: tuple[int, int] = (48, 64), capacity: int = 2000,
                 k: int = 5, refit_every: int = 200, seed: int = 0, device: str = "cpu", roi: float = 0.5,
                 **cnn_kwargs: Any) -> None:
        if learner not in LEARNERS:
            raise ValueError(f"unknown monocular learner {learner!r}; choose one of {', '.join(LEARNERS)}")
        if not 0.0 < roi <= 1.0:
            raise ValueError(f"roi (fraction of central image columns) must be in (0, 1], got {roi}")
        self.learner, self.cols = learner, cue_columns(image_shape[1], roi)
        self.image_shape, self.roi = tuple(image_shape), roi
        image_shape = (image_shape[0], self.cols.stop - self.cols.start)
        if learner == "knn":
            self.textons = default_textons()
            self.model: Any = KNNRegressor(N_FEATURES, capacity, k, refit_every)
        elif learner == "stats_knn":
            self.model = StandardisedKNNRegressor(N_STATISTICS, capacity, k, refit_every)
        elif learner == "looming":
            self.model = LineRegressor(capacity, refit_every)
        elif learner == "cnn":
            self.model = CNNRegressor(image_shape, capacity, seed=seed, device=device, **cnn_kwargs)
        else:
            self.model = BarlowRegressor(image_shape, capacity, seed=seed, device=device, **cnn_kwargs)

    def _grey(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.ndim == 3:
            image = image[:, :, 0]
        if image.shape != self.image_shape:  # a wrong size would be learned from, cropped, without a word
            raise ValueError(f"monocular estimator takes {self.image_shape[0]}x{self.image_shape[1]} images "
                             f"(H x W, or H x W x C), got shape {np.asarray(image).shape}")
        if image.dtype.kind == "f" and not np.isfinite(image).all():  # NaN would poison the buffer for good
            raise ValueError("monocular estimator got an image with NaN or infinite pixels")
        return image

    def inputs(self, image: np.ndarray, before: np.ndarray | None = None, moved: float = 0.0,
               earlier: Sequence[np.ndarray] = ()) -> np.ndarray:
        """What the regressor sees: texton features (knn), image statistics (stats_knn) or the image
        itself (cnn, barlow), of the central ``roi`` columns - the flight corridor the stereo label measures.
        ``looming``: the corridor's inverse depth (1/m) from its expansion since ``before``, the image
        ``moved`` m back along the optical axis; NaN without one (``before`` None or ``moved`` 0: after a
        turn in place) or where the corridor is too flat to show motion. ``earlier``: the images 2, 3, ...
        forward moves of ``moved`` m back (nothing else between them): the expansion is then measured over
        all those moves (``looming.corridor_looming_steps``: the same inverse depth, less matching noise).
        Image learners ignore all three."""
        image = self._grey(image)
        if self.learner == "looming":
            if before is None or not moved > 0:
                return np.full(1, np.nan, np.float32)
            history = [self._grey(before), *(self._grey(im) for im in earlier)]  # one move, or a chain of them
            return np.array([corridor_looming_steps(history, image, moved, 1.0, roi=self.roi)], np.float32)
        image = np.ascontiguousarray(image[:, self.cols])
        if self.learner == "knn":
            return self.textons.features(image)
        return image_statistics(image) if self.learner == "stats_knn" else image

    def view_inverse_depth(self, image: np.ndarray, before: np.ndarray, moved: float, strips: int = 8) -> np.ndarray:
        """``looming`` only: the inverse depth (1/m; the move is known) of ``strips`` strips across the whole
        view, left to right, from one forward move of ``moved`` m since ``before``; NaN where a strip is too
        flat. What lies beside the corridor, for the controller."""
        if self.learner != "looming":
            raise ValueError(f"view_inverse_depth needs the looming learner, got {self.learner!r}")
        return view_looming(self._grey(before), self._grey(image), moved, 1.0, strips)

    @property
    def needs_motion(self) -> bool:
        return self.learner in MOTION_LEARNERS

    def predict(self, inputs: np.ndarray) -> float:
        return float(self.model.predict(inputs[None])[0])

    def add(self, inputs: np.ndarray, label: float) -> None:
        if not np.isfinite(label):
            raise ValueError(f"stereo label must be finite, got {label!r}")
        if not np.isfinite(inputs).all():  # e.g. looming after a turn: nothing to learn from
            raise ValueError("monocular estimator got non-finite inputs to learn from (looming after a turn?)")
        self.model.add(inputs, label)

    @property
    def n_samples(self) -> int:
        return self.model.size

    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.learner, "model": self.model.state_dict()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        if s["learner"] != self.learner:
            raise ValueError(f"state is for learner {s['learner']!r}, this estimator uses {self.learner!r}")
        self.model.load_state_dict(s["model"])
