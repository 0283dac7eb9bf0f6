"""Flight that is not timid (issue 18, item 4): distance per minute on the monocular cue against stereo-only flight.

For each seed, the main job's agent (``python train.py``'s default: persistent_ssl, training
wheels, knn, one texture family, the hyperparameters of hyperparams/persistent_ssl.yml) is
trained for ``--steps`` steps twice, with the decision threshold calibrated two ways:

* ``before``: ``calibrate_on=buffered, roc_positives=0``: the ROC window holds the frames put
  in the learner's buffer (after the switch: override frames only), the behaviour before;
* ``after``: ``calibrate_on=stereo, roc_positives=60``: every frame stereo
  sees, the last 400 clear and the last 60 obstacle frames kept apart.

Both switch by the paper's memoryless rule (``exit_patience=1``). Switching hysteresis
(``--arms after hysteresis hysteresis_k3``; see ``SwitchRule`` in agents/persistent_ssl.py), the
``after`` window with a looser way back to stereo:

* ``hysteresis``: back to stereo when a check's TPR < 0.9 or FPR > 0.5, or after 10 checks in a
  row (500 steps) failing the paper's rule;
* ``hysteresis_k3``: the same bounds, or after 3 failing checks in a row.

What is buffered while flying on the monocular cue (``--arms after mistakes all_frames``;
``buffer_on_mono`` in agents/persistent_ssl.py), the ``after`` arm otherwise:

* ``after`` (and the arms above): the override frames only (``overrides``);
* ``mistakes``: also the cue's false positives and false negatives against stereo (the
  authors' ``stereo_textons_active``);
* ``all_frames``: every frame stereo sees, as before the switch.

The ratio compares the distance per minute flown on the monocular cue (the env's
``distance_per_min_mono``, pooled over the time on it) with stereo-only's. Each trained agent then flies ``--episodes`` 60-s evaluation flights (as ``evaluate.py`` does:
predict, deterministic, no learning), and a stereo-only flier (``strategy=stereo_only``, which
never switches) flies the same rooms: episode ``e`` of seed ``s`` is a fresh env seeded
``s + 20000 + e``, so every arm sees the same room. The env's own episode metrics are
reported: distance per minute (true motion; a colliding step moves nowhere), collisions, the
monocular cue's FPR and TPR against the true disparity with the agent's threshold, time on the
monocular cue, overrides.

Goal (the issue): distance per minute on the monocular cue >= 80% of stereo-only's in the same
rooms, at no more collisions; and the evaluation FPR below the switching bound (0.4).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/drone_flight_distance.py [--seeds 0 1 2] [--steps 12000] [--episodes 3]
        [--arms before after] [--reuse JSON] [--append]

``--reuse JSON``: runs of that record whose settings are the same as now (the agent's
hyperparameters, a key the record lacks counting at the agent's default; steps, episodes, env)
are taken from it, not flown again (training is seeded: a rerun of one gives the same figures).
``--append``: the record is added to the existing JSON's ``appended`` list and its table to the
end of the md, which keep the earlier ones.
"""

from __future__ import annotations

import argparse
import inspect
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
from selfgym.compare import interval_estimates
from selfgym.config import load_hyperparams, parse_key_values
from selfgym.env_factory import make_vec_env
from selfgym.evaluation import rollout
from selfgym.runs import atomic_write

