"""Monocular obstacle detection on held-out rooms: texton kNN against the learned encoders.

Per seed: a stereo-avoidance flight through rooms of the training texture split (textures
drawn from the whole training pool at every reset) yields (frame, stereo disparity) pairs;
each learner is fed them in flight order with its own online schedule, exactly as the agent
feeds it (kNN refit every 200 frames; the CNNs train every 20 frames). A second flight through
rooms of the held-out split (textures never seen in training) is the test set. Reported:

* ROC AUC of "obstacle ahead" (stereo cue > 2.8 px, the agent's notion) on held-out rooms, and for
  contrast on new rooms with the training textures;
* the switching rule on held-out rooms at the ROC rule's own threshold (the lowest FPR with
  TPR > 0.95): met iff FPR < 0.4;
* the same threshold chosen as the agent does, on the last 400 training frames scored before
  they were learned from (prequential), then applied to held-out rooms: TPR and FPR there.

    python benchmarks/drone_encoder_roc.py [--seeds 0 1 2] [--train-frames 3000] [--test-frames 1500]
        [--cnn-option arch=global input_transform=gradient --out benchmarks/results/drone_encoder_roc_<tag>]

``--cnn-option KEY=VALUE``: options of the ``cnn`` learner (CNNRegressor's arguments); the
flights, held-out rooms and rule are unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from selfgym.envs.drone.monocular import MonocularEstimator, roc_auc, roc_threshold
from selfgym.envs.drone.room_env import DroneRoomEnv
from selfgym.runs import atomic_write

TAU_GT, TAU_STOP, TPR_MIN, FPR_MAX, ROC_WINDOW = 2.8, 5.0, 0.95, 0.4, 400


def stereo_flight(split: str, seed: int, n: int, disparity_mode: str, flight_time: float) -> dict[str, np.ndarray]:
    """Frames with a valid stereo cue from the agent's stereo flight plan (forward; turn on an
    obstacle and 5 steps more), in rooms of ``split``; a new room every ``flight_time`` s."""
    env = DroneRoomEnv(texture_split=split, disparity_mode=disparity_mode, flight_time=flight_time)
    obs, info = env.reset(seed=seed)
    images, cues, truth, hold = [], [], [], 0
    while len(images) < n:
        cue, strips = float(obs["stereo"][0]), obs["stereo"][3:]
        if cue >= 0:
            images.append(obs["image"][:, :, 0].copy())
            cues.append(cue)
            truth.append(info["gt"]["disparity"])
        obstacle = cue < 0 or cue > TAU_GT or max(cue, float(strips.max())) > TAU_STOP
        hold = 5 if obstacle else max(hold - 1, 0)
        turn = obstacle or hold > 0
        obs, _, _, truncated, info = env.step(np.array([-1.0, 1.0] if turn else [1.0, 0.0], np.float32))
        if truncated:
            obs, info = env.reset()
    env.close()
    return {"images": np.array(images), "cue": np.array(cues, np.float32), "gt": np.array(truth, np.float32)}


def roc_curve(scores: np.ndarray, positive: np.ndarray, points: int = 60) -> list[list[float]]:
    cands = np.quantile(scores, np.linspace(0, 1, points))
    return [[float((scores[~positive] >= t).mean()), float((scores[positive] >= t).mean())] for t in cands]


def evaluate(learner: str, train: dict, test: dict, seed: int, seen: dict | None = None,
             options: dict[str, str] | None = None) -> dict:
    est = MonocularEstimator(learner, train["images"].shape[1:], seed=seed, **(options or {}))
    start = time.process_time()
    preq, preq_label = [], []
    for image, cue in zip(train["images"], train["cue"]):
        x = est.inputs(image)
        preq.append(est.predict(x))  # scored before it is learned from, as the agent's ROC
        preq_label.append(cue)
        est.add(x, float(cue))
    if learner == "knn":
        est.model.fit()  # the frames added since the last refit count too
    train_cpu = time.process_time() - start
    recent = np.array(preq[-ROC_WINDOW:]), np.array(preq_label[-ROC_WINDOW:])
    ok = np.isfinite(recent[0])
    tau_train, tpr_train, fpr_train = roc_threshold(recent[0][ok], recent[1][ok], TAU_GT, TPR_MIN)
    scores = np.array([est.predict(est.inputs(im)) for im in test["images"]], np.float64)
    positive = test["cue"] > TAU_GT
    tau_test, tpr_test, fpr_test = roc_threshold(scores, test["cue"], TAU_GT, TPR_MIN)
    said = scores > tau_train
    seen_auc = float("nan")
    if seen is not None:  # new rooms with the training textures: separates "not learnable" from "does not transfer"
        seen_scores = np.array([est.predict(est.inputs(im)) for im in seen["images"]], np.float64)
        seen_auc = roc_auc(seen_scores, seen["cue"] > TAU_GT)
    return {
        "learner": learner, "seed": seed, "train_cpu_s": train_cpu,
        "heldout_auc": roc_auc(scores, positive), "seen_textures_new_rooms_auc": seen_auc, "heldout_auc_vs_true_disparity": roc_auc(scores, test["gt"] > TAU_GT),
        "heldout_mae_px": float(np.mean(np.abs(scores - test["cue"]))),
        "heldout_rule": {"threshold": tau_test, "tpr": tpr_test, "fpr": fpr_test,
                         "met": bool(tpr_test > TPR_MIN and fpr_test < FPR_MAX)},
        "train_rule": {"threshold": tau_train, "tpr": tpr_train, "fpr": fpr_train,
                       "met": bool(tpr_train > TPR_MIN and fpr_train < FPR_MAX)},
        "heldout_at_train_threshold": {"tpr": float(said[positive].mean()), "fpr": float(said[~positive].mean())},
        "roc": roc_curve(scores, positive),
    }


def draw(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    colours = {}
    for r in results:
        c = colours.setdefault(r["learner"], f"C{len(colours)}")
        fpr, tpr = zip(*r["roc"])
        ax.plot(fpr, tpr, color=c, alpha=0.7, label=r["learner"] if r["seed"] == results[0]["seed"] else None)
    ax.axvline(FPR_MAX, color="grey", ls=":")
    ax.axhline(TPR_MIN, color="grey", ls=":")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set_xlabel("false positive rate (held-out rooms)")
    ax.set_ylabel("true positive rate")
    ax.set_title("obstacle ahead (stereo cue > 2.8 px), one line per seed")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--learners", nargs="+", default=["knn", "barlow", "cnn"])
    ap.add_argument("--train-frames", type=int, default=3000)
    ap.add_argument("--test-frames", type=int, default=1500)
    ap.add_argument("--flight-time", type=float, default=20.0, help="seconds per room (a new room at each reset)")
    ap.add_argument("--disparity-mode", default="sgbm")
    ap.add_argument("--cnn-option", nargs="*", default=[], metavar="KEY=VALUE",
                    help="options of the cnn learner, e.g. arch=global input_transform=gradient")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "drone_encoder_roc"))
    args = ap.parse_args()
    bad = [o for o in args.cnn_option if "=" not in o]
    if bad:
        ap.error(f"--cnn-option takes KEY=VALUE, got {bad}")
    cnn_options = dict(o.split("=", 1) for o in args.cnn_option)
    torch.set_num_threads(1)
    start, cpu_start, load_before = time.time(), time.process_time(), os.getloadavg()
    results = []
    for seed in args.seeds:
        train = stereo_flight("train", seed, args.train_frames, args.disparity_mode, args.flight_time)
        test = stereo_flight("test", 10_000 + seed, args.test_frames, args.disparity_mode, args.flight_time)
        seen = stereo_flight("train", 20_000 + seed, args.test_frames, args.disparity_mode, args.flight_time)
        for learner in args.learners:
            r = evaluate(learner, train, test, seed, seen, cnn_options if learner == "cnn" else None)
            r["heldout_positive_fraction"] = float((test["cue"] > TAU_GT).mean())
            results.append(r)
            h = r["heldout_rule"]
            print(f"seed {seed} {learner:7s} AUC {r['heldout_auc']:.3f}  rule on held-out: TPR {h['tpr']:.2f} "
                  f"FPR {h['fpr']:.2f} met={h['met']}  ({r['train_cpu_s']:.0f} CPU-s)", flush=True)
    record = {"benchmark": "drone_encoder_roc", "time": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args),
              "command": "python benchmarks/drone_encoder_roc.py " + " ".join(
                  f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                  for k, v in vars(args).items() if k != "out" and v != []),
              "wall_s": time.time() - start, "cpu_s": time.process_time() - cpu_start,
              "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "results": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out.with_suffix(".json"), json.dumps(record, indent=1))
    draw(results, out.with_suffix(".png"))
    lines = [f"# Obstacle detection on held-out rooms ({record['time']}, load {load_before[0]:.1f})", "",
             f"Command: `{record['command']}`; {record['wall_s']:.0f} s wall, {record['cpu_s']:.0f} CPU-s.", "",
             f"Training: {args.train_frames} frames of stereo flight in rooms of texture_split=train (9 of 12 textures, "
             f"drawn per surface at each reset, {args.flight_time:.0f} s per room); held-out: {args.test_frames} frames "
             "in rooms of texture_split=test (the 3 other textures); for contrast, as many frames in new rooms of the "
             "training textures (seen AUC). Positive: stereo cue > 2.8 px.", "",
             "| learner | seen-texture AUC | held-out AUC | rule on held-out: TPR / FPR (met?) | threshold from training frames: "
             "train TPR / FPR -> held-out TPR / FPR | held-out MAE px | train CPU-s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for learner in args.learners:
        rs = [r for r in results if r["learner"] == learner]
        for r in rs:
            h, t, a = r["heldout_rule"], r["train_rule"], r["heldout_at_train_threshold"]
            lines.append(f"| {learner} (seed {r['seed']}) | {r['seen_textures_new_rooms_auc']:.3f} | {r['heldout_auc']:.3f} | {h['tpr']:.2f} / {h['fpr']:.2f} "
                         f"({'met' if h['met'] else 'not met'}) | {t['tpr']:.2f} / {t['fpr']:.2f} -> {a['tpr']:.2f} / "
                         f"{a['fpr']:.2f} | {r['heldout_mae_px']:.2f} | {r['train_cpu_s']:.0f} |")
        aucs = [r["heldout_auc"] for r in rs]
        fprs = [r["heldout_rule"]["fpr"] for r in rs]
        seen_aucs = [r["seen_textures_new_rooms_auc"] for r in rs]
        lines.append(f"| **{learner} mean** | {np.mean(seen_aucs):.3f} | {np.mean(aucs):.3f} | FPR {np.mean(fprs):.2f}; met in "
                     f"{sum(r['heldout_rule']['met'] for r in rs)}/{len(rs)} seeds | | | |")
    lines += ["", f"ROC curves: {out.with_suffix('.png').name}."]
    atomic_write(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
