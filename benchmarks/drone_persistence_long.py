"""Long-run persistence on DroneRoom: does the monocular cue take over as the drone keeps learning?

Each run flies ``--steps`` steps (one env, 10 Hz, 60 s episodes) with persistent_ssl's
hyperparameters from hyperparams/persistent_ssl.yml, learning online throughout. Every
``--window`` steps the agent's flight log (``agents/persistent_ssl_log.py``) gives overrides per
minute (per frame and per event), collisions per minute, time on the monocular cue and the
monocular error; those rows, per run, are the data. Arms: ``training_wheels`` (the claim)
and ``stereo_only`` (the collision reference). The protocol, hypotheses and decision rules
are pre-registered in results/drone_persistence_long_protocol.md.

    python benchmarks/drone_persistence_long.py [--seeds 0 1 2] [--steps 50000] [--learner looming] [--params swept_path:0]
        [--env-kwargs texture_split=train] [--out results/drone_persistence_long]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.agents.persistent_ssl import PersistentSSLAgent
from selfgym.config import load_hyperparams, parse_key_values
from selfgym.envs.drone.monocular import MOTION_LEARNERS
from selfgym.env_factory import make_vec_env
from selfgym.runs import atomic_write

ENV_ID = "selfgym/DroneRoom-v0"
ARMS = ("training_wheels", "stereo_only")
COLUMNS = ("flight_min", "overrides_per_min", "override_events_per_min", "override_events_blind_per_min",
           "collisions_per_min", "mono_time", "mono_error_px")


class RowLogger:
    """The two calls the agent makes of SB3's logger, kept as rows in memory."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self._row: dict[str, float] = {}

    def record(self, key: str, value: Any) -> None:
        self._row[key] = float(value)

    def dump(self, step: int = 0) -> None:
        self.rows.append({"steps": float(step), **self._row})
        self._row = {}


class _Hooks:
    def on_step(self, num_timesteps: int) -> bool:
        return True


def run(strategy: str, seed: int, steps: int, learner: str | None, window: int, env_overrides: dict,
        params: dict | None = None) -> dict:
    hp = load_hyperparams("persistent_ssl", ENV_ID)
    env_kwargs = {**(hp.pop("env_kwargs", {}) or {}), **env_overrides}
    for key in ("n_timesteps", "eval_freq", "eval_episodes"):
        hp.pop(key, None)
    if learner is not None:
        hp["learner"] = learner
        if learner not in MOTION_LEARNERS:  # the yml's side check reads looming: an image learner flies without it
            hp["swept_path"] = 0.0
    hp.update(params or {})
    hp.update(strategy=strategy, log_interval=window)
    venv = make_vec_env(ENV_ID, 1, seed, env_kwargs)
    logger = RowLogger()
    agent = PersistentSSLAgent(venv, device="cpu", seed=seed, logger=logger, **hp)
    start, cpu = time.time(), time.process_time()
    agent.learn(steps, _Hooks())
    wall, cpu = time.time() - start, time.process_time() - cpu
    venv.close()
    rows = [{c: r.get(f"persistence/{c}", float("nan")) for c in COLUMNS} | {"steps": r["steps"], "on_mono": r.get("ssl/on_mono")}
            for r in logger.rows]
    return {"strategy": strategy, "seed": seed, "steps": steps, "learner": hp["learner"], "env_kwargs": env_kwargs,
            "swept_path": hp.get("swept_path", 0.0),
            "wall_s": wall, "cpu_s": cpu, "steps_per_s": steps / wall, "switch_steps": agent.switch_steps,
            "total_override_frames": agent.total_overrides, "total_override_events": agent.total_override_events,
            "rows": rows}


def seen_events(row: dict) -> float:
    """Override events per minute that began on a frame the monocular cue saw (all but the blind ones);
    NaN for a row without the blind column (records from before the split, amendment 5)."""
    return row["override_events_per_min"] - row.get("override_events_blind_per_min", float("nan"))


def _mean(rows: list[dict], key: str, lo: float, hi: float) -> float:
    vals = [r[key] for r in rows if lo <= r["flight_min"] < hi and np.isfinite(r[key])]
    return float(np.mean(vals)) if vals else float("nan")