ENV_ID = "selfgym/DroneRoom-v0"
PAPER_SWITCH = {"exit_tpr_min": 0.95, "exit_fpr_max": 0.4, "exit_patience": 1}
HYSTERESIS = {"calibrate_on": "stereo", "roc_positives": 60, "exit_tpr_min": 0.9, "exit_fpr_max": 0.5}
OVERRIDES = {"buffer_on_mono": "overrides"}
AFTER = {"calibrate_on": "stereo", "roc_positives": 60, **PAPER_SWITCH}
# Each arm names its learner and side check: the job's yml moved to looming with swept_path 0.35 (part F of
# results/drone_looming_varied_protocol.md), and the arms below keep the meaning they were run with.
KNN = {"learner": "knn", "swept_path": 0.0}
ARMS = {"before": {**KNN, "calibrate_on": "buffered", "roc_positives": 0, **PAPER_SWITCH, **OVERRIDES},
        "after": {**KNN, **AFTER, **OVERRIDES},
        "hysteresis": {**KNN, **HYSTERESIS, "exit_patience": 10, **OVERRIDES},
        "hysteresis_k3": {**KNN, **HYSTERESIS, "exit_patience": 3, **OVERRIDES},
        "mistakes": {**KNN, **AFTER, "buffer_on_mono": "mistakes"},
        "all_frames": {**KNN, **AFTER, "buffer_on_mono": "all"},
        "after_stats_knn": {**AFTER, **OVERRIDES, "learner": "stats_knn", "swept_path": 0.0},  # results/drone_stats_knn_pilot.md
        "all_frames_stats_knn": {**AFTER, "buffer_on_mono": "all", "learner": "stats_knn", "swept_path": 0.0},
        "looming": {**AFTER, **OVERRIDES, "learner": "looming", "swept_path": 0.0},  # results/drone_looming_varied.md
        # and reading the whole view's looming for a surface beside the corridor, in the drone's path
        # (results/drone_looming_varied_protocol.md, part F; part D's looming_view also had turn_past_obstacle,
        # removed after it: see amendment 3)
        "looming_swept": {**AFTER, **OVERRIDES, "learner": "looming", "swept_path": 0.35}}
STEREO_ONLY = {**KNN, "strategy": "stereo_only"}  # the reference flier: its learner is fitted, never flown
EVAL_SEED_OFFSET = 20_000  # evaluate.py's
METRICS = ("distance_per_min", "distance_per_min_mono", "collisions", "flight_time", "mono_fpr", "mono_tpr", "mono_fraction",
           "training_wheel_overrides", "training_wheel_override_events")


class _Hooks:
    def on_step(self, num_timesteps: int) -> bool:
        return True


def default_job() -> tuple[dict[str, Any], dict[str, Any], int]:
    """(agent hyperparameters, env kwargs, training steps) of ``python train.py``'s default job."""
    hp = load_hyperparams("persistent_ssl", ENV_ID)
    env_kwargs = dict(hp.pop("env_kwargs", {}) or {})
    steps = int(hp.pop("n_timesteps"))
    for key in ("eval_freq", "eval_episodes"):
        hp.pop(key, None)
    return hp, env_kwargs, steps


def agent_defaults() -> dict[str, Any]:
    """The agent's keyword defaults: what a hyperparameter missing from a stored record was."""
    params = inspect.signature(PersistentSSLAgent.__init__).parameters.values()
    return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.default is not p.empty
            and p.name not in ("device", "seed", "logger", "reward_modules")}


def settings(hp: dict[str, Any], arm_settings: dict[str, Any], arm: str) -> dict[str, Any]:
    """The agent's effective hyperparameters for an arm."""
    # stereo-only never flies on the monocular cue: what it would buffer there is no setting of its flight
    extra = {**STEREO_ONLY, "buffer_on_mono": "overrides"} if arm == "stereo_only" else arm_settings
    return {**agent_defaults(), **hp, **extra}


def reusable(record: dict[str, Any], hp: dict[str, Any], env_kwargs: dict[str, Any], eval_kwargs: dict[str, Any],
             steps: int, episodes: int) -> dict[tuple[str, int], dict[str, Any]]:
    """(arm, seed) -> run, for the stored runs flown with the settings they would get now."""
    then = (record["steps"], record["episodes"], record["env_kwargs"], record.get("eval_env_kwargs", record["env_kwargs"]))
    if then != (steps, episodes, env_kwargs, eval_kwargs):
        return {}
    out = {}
    for run in record["runs"]:
        arm = run["arm"]
        if arm == "stereo_only" or arm in ARMS:
            now = settings(hp, ARMS.get(arm, {}), arm)
            then = settings(record["hyperparameters"], record["arms"].get(arm, {}), arm)
            if now == then:
                out[(arm, run["seed"])] = {**run, "reused_from": record["time"]}
    return out


def fly(agent_for: Any, seed: int, episodes: int, env_kwargs: dict[str, Any]) -> list[dict[str, float]]:
    """One evaluation flight per room (env seeded seed + 20000 + e); ``agent_for(venv)`` gives the pilot."""
    out = []
    for e in range(episodes):
        venv = make_vec_env(ENV_ID, 1, seed + EVAL_SEED_OFFSET + e, env_kwargs)
        try:
            record = rollout(agent_for(venv), venv, 1, deterministic=True)[0]
        finally:
            venv.close()
        out.append({k: record["metrics"][k] for k in METRICS if k in record["metrics"]})
    return out


