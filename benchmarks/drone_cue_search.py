"""Search for a monocular obstacle cue that meets the switching rule in varied DroneRoom rooms (issue 18, item 3).

Offline, on frames recorded once by benchmarks/drone_cue_frames.py (stereo flight; a new room,
layout and textures drawn from the split's pool, at each reset). Positive: stereo cue > 2.8 px.
The rule: some threshold reaches TPR > 0.95 at FPR < 0.4 (``monocular.roc_threshold``).

Two bars:

* A (online, the agent's): frames in flight order, each scored before it is learned from; the
  score is the mean of the last 4 raw estimates in the room (the agent's ``smoothing``); a
  ``RocWindow`` of the last 400 clear and the last 60 obstacle frames (the defaults of
  hyperparams/persistent_ssl.yml) is judged every 50 frames once it is full. Reported: the fraction
  of checks that pass, over the second half of the flight (``pass``), per seed. On train-split
  rooms (textures seen, new layouts) and, learning on, continued into held-out-texture rooms.
* B (zero-shot): the cue as it stands after the training flight, on held-out-texture rooms:
  ROC AUC and the rule with the oracle threshold (as drone_encoder_roc.py), and the
  threshold calibrated on the training flight's last window applied there.

Cues: unlearned image statistics of the flight corridor (the central half of the columns), and
online learners (ridge regression, 5-NN) on multi-scale gradient statistics, buffer 2,000, refit
every 200 frames (as the kNN learner).

Looming (motion, needs recordings with ``prev_images``): ``looming`` is the disparity from the image's
expansion since the previous frame after a forward move of 0.05 m (envs/drone/looming.py), unlearned;
after a turn in place there is no looming, the raw estimate is NaN and the smoothing holds the room's
last forward estimates (as an agent would have to). ``looming_calib`` learns its scale from stereo (online
ridge on it, forward frames); ``looming_<ridge|knn>_rich`` add the held looming value to feat_knn_rich's
statistics. ``looming_multi[...]``: the expansion over the longest run of forward moves up to the
recording's history (``--history 4`` in drone_cue_frames.py: up to 0.2 m), started from the one-step
estimate to that power; more motion, the same matching noise. ``_global``: one scale for the whole
corridor instead of the mean over 4 strips (the first version; it underweights the centre).
Any cue name + ``_fwd``: the flight restricted to frames after a forward move.

    python benchmarks/drone_cue_frames.py [--single-texture]   # once: the frames, to /tmp/drone_frames
    python benchmarks/drone_cue_search.py [--seeds 0 1 2 3 4] [--frames /tmp/drone_frames]
        [--exclude-texture 9 --out benchmarks/results/drone_cue_search_no_stripes9]

``oracle_true_disparity`` scores each frame with its true corridor disparity (perfect monocular
depth): the ceiling of any cue that estimates distance, judged against stereo's labels.
Results and notes: benchmarks/results/drone_cue_search.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from selfgym.envs.drone.looming import STRIPS, corridor_looming, corridor_looming_steps, expansion
from selfgym.envs.drone.monocular import RocWindow, roc_auc, roc_threshold
from selfgym.envs.drone.stereo import StereoCamera, cue_columns
from selfgym.runs import atomic_write

TAU_GT, TPR_MIN, FPR_MAX = 2.8, 0.95, 0.4
STEP_M = 0.05  # the forward action's move per control step: max_speed 0.5 m/s at 10 Hz (DroneRoomEnv's defaults)
FRAME_KEYS = ("images", "stereo", "cue", "gt", "room", "step", "gt_valid", "prev_images", "prev_forward", "prev_collision",
              "history_images", "history_forward", "looming1_1", "looming1_4", "looming4_4")  # looming_raw's caches
# the agent's roc_window (= its min_samples), roc_positives, switch_check_every and smoothing
WINDOW, POSITIVES, CHECK_EVERY, SMOOTHING = 400, 60, 50, 4


def _grad(x: np.ndarray) -> np.ndarray:
    """(n, h, w) -> per-pixel |d/dx| + |d/dy| (last row / column zero)."""
    g = np.zeros_like(x)
    g[:, :, :-1] += np.abs(np.diff(x, axis=2))
    g[:, :-1, :] += np.abs(np.diff(x, axis=1))
    return g


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    n, h, w = x.shape
    return x[:, : h // k * k, : w // k * k].reshape(n, h // k, k, w // k, k).mean((2, 4))


def rich_features(images: np.ndarray) -> np.ndarray:
    """The first 7 columns of ``features`` (the corridor's 6 statistics and, a slip kept as measured, the
    leftmost strip's fine-scale gradient) and what tells textures
    apart: x/y gradient anisotropy, the fraction of flat pixels, an 8-bin grey histogram, and the log
    mean gradient of four row bands (floor and ceiling show at the top and bottom when the view is far)."""
    base, _ = features(images)
    x = images[:, :, cue_columns(images.shape[2], 0.5)].astype(np.float32) / 255.0
    gx, gy = np.abs(np.diff(x, axis=2))[:, :-1, :], np.abs(np.diff(x, axis=1))[:, :, :-1]
    g = _grad(x)
    cols = [base[:, :7], np.log(gx.mean((1, 2)) + 1e-4) - np.log(gy.mean((1, 2)) + 1e-4), ((gx + gy) < 0.02).mean((1, 2))]
    cols += [((x >= a) & (x < a + 0.125)).mean((1, 2)) for a in np.arange(0.0, 1.0, 0.125)]
    cols += [np.log(g[:, r:r + 12].mean((1, 2)) + 1e-4) for r in (0, 12, 24, 36)]
    return np.column_stack(cols)


def features(images: np.ndarray, strips: int = 4) -> tuple[np.ndarray, list[str]]:
    """Multi-scale statistics of the corridor and of ``strips`` vertical strips of it: log mean
    gradient at scales 1, 2, 4 (block means), log intensity std, and the log ratios between scales."""
    x = images[:, :, cue_columns(images.shape[2], 0.5)].astype(np.float32) / 255.0
    n, h, w = x.shape
    cols, names = [], []
    parts = [("c", slice(0, w))] + [(f"s{i}", slice(i * w // strips, (i + 1) * w // strips)) for i in range(strips)]
    g = {k: _grad(_pool(x, k) if k > 1 else x) for k in (1, 2, 4)}
    for tag, sl in parts:
        logs = {}
        for k, gk in g.items():
            s = slice(sl.start // k, sl.stop // k)
            logs[k] = np.log(gk[:, :, s].mean((1, 2)) + 1e-4)
            cols.append(logs[k])
            names.append(f"{tag}_lg{k}")
        cols.append(np.log(x[:, :, sl].std((1, 2)) + 1e-4))
        names.append(f"{tag}_lstd")
        cols += [logs[1] - logs[2], logs[2] - logs[4]]
        names += [f"{tag}_r12", f"{tag}_r24"]
    return np.stack(cols, 1).astype(np.float64), names


def load(frames: Path, split: str, seed: int) -> dict[str, np.ndarray]:
    path = frames / f"{split}_seed{seed}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: record it with python benchmarks/drone_cue_frames.py --seeds {seed}")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def without_texture(flight: dict[str, np.ndarray], texture: int) -> dict[str, np.ndarray]:
    """The flight's rooms that show pool texture ``texture`` on no surface, in flight order (a
    shorter flight, as if the pool lacked it; the rooms' layouts are unchanged)."""
    keep_rooms = np.flatnonzero(~(flight["room_textures"] == texture).any(1))
    keep = np.isin(flight["room"], keep_rooms)
    return subset(flight, keep)


def subset(flight: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    """The flight's frames where ``keep``, in flight order (per-file fields unchanged)."""
    return {k: (v[keep] if k in FRAME_KEYS else v) for k, v in flight.items()}


def forward_frames(flight: dict[str, np.ndarray]) -> np.ndarray:
    """Frames that follow a forward move within the room (no collision): the ones looming can score."""
    if "prev_forward" not in flight:
        raise KeyError("this recording has no prev_forward: re-record it with benchmarks/drone_cue_frames.py")
    return flight["prev_forward"] & ~flight["prev_collision"] & (flight["step"] > 0)


def looming_raw(flight: dict[str, np.ndarray], max_steps: int = 1, strips: int = STRIPS) -> np.ndarray:
    """The looming disparity (px) of each forward frame (envs/drone/looming.py: mean over ``strips``
    vertical strips of the corridor), NaN on the others (after a turn in place, or a room's first frame),
    over the last run of up to ``max_steps`` forward moves (> 1: from ``history_images``): cached in the flight."""
    key = f"looming{max_steps}_{strips}"
    if key not in flight:
        if max_steps > 1 and flight.get("history_images", np.zeros((0, 0))).shape[1:2] != (max_steps,):
            raise KeyError(f"looming over {max_steps} steps needs a recording with --history {max_steps}")
        fb, out = StereoCamera().fb, np.full(len(flight["cue"]), np.nan)
        images, prev_images = flight["images"], flight["prev_images"]
        for i in np.flatnonzero(forward_frames(flight)):
            steps = 1
            while steps < max_steps and flight["history_forward"][i, steps]:
                steps += 1
            history = [prev_images[i]] if steps == 1 else list(flight["history_images"][i, :steps])
            out[i] = corridor_looming_steps(history, images[i], STEP_M, fb, strips)
        flight[key] = out
    return flight[key]


def time_looming(flight: dict[str, np.ndarray], n: int = 500) -> dict[str, float]:
    """CPU milliseconds per call of the looming estimators on ``n`` forward frames of ``flight`` (this
    process, one thread; CPU time, as wall time swells with the machine's load): one step
    (``corridor_looming``) and one scale for the corridor (``expansion``)."""
    idx = np.flatnonzero(forward_frames(flight))[:n]
    prev, cur, fb = flight["prev_images"][idx], flight["images"][idx], StereoCamera().fb
    out = {}
    for name, call in (("corridor_looming_ms", lambda a, b: corridor_looming(a, b, STEP_M, fb)), ("expansion_ms", expansion)):
        t0 = time.process_time()
        for a, b in zip(prev, cur):
            call(a, b)
        out[name] = (time.process_time() - t0) / max(len(idx), 1) * 1e3
    return out


def hold_last(raw: np.ndarray, room: np.ndarray, before: float = 0.0) -> np.ndarray:
    """Each frame's latest finite value in its room (``before`` until the room has one)."""
    out, last, prev = np.empty(len(raw)), before, None
    for i, (r, rm) in enumerate(zip(raw, room)):
        if rm != prev:
            last, prev = before, rm
        if np.isfinite(r):
            last = float(r)
        out[i] = last
    return out


def smooth(raw: np.ndarray, room: np.ndarray, k: int = SMOOTHING) -> np.ndarray:
    """The agent's estimate: mean of the last ``k`` raw estimates, restarted in each room (episode)."""
    out = np.empty(len(raw))
    hist: deque[float] = deque(maxlen=k)
    prev = None
    for i, (r, rm) in enumerate(zip(raw, room)):
        if rm != prev:
            hist.clear()
            prev = rm
        if np.isfinite(r):
            hist.append(float(r))
        out[i] = np.mean(hist) if hist else np.nan
    return out


def online_checks(est: np.ndarray, cue: np.ndarray, room: np.ndarray | None = None,
                  per_room: tuple[int, int] | None = None) -> list[dict]:
    """The agent's switching checks on a stream of (smoothed estimate, stereo cue): every
    CHECK_EVERY frames once the window is full, roc_threshold on it. ``per_room=(size, positives)``:
    a window restarted in each room (per-room recalibration), of that size."""
    size, pos = per_room or (WINDOW, POSITIVES)
    win, out, prev = RocWindow(TAU_GT, size, pos), [], None
    for i, (e, c) in enumerate(zip(est, cue)):
        if per_room is not None and room[i] != prev:
            win, prev = RocWindow(TAU_GT, size, pos), room[i]
        if np.isfinite(e):
            win.add(e, c)
        if (i + 1) % CHECK_EVERY == 0 and win.ready(size):
            tau, tpr, fpr = roc_threshold(*win.pairs(), TAU_GT, TPR_MIN)
            out.append({"i": i, "tau": tau, "tpr": tpr, "fpr": fpr, "met": bool(tpr > TPR_MIN and fpr < FPR_MAX)})
    return out


def summarise_checks(checks: list[dict], start: int) -> dict:
    late = [c for c in checks if c["i"] >= start]
    if not late:
        return {"checks": 0, "pass": float("nan"), "median_fpr": float("nan")}
    return {"checks": len(late), "pass": float(np.mean([c["met"] for c in late])),
            "median_fpr": float(np.median([c["fpr"] for c in late])), "median_tpr": float(np.median([c["tpr"] for c in late]))}


class OnlineModel:
    """An online regressor of the stereo cue on feature vectors: buffer of the last ``capacity``
    pairs, refit every ``refit_every``; ``kind`` ridge (standardised features) or knn (k = 5)."""

    def __init__(self, kind: str, capacity: int = 2000, refit_every: int = 200, alpha: float = 1.0, k: int = 5) -> None:
        if kind not in ("ridge", "knn"):
            raise ValueError(f"unknown online model {kind!r}; choose ridge or knn")
        self.kind, self.capacity, self.refit_every, self.alpha, self.k = kind, capacity, refit_every, alpha, k
        self.x: deque = deque(maxlen=capacity)
        self.y: deque = deque(maxlen=capacity)
        self.since, self.fitted = 0, None

    def add(self, x: np.ndarray, y: float) -> None:
        self.x.append(x)
        self.y.append(y)
        self.since += 1
        if self.since >= self.refit_every or (self.fitted is None and len(self.y) >= max(self.k, 50)):
            self.fit()

    def fit(self) -> None:
        X, y = np.array(self.x), np.array(self.y)
        mu, sd = X.mean(0), X.std(0) + 1e-6
        Z = (X - mu) / sd
        if self.kind == "ridge":
            A = Z.T @ Z + self.alpha * np.eye(Z.shape[1])
            w = np.linalg.solve(A, Z.T @ (y - y.mean()))
            self.fitted = (mu, sd, w, y.mean())
        else:
            self.fitted = (mu, sd, Z, y)
        self.since = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x)
        if self.fitted is None:
            return np.full(len(x), np.nan)
        if self.kind == "ridge":
            mu, sd, w, b = self.fitted
            return ((x - mu) / sd) @ w + b
        mu, sd, Z, y = self.fitted
        d = ((((x - mu) / sd)[:, None, :] - Z[None]) ** 2).sum(-1)
        idx = np.argpartition(d, self.k - 1, axis=1)[:, : self.k]
        return y[idx].mean(1)


def prequential(make: Callable[[], OnlineModel], X: np.ndarray, cue: np.ndarray, room: np.ndarray,
                per_room: bool = False, model: OnlineModel | None = None) -> tuple[np.ndarray, OnlineModel]:
    """Raw estimates, each before its frame is learned from; ``per_room``: a new model in each room."""
    model = model or make()
    raw, prev = np.empty(len(cue)), None
    for i in range(len(cue)):
        if per_room and room[i] != prev:
            model, prev = make(), room[i]
        raw[i] = model.predict(X[i])[0]
        model.add(X[i], float(cue[i]))
    return raw, model


class EstimatorModel:
    """The agent's own learners (``MonocularEstimator``: knn on textons, cnn with options) behind
    OnlineModel's interface, on images."""

    def __init__(self, learner: str, seed: int, **options: str) -> None:
        from selfgym.envs.drone.monocular import MonocularEstimator

        self.est = MonocularEstimator(learner, (48, 64), seed=seed, **options)

    def add(self, image: np.ndarray, y: float) -> None:
        self.est.add(self.est.inputs(image), y)

    def predict(self, image: np.ndarray) -> np.ndarray:
        return np.array([self.est.predict(self.est.inputs(image))])


def stream(model, inputs: np.ndarray, cue: np.ndarray, learn: bool = True) -> np.ndarray:
    """Raw estimates in flight order, each before its frame is learned from (``learn``)."""
    raw = np.empty(len(inputs))
    check = inputs.dtype.kind == "f"
    for i in range(len(inputs)):
        if check and not np.isfinite(inputs[i]).all():  # nothing to say here (looming after a turn)
            raw[i] = np.nan
            continue
        raw[i] = model.predict(inputs[i])[0]
        if learn:
            model.add(inputs[i], float(cue[i]))
    return raw


def cue_scores(name: str, train: dict, test: dict, seed: int) -> dict[str, np.ndarray]:
    """Raw scores of one cue: prequential on the training flight, then on held-out rooms both
    learning on (online) and frozen after training (zero-shot)."""
    if name == "oracle_true_disparity":  # perfect monocular depth: the ceiling any cue can reach against stereo labels
        return {"train": train["gt"].astype(float), "test_online": test["gt"].astype(float), "test_frozen": test["gt"].astype(float)}
    if name == "neg_mean_gradient":  # unlearned: a near surface shows magnified, smoother texture
        f = [-features(d["images"])[0][:, 0] for d in (train, test)]
        return {"train": f[0], "test_online": f[1], "test_frozen": f[1]}
    if name.startswith("looming"):
        learner = name[len("looming"):]
        steps, learner = (HISTORY, learner[len("_multi"):]) if learner.startswith("_multi") else (1, learner)
        strips, learner = (1, learner[len("_global"):]) if learner.startswith("_global") else (STRIPS, learner)
        f = [looming_raw(d, steps, strips) for d in (train, test)]
        if not learner:  # unlearned: fb (s - 1) / moved on forward frames, NaN after a turn (smoothing holds the last)
            return {"train": f[0], "test_online": f[1], "test_frozen": hold_last(f[1], test["room"], np.nan)}
        # learned from stereo: _calib (ridge on looming alone), _<ridge|knn>_rich (+ feat_knn_rich's statistics)
        kind = "ridge" if learner == "_calib" else learner.split("_")[1]
        xs = [fd[:, None] if learner == "_calib" else np.column_stack([rich_features(d["images"]), hold_last(fd, d["room"])])
              for fd, d in zip(f, (train, test))]
        model = OnlineModel(kind)
        tr = stream(model, xs[0], train["cue"])
        frozen = stream(model, xs[1], test["cue"], learn=False)
        online = stream(model, xs[1], test["cue"])
        return {"train": tr, "test_online": online, "test_frozen": frozen}
    if name.startswith("feat_"):  # feat_<ridge|knn>[_rich]
        kind, *rich = name.split("_")[1:]
        xs = [rich_features(d["images"]) if rich else features(d["images"])[0] for d in (train, test)]
        model = OnlineModel(kind)
        tr = stream(model, xs[0], train["cue"])
        frozen = stream(model, xs[1], test["cue"], learn=False)
        online = stream(model, xs[1], test["cue"])
        return {"train": tr, "test_online": online, "test_frozen": hold_last(frozen, test["room"], np.nan)}
    learner, *opts = name.split(":")
    options = dict(o.split("=", 1) for o in opts)
    model = EstimatorModel(learner, seed, **options)
    tr = stream(model, train["images"], train["cue"])
    if learner in ("knn", "stats_knn"):  # freeze on the whole training buffer
        model.est.model.fit()
    frozen = stream(model, test["images"], test["cue"], learn=False)
    online = stream(model, test["images"], test["cue"])
    return {"train": tr, "test_online": online, "test_frozen": frozen}


UNLEARNED = ("oracle_true_disparity", "neg_mean_gradient", "looming", "looming_multi", "looming_global", "looming_multi_global")


def pooled_heldout(name: str, tests: list[dict], seeds: list[int]) -> dict:
    """Bar A for an unlearned cue on the held-out flights of all ``seeds`` run one after another (rooms
    renumbered): forward frames alone are too few in one 2,400-frame flight to fill the window's 60 positives."""
    base, fwd_only = base_cue(name)
    if base not in UNLEARNED:
        raise ValueError(f"pooled held-out checks take an unlearned cue ({', '.join(UNLEARNED)}), got {name!r}")
    parts, offset = [], 0
    for test, seed in zip(tests, seeds):
        flight = subset(test, forward_frames(test)) if fwd_only else test
        raw = cue_scores(base, flight, flight, seed)["train"]
        parts.append((raw, flight["cue"], flight["room"] + offset))
        offset += int(test["room"].max()) + 1
    raw, cue, room = (np.concatenate(x) for x in zip(*parts))
    est = smooth(raw, room)
    return {"cue": name, "seeds": seeds, **summarise_checks(online_checks(est, cue), 0), "auc": roc_auc(est, cue > TAU_GT),
            "positives": int((cue > TAU_GT).sum()), "frames": len(cue)}


def measure(scores: dict[str, np.ndarray], train: dict, test: dict) -> dict:
    """Bar A on the training flight (second half) and continued into held-out rooms; bar B."""
    half = len(train["cue"]) // 2
    est_tr = smooth(scores["train"], train["room"])
    est_on = smooth(scores["test_online"], test["room"])
    pos_tr, pos_te = train["cue"] > TAU_GT, test["cue"] > TAU_GT
    checks_tr = online_checks(est_tr, train["cue"])
    last = checks_tr[-1] if checks_tr else {"tau": float("nan"), "tpr": float("nan"), "fpr": float("nan")}
    frozen = scores["test_frozen"]
    tau_b, tpr_b, fpr_b = roc_threshold(frozen[np.isfinite(frozen)], test["cue"][np.isfinite(frozen)], TAU_GT, TPR_MIN)
    said = smooth(frozen, test["room"]) > last["tau"]  # no check on the training flight: no threshold (NaN below)
    transfer = (float(said[pos_te].mean()), float(said[~pos_te].mean())) if np.isfinite(last["tau"]) else (float("nan"),) * 2
    return {
        "A_train": {**summarise_checks(checks_tr, half), "auc_2nd_half": roc_auc(est_tr[half:], pos_tr[half:])},
        "A_train_per_room": summarise_checks(online_checks(est_tr, train["cue"], train["room"], (200, 20)), half),
        "A_heldout_online": {**summarise_checks(online_checks(est_on, test["cue"]), 0), "auc": roc_auc(est_on, pos_te)},
        "B_heldout_zero_shot": {"auc": roc_auc(frozen, pos_te), "oracle_threshold_tpr": tpr_b, "oracle_threshold_fpr": fpr_b,
                                "met": bool(tpr_b > TPR_MIN and fpr_b < FPR_MAX),
                                "train_threshold_tpr": transfer[0], "train_threshold_fpr": transfer[1]},
    }


CUES = ("oracle_true_disparity", "neg_mean_gradient", "feat_ridge", "feat_knn", "feat_knn_rich", "knn", "cnn",
        "cnn:arch=global:input_transform=gradient", "stats_knn",  # stats_knn: feat_knn_rich as the agent's learner
        "looming", "looming_calib", "looming_ridge_rich", "looming_knn_rich", "looming_multi", "looming_multi_calib",
        "looming_multi_knn_rich", "looming_global", "looming_multi_global")
HISTORY = 4  # looming_multi: forward steps back (recordings with drone_cue_frames.py --history 4)
SINGLE_CUES = ("oracle_true_disparity", "neg_mean_gradient", "feat_knn_rich", "knn")
FWD = "_fwd"  # a cue name ending in it: scored on forward frames only (the flight without the frames after a turn)


def base_cue(name: str) -> tuple[str, bool]:
    """(the cue, whether only forward frames count) for a name from CUES, optionally ending in FWD."""
    return (name[: -len(FWD)], True) if name.endswith(FWD) else (name, False)


def bar_a_only(name: str, flight: dict, seed: int) -> dict:
    """Bar A on one flight (the single-texture reference): prequential scores, second-half checks."""
    half = len(flight["cue"]) // 2
    if name == "oracle_true_disparity":
        raw = flight["gt"].astype(float)
    elif name == "neg_mean_gradient":
        raw = -features(flight["images"])[0][:, 0]
    elif name == "feat_knn_rich":
        raw = stream(OnlineModel("knn"), rich_features(flight["images"]), flight["cue"])
    elif name.startswith("looming"):
        raw = cue_scores(name, flight, subset(flight, np.arange(len(flight["cue"])) < 1), seed)["train"]
    else:
        raw = stream(EstimatorModel(name, seed), flight["images"], flight["cue"])
    est = smooth(raw, flight["room"])
    return {**summarise_checks(online_checks(est, flight["cue"]), half),
            "auc_2nd_half": roc_auc(est[half:], flight["cue"][half:] > TAU_GT)}


def _f(v: float, fmt: str = ".2f") -> str:
    return "n/a" if v is None or not np.isfinite(v) else format(v, fmt)


def report(record: dict) -> str:
    """The markdown table: per cue, per seed, both bars."""
    lines = ["| cue | seed | A: train rooms, checks passed (2nd half) | A: median TPR / FPR at checks | A: AUC | "
             "A per-room window (200/20) passed | A: held-out rooms, learning on, passed | B: held-out AUC | "
             "B: oracle-threshold TPR / FPR | B: training threshold -> held-out TPR / FPR |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for cue in record["cues"]:
        rows = [r for r in record["results"] if r["cue"] == cue]
        for r in rows:
            a, ar, ah, b = r["A_train"], r["A_train_per_room"], r["A_heldout_online"], r["B_heldout_zero_shot"]
            lines.append(f"| {cue} | {r['seed']} | {_f(a['pass'])} of {a['checks']} | {_f(a.get('median_tpr'))} / "
                         f"{_f(a['median_fpr'])} | {_f(a['auc_2nd_half'], '.3f')} | {_f(ar['pass'])} of {ar['checks']} | "
                         f"{_f(ah['pass'])} of {ah['checks']} | {_f(b['auc'], '.3f')} | {_f(b['oracle_threshold_tpr'])} / "
                         f"{_f(b['oracle_threshold_fpr'])} | {_f(b['train_threshold_tpr'])} / {_f(b['train_threshold_fpr'])} |")
        if rows:
            mean = lambda f: float(np.nanmean([f(r) for r in rows]))  # noqa: E731
            lines.append(f"| **{cue} mean** | {len(rows)} seeds | {_f(mean(lambda r: r['A_train']['pass']))}; "
                         f"seeds >= 0.5: {sum(r['A_train']['pass'] >= 0.5 for r in rows)} | | "
                         f"{_f(mean(lambda r: r['A_train']['auc_2nd_half']), '.3f')} | "
                         f"{_f(mean(lambda r: r['A_train_per_room']['pass']))} | {_f(mean(lambda r: r['A_heldout_online']['pass']))} | "
                         f"{_f(mean(lambda r: r['B_heldout_zero_shot']['auc']), '.3f')} | met in "
                         f"{sum(r['B_heldout_zero_shot']['met'] for r in rows)}/{len(rows)} | |")
    if record.get("single"):
        lines += ["", "Single-texture rooms (n_textures=1, the default job's setting), bar A only:", "",
                  "| cue | seed | checks passed (2nd half) | median TPR / FPR | AUC |", "| --- | --- | --- | --- | --- |"]
        for r in record["single"]:
            lines.append(f"| {r['cue']} | {r['seed']} | {_f(r['pass'])} of {r['checks']} | {_f(r.get('median_tpr'))} / "
                         f"{_f(r['median_fpr'])} | {_f(r['auc_2nd_half'], '.3f')} |")
    if record.get("pooled_heldout"):
        lines += ["", "Held-out flights of all seeds in a row (unlearned cues), bar A from the first check:", "",
                  "| cue | frames (positives) | checks passed | median TPR / FPR | AUC |", "| --- | --- | --- | --- | --- |"]
        for r in record["pooled_heldout"]:
            lines.append(f"| {r['cue']} | {r['frames']} ({r['positives']}) | {_f(r['pass'])} of {r['checks']} | "
                         f"{_f(r.get('median_tpr'))} / {_f(r['median_fpr'])} | {_f(r['auc'], '.3f')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4], help="none: the single-texture table only")
    ap.add_argument("--cues", nargs="+", default=list(CUES),
                    help=f"from {', '.join(CUES)}; a name ending in {FWD}: scored on forward frames only")
    ap.add_argument("--cnn-seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds the cnn cues run on (the costly ones)")
    ap.add_argument("--single-seeds", type=int, nargs="*", default=[0, 1, 2],
                    help="seeds of single-texture flights (single_seed<s>.npz) for the reference table")
    ap.add_argument("--single-cues", nargs="+", default=list(SINGLE_CUES),
                    help="cues of the single-texture table (cnn cues: costly)")
    ap.add_argument("--pooled-heldout", nargs="*", default=[],
                    help=f"unlearned cues ({', '.join(UNLEARNED)}, optionally + {FWD}) for bar A on the seeds' "
                         "held-out flights in a row")
    ap.add_argument("--exclude-texture", type=int, default=None,
                    help="keep only the training flight's rooms without this pool texture (e.g. 9, stripes_9)")
    ap.add_argument("--frames", default="/tmp/drone_frames")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "drone_cue_search"))
    args = ap.parse_args()
    bad = [c for c in args.cues + args.single_cues if base_cue(c)[0] not in CUES]
    if bad:
        ap.error(f"unknown cue(s) {bad}; choose from {', '.join(CUES)}")
    import torch

    torch.set_num_threads(1)
    frames, start, cpu0, load0 = Path(args.frames), time.time(), time.process_time(), os.getloadavg()
    results, single, generators, timing = [], [], set(), {}
    for seed in args.seeds:
        train, test = load(frames, "train", seed), load(frames, "test", seed)
        if not timing and any(c.startswith("looming") for c in args.cues):
            timing = time_looming(train)
            print(f"looming estimator: {timing}", flush=True)
        generators |= {int(d.get("texture_generator", 1)) for d in (train, test)}
        if args.exclude_texture is not None:
            train = without_texture(train, args.exclude_texture)
        for cue in args.cues:
            if cue.startswith("cnn") and seed not in args.cnn_seeds:
                continue
            c0 = time.process_time()
            name, fwd_only = base_cue(cue)
            tr, te = (subset(train, forward_frames(train)), subset(test, forward_frames(test))) if fwd_only else (train, test)
            r = {"cue": cue, "seed": seed, **measure(cue_scores(name, tr, te, seed), tr, te),
                 "cpu_s": time.process_time() - c0}
            results.append(r)
            print(f"seed {seed} {cue}: A pass {_f(r['A_train']['pass'])} (FPR {_f(r['A_train']['median_fpr'])}), "
                  f"A held-out {_f(r['A_heldout_online']['pass'])}, B AUC {_f(r['B_heldout_zero_shot']['auc'], '.3f')} "
                  f"({r['cpu_s']:.0f} CPU-s)", flush=True)
    pooled = []
    if args.pooled_heldout:
        tests = [load(frames, "test", seed) for seed in args.seeds]
        for cue in args.pooled_heldout:
            pooled.append(pooled_heldout(cue, tests, args.seeds))
            print(f"pooled held-out {cue}: A pass {_f(pooled[-1]['pass'])} of {pooled[-1]['checks']} "
                  f"(FPR {_f(pooled[-1]['median_fpr'])}), {pooled[-1]['positives']} positives", flush=True)
    for seed in args.single_seeds:
        flight = load(frames, "single", seed)
        for cue in args.single_cues:
            name, fwd_only = base_cue(cue)
            single.append({"cue": cue, "seed": seed,
                           **bar_a_only(name, subset(flight, forward_frames(flight)) if fwd_only else flight, seed)})
            print(f"single seed {seed} {cue}: A pass {_f(single[-1]['pass'])}", flush=True)
    record = {"benchmark": "drone_cue_search", "time": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args),
              "command": "python benchmarks/drone_cue_search.py " + " ".join(
                  f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                  for k, v in vars(args).items() if k != "out"),
              "wall_s": time.time() - start, "cpu_s": time.process_time() - cpu0, "loadavg_before": load0,
              "loadavg_after": os.getloadavg(), "texture_generator": sorted(generators), "looming_timing": timing,
              "cues": args.cues, "results": results, "single": single, "pooled_heldout": pooled}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out.with_suffix(".json"), json.dumps(record, indent=1))
    table = report(record)
    atomic_write(out.with_name(out.name + "_table.md"), table + "\n")
    print(table)


if __name__ == "__main__":
    main()