def analyse(runs: list[dict], early_min: float, late_min: float) -> dict:
    """The pre-registered numbers: per training-wheels run, override events per minute in the first
    ``early_min`` minutes after its first switch against the last ``late_min`` minutes; the trend
    (Spearman rho of override events/min against flight time, windows after the first switch);
    collisions per minute of each arm over the whole run."""
    from scipy.stats import spearmanr

    out: dict[str, Any] = {"per_run": []}
    for r in runs:
        rows = r["rows"]
        total = rows[-1]["flight_min"] if rows else 0.0
        entry = {"strategy": r["strategy"], "seed": r["seed"],
                 "collisions_per_min": _mean(rows, "collisions_per_min", 0, 1e9),
                 "mono_time_last": _mean(rows, "mono_time", total - late_min, 1e9)}
        if r["strategy"] == "training_wheels" and r["switch_steps"]:
            first = r["switch_steps"][0] * 0.1 / 60  # 10 Hz, one env
            after = [x for x in rows if x["flight_min"] > first]
            entry["first_switch_min"] = first
            entry["events_early"] = _mean(rows, "override_events_per_min", first, first + early_min)
            entry["events_late"] = _mean(rows, "override_events_per_min", total - late_min, 1e9)
            entry["frames_early"] = _mean(rows, "overrides_per_min", first, first + early_min)
            entry["frames_late"] = _mean(rows, "overrides_per_min", total - late_min, 1e9)
            entry["events_rho"] = float(spearmanr([x["flight_min"] for x in after],
                                                  [x["override_events_per_min"] for x in after]).statistic) \
                if len(after) > 2 else float("nan")
            if all("override_events_blind_per_min" in x for x in rows):  # records from before the split lack it
                seen = [{"flight_min": x["flight_min"], "seen": seen_events(x)} for x in rows]
                seen_after = [x for x in seen if x["flight_min"] > first]
                entry["blind_share"] = (sum(x["override_events_blind_per_min"] for x in after)
                                        / max(sum(x["override_events_per_min"] for x in after), 1e-9))
                entry["seen_early"] = _mean(seen, "seen", first, first + early_min)
                entry["seen_late"] = _mean(seen, "seen", total - late_min, 1e9)
                entry["seen_rho"] = float(spearmanr([x["flight_min"] for x in seen_after],
                                                    [x["seen"] for x in seen_after]).statistic) \
                    if len(seen_after) > 2 else float("nan")
            entry["error_early"] = _mean(rows, "mono_error_px", first, first + early_min)
            entry["error_late"] = _mean(rows, "mono_error_px", total - late_min, 1e9)
        out["per_run"].append(entry)
    tw = [e for e in out["per_run"] if e["strategy"] == "training_wheels" and "events_early" in e]
    so = [e for e in out["per_run"] if e["strategy"] == "stereo_only"]
    if tw:
        early, late = np.mean([e["events_early"] for e in tw]), np.mean([e["events_late"] for e in tw])
        out["overrides_fall"] = {"events_early_mean": early, "events_late_mean": late, "ratio": late / early,
                                 "rho_negative_in": sum(e["events_rho"] < 0 for e in tw), "runs": len(tw),
                                 "holds": bool(late / early < 0.75 and sum(e["events_rho"] < 0 for e in tw) == len(tw))}
        if all("seen_early" in e for e in tw):  # secondary (amendment 5 of drone_looming_varied_protocol.md)
            s_early, s_late = np.mean([e["seen_early"] for e in tw]), np.mean([e["seen_late"] for e in tw])
            out["seen_overrides"] = {"blind_share_mean": float(np.mean([e["blind_share"] for e in tw])),
                                     "seen_early_mean": s_early, "seen_late_mean": s_late,
                                     "ratio": s_late / s_early if s_early else float("nan"),
                                     "rho_negative_in": sum(e["seen_rho"] < 0 for e in tw), "runs": len(tw)}
    if tw and so:
        c_tw = float(np.mean([e["collisions_per_min"] for e in out["per_run"] if e["strategy"] == "training_wheels"]))
        c_so = float(np.mean([e["collisions_per_min"] for e in so]))
        out["collisions_at_stereo_level"] = {"training_wheels": c_tw, "stereo_only": c_so,
                                             "holds": bool(c_tw <= 1.5 * c_so + 0.01),
                                             "counts": {arm: collision_count(runs, arm) for arm in ARMS}}
    return out