def train(arm: str, seed: int, steps: int, hp: dict[str, Any], env_kwargs: dict[str, Any]) -> tuple[dict, dict]:
    """Train one arm; (its state, what its training says about the threshold)."""
    venv = make_vec_env(ENV_ID, 1, seed, env_kwargs)
    agent = PersistentSSLAgent(venv, device="cpu", seed=seed, **{**hp, **ARMS[arm]})
    checks: list[tuple[bool, float]] = []  # (cue flown up to the check, the check's window FPR)
    check = agent._update_switch

    def traced_check() -> None:
        flown = agent.on_mono
        check()
        checks.append((flown, agent.fpr))

    agent._update_switch = traced_check  # type: ignore[method-assign]
    start, cpu = time.time(), time.process_time()
    agent.learn(steps, _Hooks())
    info = {"wall_s": time.time() - start, "cpu_s": time.process_time() - cpu, "switches": len(agent.switch_steps),
            "switch_steps": list(agent.switch_steps), **fpr_drift(checks),
            "first_switch": agent.switch_steps[0] if agent.switch_steps else None, "on_mono_at_end": agent.on_mono,
            "tau_est": agent.tau_est, "window_tpr": agent.tpr, "window_fpr": agent.fpr}
    state = agent.state_dict()
    venv.close()
    return state, info


def fpr_drift(checks: list[tuple[bool, float]]) -> dict[str, float]:
    """Mean change of the window FPR from one switching check to the next, by the cue flown between them."""
    steps = [(mono, b - a) for (_, a), (mono, b) in zip(checks, checks[1:]) if np.isfinite(a) and np.isfinite(b)]
    by_cue = {cue: [d for mono, d in steps if mono == (cue == "mono")] for cue in ("mono", "stereo")}
    return {f"fpr_change_per_check_{cue}": float(np.mean(ds)) if ds else float("nan") for cue, ds in by_cue.items()}


def pooled(flights: list[dict[str, float]], key: str) -> float:
    return float(np.mean([f[key] for f in flights if key in f])) if any(key in f for f in flights) else float("nan")


def per_min(flights: list[dict[str, float]], key: str) -> float:
    minutes = sum(f["flight_time"] for f in flights) / 60.0
    return sum(f.get(key, 0.0) for f in flights) / minutes


def mono_distance_per_min(flights: list[dict[str, float]]) -> float:
    """Metres per minute over the time flown on the monocular cue (NaN: never flown on it)."""
    minutes = [f["flight_time"] * f.get("mono_fraction", 0.0) / 60.0 for f in flights]
    metres = sum(f.get("distance_per_min_mono", 0.0) * m for f, m in zip(flights, minutes))
    return metres / sum(minutes) if sum(minutes) > 0 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the job's n_timesteps)")
    ap.add_argument("--episodes", type=int, default=3, help="60-s evaluation flights per seed and arm")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "drone_flight_distance"))
    ap.add_argument("--arms", nargs="+", default=["before", "after"], choices=list(ARMS),
                    help="arms to train besides stereo-only (default: before after)")
    ap.add_argument("--reuse", default=None, metavar="JSON",
                    help="take the runs of this record flown with today's settings instead of flying them again")
    ap.add_argument("--append", action="store_true",
                    help="add to the existing JSON ('appended') and md instead of replacing them")
    ap.add_argument("--env-kwargs", nargs="+", default=[], metavar="KEY:VALUE",
                    help="rooms to train in, over the job's env_kwargs, e.g. n_textures:12 texture_split:train")
    ap.add_argument("--eval-env-kwargs", nargs="+", default=[], metavar="KEY:VALUE",
                    help="and to fly the evaluation flights in, over those, e.g. texture_split:test (held-out textures)")
    ap.add_argument("--from-json", nargs="+", default=None, metavar="JSON",
                    help="no flying: summarise the runs stored in these JSONs together (runs of other seeds, same settings)")
    args = ap.parse_args()
    if args.from_json:
        write(merge([json.loads(Path(path).read_text()) for path in args.from_json]), Path(args.out), args.append)
        return
    torch.set_num_threads(1)
    hp, env_kwargs, default_steps = default_job()
    env_kwargs = {**env_kwargs, **parse_key_values(args.env_kwargs, "--env-kwargs")}
    eval_kwargs = {**env_kwargs, **parse_key_values(args.eval_env_kwargs, "--eval-env-kwargs")}
    steps = args.steps or default_steps
    arms = {arm: ARMS[arm] for arm in args.arms}
    stored = reusable(json.loads(Path(args.reuse).read_text()), hp, env_kwargs, eval_kwargs, steps,
                      args.episodes) if args.reuse else {}
    load_before, cpu0 = os.getloadavg(), time.process_time()
    runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        if ("stereo_only", seed) in stored:
            runs.append(stored[("stereo_only", seed)])
        else:
            runs.append({"arm": "stereo_only", "seed": seed, "flights": fly(
                lambda venv: PersistentSSLAgent(venv, device="cpu", seed=seed, **{**hp, **STEREO_ONLY}),
                seed, args.episodes, eval_kwargs)})
        stereo = runs[-1]["flights"]
        for arm in arms:
            if (arm, seed) in stored:
                runs.append(stored[(arm, seed)])
                print(f"seed {seed} {arm}: reused from {args.reuse} ({stored[(arm, seed)]['reused_from']})", flush=True)
                continue
            state, info = train(arm, seed, steps, hp, env_kwargs)

            def pilot(venv: Any, arm: str = arm, state: dict = state) -> PersistentSSLAgent:
                agent = PersistentSSLAgent(venv, device="cpu", seed=seed, **{**hp, **ARMS[arm]})
                agent.load_state_dict(state)
                return agent

            flights = fly(pilot, seed, args.episodes, eval_kwargs)
            runs.append({"arm": arm, "seed": seed, "training": info, "flights": flights})
            ratio = mono_distance_per_min(flights) / per_min(stereo, "distance_per_min")
            print(f"seed {seed} {arm:7s}: {mono_distance_per_min(flights):5.1f} m/min on mono "
                  f"({ratio:.0%} of stereo-only {per_min(stereo, 'distance_per_min'):.1f}), collisions/min "
                  f"{per_min(flights, 'collisions'):.3f} (stereo {per_min(stereo, 'collisions'):.3f}), eval FPR "
                  f"{pooled(flights, 'mono_fpr'):.2f} TPR {pooled(flights, 'mono_tpr'):.2f}, mono {pooled(flights, 'mono_fraction'):.2f}, "
                  f"tau {info['tau_est']:.2f}, {info['switches']} switches, {info['cpu_s']:.0f} CPU-s", flush=True)
    summary = summarise(runs, args.seeds, list(arms))
    record = {"benchmark": "drone_flight_distance", "time": time.strftime("%Y-%m-%d %H:%M:%S"), "env": ENV_ID,
              "env_kwargs": env_kwargs, "eval_env_kwargs": eval_kwargs, "hyperparameters": hp, "arms": arms, "steps": steps, "episodes": args.episodes,
              "seeds": args.seeds, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
              "cpu_s": time.process_time() - cpu0, "summary": summary, "runs": runs,
              "commands": ["OMP_NUM_THREADS=1 nice -n 10 python benchmarks/drone_flight_distance.py --seeds "
                           f"{' '.join(map(str, args.seeds))} --steps {steps} --episodes {args.episodes} --arms {' '.join(arms)}"
                           + (f" --env-kwargs {' '.join(args.env_kwargs)}" if args.env_kwargs else "")
                           + (f" --eval-env-kwargs {' '.join(args.eval_env_kwargs)}" if args.eval_env_kwargs else "")
                           + (f" --reuse {args.reuse}" if args.reuse else "") + (" --append" if args.append else "")
                           + (f" --out {args.out}" if args.out != ap.get_default("out") else "")]}
    write(record, Path(args.out), args.append)