def collision_count(runs: list[dict], arm: str) -> dict[str, float]:
    """Collisions of an arm over all its runs, the flight minutes, and the exact Poisson 95% interval of the rate."""
    from scipy.stats import chi2

    count, minutes = 0.0, 0.0
    for r in runs:
        if r["strategy"] != arm:
            continue
        previous = 0.0
        for row in r["rows"]:
            count += row["collisions_per_min"] * (row["flight_min"] - previous)
            minutes, previous = minutes + row["flight_min"] - previous, row["flight_min"]
    k = int(round(count))
    lo = chi2.ppf(0.025, 2 * k) / 2 if k else 0.0
    hi = chi2.ppf(0.975, 2 * k + 2) / 2
    return {"collisions": k, "minutes": minutes, "rate_ci95_per_min": [lo / max(minutes, 1e-9), hi / max(minutes, 1e-9)]}


def draw(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("override_events_per_min", "override events / min"), ("overrides_per_min", "override frames / min"),
              ("collisions_per_min", "collisions / min"), ("mono_time", "time on monocular cue"),
              ("mono_error_px", "monocular error (px)"))
    if any("override_events_blind_per_min" in x for r in runs for x in r["rows"]):  # the events the cue saw
        panels = (panels[0], ("seen", "override events / min,\non frames the cue saw"), *panels[1:])

    def value(row: dict, key: str) -> float:
        return seen_events(row) if key == "seen" else row[key]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2 * len(panels)), dpi=100, sharex=True)
    colours = {"training_wheels": "C0", "stereo_only": "C1"}
    for ax, (key, label) in zip(axes, panels):
        for r in runs:
            xs = [x["flight_min"] for x in r["rows"]]
            ys = [value(x, key) for x in r["rows"]]
            ax.plot(xs, ys, color=colours.get(r["strategy"], "C2"), alpha=0.6, lw=1,
                    label=f"{r['strategy']} (seed {r['seed']})" if key == panels[0][0] else None)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    axes[-1].set_xlabel("simulated flight time (min)")
    axes[0].set_title("persistent SSL: one line per run, one point per window")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--learner", default=None, help="the monocular learner (default: the yml's)")
    ap.add_argument("--params", nargs="*", default=[], metavar="KEY:VALUE",
                    help="overrides of the yml's agent hyperparameters, as train.py's -params (e.g. swept_path:0)")
    ap.add_argument("--window", type=int, default=600, help="steps per log row (600 = one minute of flight)")
    ap.add_argument("--early-min", type=float, default=10.0)
    ap.add_argument("--late-min", type=float, default=10.0)
    ap.add_argument("--env-kwargs", nargs="*", default=[], help="key=value overrides of the yml's env_kwargs")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "drone_persistence_long"))
    ap.add_argument("--from-json", nargs="+", default=None, metavar="JSON",
                    help="no flying: analyse and draw the runs stored in these JSONs together (e.g. arms run side by side)")
    args = ap.parse_args()
    if args.from_json:
        records = [json.loads(Path(path).read_text()) for path in args.from_json]
        runs = [r for record in records for r in record["runs"]]
        record = {**records[0], "runs": runs, "merged_from": args.from_json, "args": vars(args),
                  "loadavg_before": max((r["loadavg_before"] for r in records), key=lambda load: load[0]),
                  "analysis": analyse(runs, args.early_min, args.late_min)}
        write(record, Path(args.out), runs)
        return
    torch.set_num_threads(1)
    overrides = {}
    for item in args.env_kwargs:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    params = parse_key_values(args.params, "--params")
    load_before = os.getloadavg()
    runs = []
    for seed in args.seeds:
        for arm in args.arms:
            r = run(arm, seed, args.steps, args.learner, args.window, overrides, params)
            runs.append(r)
            print(f"{arm:16s} seed {seed}: {r['steps_per_s']:.0f} steps/s, switches {r['switch_steps'][:3]}, "
                  f"override events {r['total_override_events']} / frames {r['total_override_frames']}", flush=True)
    record = {"benchmark": "drone_persistence_long", "time": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args),
              "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "runs": runs,
              "analysis": analyse(runs, args.early_min, args.late_min)}
    write(record, Path(args.out), runs)


def write(record: dict, out: Path, runs: list[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out.with_suffix(".json"), json.dumps(record, indent=1, default=float))
    draw(runs, out.with_suffix(".png"))
    print(json.dumps(record["analysis"], indent=1, default=float))


if __name__ == "__main__":
    main()