def merge(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from runs stored apart (other seeds, the same steps and episodes), summarised again."""
    first = records[0]
    for other in records[1:]:
        for key in ("steps", "episodes", "hyperparameters", "env_kwargs", "eval_env_kwargs", "arms"):
            if other.get(key) != first.get(key):
                raise ValueError(f"cannot merge runs with different {key}: {first[key]!r} and {other[key]!r}")
    seeds = [seed for r in records for seed in r["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"cannot merge runs that repeat a seed: {seeds}")
    merged = {**first, "seeds": seeds, "runs": [run for r in records for run in r["runs"]],
              "cpu_s": sum(r["cpu_s"] for r in records), "commands": [c for r in records for c in r["commands"]],
              "loadavg_before": max((r["loadavg_before"] for r in records), key=lambda load: load[0])}
    merged["summary"] = summarise(merged["runs"], seeds, list(first["arms"]))
    return merged


def write(record: dict[str, Any], out: Path, append: bool = False) -> None:
    """The record's JSON and md; ``append``: after the earlier ones in those files (kept)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    text = report(record)
    js, md = out.with_suffix(".json"), out.with_suffix(".md")
    stored, earlier = record, ""
    if append and js.exists():
        old = json.loads(js.read_text())
        stored = {**old, "appended": [*old.get("appended", []), record]}
        earlier = md.read_text().rstrip("\n") + "\n\n" if md.exists() else ""
    atomic_write(js, json.dumps(stored, indent=1, default=float))
    atomic_write(md, earlier + text)
    print(text)


def summarise(runs: list[dict[str, Any]], seeds: list[int], arms: list[str]) -> dict[str, Any]:
    """Per arm: pooled rates over all flights, the per-seed ratio to stereo-only with rliable's interval."""
    stereo = {r["seed"]: r["flights"] for r in runs if r["arm"] == "stereo_only"}
    out: dict[str, Any] = {}
    for arm in ("stereo_only", *arms):
        flights = [f for r in runs if r["arm"] == arm for f in r["flights"]]
        row = {"distance_per_min": per_min(flights, "distance_per_min"), "collisions": int(sum(f["collisions"] for f in flights)),
               "minutes": sum(f["flight_time"] for f in flights) / 60.0, "collisions_per_min": per_min(flights, "collisions"),
               "override_events_per_min": per_min(flights, "training_wheel_override_events")}
        if arm != "stereo_only":
            ratios = np.array([[mono_distance_per_min(r["flights"]) / per_min(stereo[r["seed"]], "distance_per_min")]
                               for r in runs if r["arm"] == arm])
            flown = ratios[np.isfinite(ratios[:, 0])]  # seeds whose agent flew on the monocular cue
            row.update(distance_per_min_mono=mono_distance_per_min(flights),mono_fpr=pooled(flights, "mono_fpr"), mono_tpr=pooled(flights, "mono_tpr"),
                       mono_fraction=pooled(flights, "mono_fraction"),
                       fpr_per_seed=[pooled(r["flights"], "mono_fpr") for r in runs if r["arm"] == arm],
                       ratio_per_seed=ratios[:, 0].tolist(), seeds_on_mono=len(flown),
                       switches_per_seed=[r["training"]["switches"] for r in runs if r["arm"] == arm],
                       ratio=interval_estimates(flown, reps=2000, seed=0) if len(flown) else None)
            row["goal_distance"] = bool(len(flown) == len(ratios) and row["ratio"]["mean"] >= 0.8)
            row["goal_collisions"] = bool(row["collisions"] <= out["stereo_only"]["collisions"])
            row["goal_fpr"] = bool(max(row["fpr_per_seed"]) < 0.4)
        out[arm] = row
    return out


def report(record: dict[str, Any]) -> str:
    s = record["summary"]
    load = record["loadavg_before"][0]
    lines = [f"# DroneRoom: distance flown on the monocular cue against stereo-only ({record['time']})", "",
             *[f"`{command}`" for command in record["commands"]],
             *([f"then `python benchmarks/drone_flight_distance.py --from-json <those JSONs>` summarises them together"]
               if len(record["commands"]) > 1 else []), "",
             f"The main job's agent (persistent_ssl, training wheels, the job's hyperparameters and the arm's), "
             f"{record['steps']} training steps per seed and arm in rooms {record['env_kwargs']}, seeds {record['seeds']}; "
             f"each flies {record['episodes']} 60-s evaluation flights per seed in rooms "
             f"{record.get('eval_env_kwargs', record['env_kwargs'])} seeded seed + 20000 + e, the same rooms for every arm. "
             f"Load {load:.1f} at the start; "
             f"{record['cpu_s'] / 60:.1f} CPU-minutes (highest load at a start: the figure given).", "",
             "| arm | distance / min (m), all / on mono | on mono, of stereo-only: mean [95% CI] over seeds (per seed) | collisions (per min) | override events / min | eval FPR | eval TPR | time on mono | cue switches in training (per seed) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for arm in ("stereo_only", *record["arms"]):
        row = s[arm]
        cells = [arm, f"{row['distance_per_min']:.1f}" + ("" if arm == "stereo_only" else f" / {row['distance_per_min_mono']:.1f}")]
        if arm == "stereo_only":
            cells += ["1", f"{row['collisions']} in {row['minutes']:.0f} min ({row['collisions_per_min']:.3f})", "-", "-", "-", "0", "-"]
        else:
            r, per_seed = row["ratio"], ", ".join(f"{v:.2f}" for v in row["ratio_per_seed"])
            cells += [(f"{r['mean']:.2f} [{r['mean_ci'][0]:.2f}, {r['mean_ci'][1]:.2f}]" if r else "-")
                      + f" ({per_seed}; {row['seeds_on_mono']} of {len(row['ratio_per_seed'])} seeds on mono)",
                      f"{row['collisions']} in {row['minutes']:.0f} min ({row['collisions_per_min']:.3f})",
                      f"{row['override_events_per_min']:.2f}",
                      f"{row['mono_fpr']:.2f} ({', '.join(f'{v:.2f}' for v in row['fpr_per_seed'])})",
                      f"{row['mono_tpr']:.2f}", f"{row['mono_fraction']:.2f}",
                      ", ".join(str(n) for n in row.get("switches_per_seed", []))]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per seed: at the end of training the threshold, the window's TPR/FPR and the number of cue switches; "
              "then the evaluation's collisions (stereo-only's in the same rooms):", ""]
    stereo = {r["seed"]: r["flights"] for r in record["runs"] if r["arm"] == "stereo_only"}
    for r in record["runs"]:
        if "training" in r:
            t = r["training"]
            lines.append(f"- {r['arm']} seed {r['seed']}: tau_est {t['tau_est']:.2f} px, window TPR {t['window_tpr']:.2f} "
                         f"FPR {t['window_fpr']:.2f}, {t['switches']} switches (first at step {t['first_switch']}), "
                         + (f"window FPR change per check {t['fpr_change_per_check_mono']:+.4f} on mono, "
                            f"{t['fpr_change_per_check_stereo']:+.4f} on stereo, "
                            if "fpr_change_per_check_mono" in t else "") +
                         f"on mono at the end: {t['on_mono_at_end']}; collisions "
                         f"{int(sum(f['collisions'] for f in r['flights']))} "
                         f"({int(sum(f['collisions'] for f in stereo[r['seed']]))})"
                         + (f" (reused from the run of {r['reused_from']})" if "reused_from" in r else ""))
    lines += ["", "Goal (issue 18 item 4): distance on the monocular cue >= 80% of stereo-only (mean over seeds, every "
              "seed on the monocular cue) at no more collisions; evaluation FPR < 0.4 in every seed.", ""]
    for arm in record["arms"]:
        row = s[arm]
        mean = f"{row['ratio']['mean']:.0%}" if row["ratio"] else "-"
        seeds, on_mono = len(row["ratio_per_seed"]), row["seeds_on_mono"]
        where = (f"over all {seeds} seeds" if on_mono == seeds else
                 f"over the {on_mono} of {seeds} seeds whose agent ended training on the monocular cue; "
                 "the others failed the switching rule at its last check and flew on stereo")
        lines.append(f"- {arm}: distance {'met' if row['goal_distance'] else 'not met'} ({mean} {where}), collisions "
                     f"{'met' if row['goal_collisions'] else 'not met'} "
                     f"({row['collisions']} against {s['stereo_only']['collisions']}), FPR "
                     f"{'met' if row['goal_fpr'] else 'not met'} (max over seeds {max(row['fpr_per_seed']):.2f})")
    lines += ["", "Eval FPR/TPR: the monocular obstacle call (smoothed estimate > the agent's threshold) against the true "
              "disparity > 2.8 px, over every frame of the flight (the env's `mono_fpr`, `mono_tpr`). Collisions over "
              "so few minutes are a handful of events: read them as counts.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
