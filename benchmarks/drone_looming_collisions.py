"""Why does the looming flier collide more than stereo-only? (issue 18, a pilot diagnosis)

For each seed the looming agent (the ``looming`` arm of benchmarks/drone_flight_distance.py: the
main job's agent with ``learner=looming``) is trained in varied rooms (``n_textures=12
texture_split=train``); then it and a stereo-only flier fly ``--flights`` 60-s deterministic
predict flights in training-pool rooms seeded seed + 30000 + e (not the 20000+ evaluation rooms),
the same rooms for every flier. Every step is traced (pose, true clearance, the stereo cue and
strips, the looming estimate and its history, the action, the turn counter); for every collision
the last ``CONTEXT`` steps are kept, with the contact's bearing from the heading (inside the 30-degree
corridor, the 60-degree view, or beside it), whether a turn had just ended and what each cue said.
Near misses (a run of steps with true clearance under ``NEAR`` m that ends without a collision) are
counted too: far more frequent than collisions, a better-powered comparison.

Variants (``--variants``), each a set of the agent's hyperparameters over the trained state (predict
only, the same trained agent): see ``VARIANTS``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/drone_looming_collisions.py --seeds 0 1 --flights 10
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.agents.persistent_ssl import PersistentSSLAgent
from selfgym.env_factory import make_vec_env
from selfgym.runs import atomic_write

import drone_flight_distance as dfd  # noqa: E402  (benchmarks/ is the script's directory)

PILOT_SEED_OFFSET = 30_000
CONTEXT = 20  # steps kept before each collision
NEAR = 0.1  # m of true clearance (beyond the drone's radius): a near miss
NEAR_WIDE = 0.2  # and a wider one, for more events
HALF_FOV = math.radians(30.0)
VARIANTS: dict[str, dict[str, Any]] = {
    "looming": {},
    "stereo_only": {"strategy": "stereo_only"},
    "looming_turn8": {"extra_turn_steps": 8},
    "looming_k4": {"looming_steps": 4},
    "looming_k4_turn8": {"looming_steps": 4, "extra_turn_steps": 8},
    "looming_turn11": {"extra_turn_steps": 11},
    "looming_swept": {"swept_path": 0.3},  # turn_past_obstacle, of the earlier pilot rounds, was removed
    "looming_swept35": {"swept_path": 0.35},
    "looming_swept40": {"swept_path": 0.4},
}


def corridor_half(env: Any) -> float:
    """Half-angle of the stereo cue's corridor (the central ``cue_roi`` of the columns), radians."""
    return math.atan(env.cue_roi * math.tan(HALF_FOV))


def nearest_surface(env: Any, x: float, y: float) -> tuple[float, float, str]:
    """The nearest surface point to (x, y) and its kind (wall, pole, box)."""
    L = env.room_cfg.half_size
    best = (L - abs(x), (math.copysign(L, x), y), "wall")
    if L - abs(y) < best[0]:
        best = (L - abs(y), (x, math.copysign(L, y)), "wall")
    poles, boxes = env.room.layout.rows
    for cx, cy, r in poles:
        d = math.hypot(x - cx, y - cy)
        if d - r < best[0]:
            best = (d - r, (cx + (x - cx) * r / max(d, 1e-9), cy + (y - cy) * r / max(d, 1e-9)), "pole")
    for cx, cy, c, s, hx, hy in boxes:
        dx, dy = x - cx, y - cy
        lx, ly = c * dx + s * dy, -s * dx + c * dy
        px, py = min(max(lx, -hx), hx), min(max(ly, -hy), hy)
        d = math.hypot(lx - px, ly - py)
        if d < best[0]:
            best = (d, (cx + c * px - s * py, cy + s * px + c * py), "box")
    return best[1][0], best[1][1], best[2]


def bearing(x: float, y: float, yaw: float, px: float, py: float) -> float:
    """Bearing of (px, py) from the heading, radians in (-pi, pi]."""
    return (math.atan2(py - y, px - x) - yaw + math.pi) % (2 * math.pi) - math.pi


def swept_free(env: Any, x: float, y: float, yaw: float) -> float:
    """Free path ahead for the drone's body: the shortest ray along the heading from points across its width."""
    r = env.room_cfg.drone_radius
    return min(env.room.ray(x - off * math.sin(yaw), y + off * math.cos(yaw), yaw) for off in np.linspace(-r, r, 5))


def fly(agent: PersistentSSLAgent, seed: int, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """One 60-s deterministic predict flight, traced step by step."""
    venv = make_vec_env(dfd.ENV_ID, 1, seed, env_kwargs)
    agent.env = venv
    env = venv.envs[0].unwrapped
    obs = venv.reset()
    start = np.ones(1, bool)
    trace: list[dict[str, Any]] = []
    collisions, near, in_near, metres = [], {NEAR: 0, NEAR_WIDE: 0}, {NEAR: False, NEAR_WIDE: False}, 0.0
    half_corridor = corridor_half(env)
    turn_runs: list[int] = []  # lengths of the runs of turn steps: how far each turn went (9 degrees a step)
    run, since_turn = 0, 0
    near_events: list[dict[str, Any]] = []  # each entry into a wide near miss: where the surface was, when the last turn was
    try:
        while True:
            x, y, yaw = (float(v) for v in env.pose)
            ctrl = agent._controller(1, True) if not start[0] else None
            had_motion = bool(ctrl is not None and ctrl["moved"][0] > 0)
            action, _ = agent.predict(obs, episode_start=start, deterministic=True)
            ctrl = agent._controller(1, True)
            hist = ctrl["hist"][0]
            stereo = np.asarray(obs["stereo"][0], float)
            act = np.asarray(action).reshape(-1)
            turn = bool(act[0] < 0) if act.size == 2 else bool(act[0] == 1)
            px, py, kind = nearest_surface(env, x, y)
            row = {"x": x, "y": y, "yaw": yaw, "clearance": env.room.clearance(x, y) - env.room_cfg.drone_radius,
                   "swept_free": swept_free(env, x, y, yaw), "nearest_bearing_deg": math.degrees(bearing(x, y, yaw, px, py)),
                   "nearest_kind": kind, "cue": stereo[0], "strips": stereo[3:].round(2).tolist(),
                   "est": float(np.mean(hist)) if hist else float("nan"), "hist": len(hist), "had_motion": had_motion,
                   "tau": agent.tau_est, "hold": int(ctrl["hold"][0]), "turn": turn}
            obs, _, done, infos = venv.step(action)
            info = infos[0]
            start = np.asarray(done, bool).reshape(1)
            collided = bool(info["frame"]["collision"])
            row["collided"] = collided
            since_turn = 0 if turn else since_turn + 1
            if turn:
                run += 1
            elif run:
                turn_runs.append(run)
                run = 0
            trace.append(row)
            if collided:
                if agent.estimator.needs_motion:  # predict has no collision signal: the drone was put back elsewhere
                    agent._controller(1, True)["moved"][0] = 0.0
                nx, ny = x + env.max_speed * env.dt * math.cos(yaw), y + env.max_speed * env.dt * math.sin(yaw)
                cx, cy, ckind = nearest_surface(env, nx, ny)
                collisions.append(classify(trace[-CONTEXT:], math.degrees(bearing(x, y, yaw, cx, cy)), ckind,
                                           math.degrees(half_corridor), agent))
                in_near = {NEAR: False, NEAR_WIDE: False}
            else:
                metres += 0.0 if turn else env.max_speed * env.dt
                for bound in near:
                    close = float(info["gt"]["clearance"]) < bound
                    if bound == NEAR_WIDE and close and not in_near[bound]:
                        near_events.append({"bearing_deg": row["nearest_bearing_deg"], "steps_since_turn": since_turn,
                                            "turning": turn, "kind": row["nearest_kind"]})
                    near[bound] += int(close and not in_near[bound])
                    in_near[bound] = close
            if done[0]:
                return {"collisions": collisions, "near_misses": near[NEAR], "near_misses_wide": near[NEAR_WIDE], "metres": metres, "turn_runs": turn_runs, "near_events": near_events,
                        "minutes": len(trace) * env.dt / 60.0, "steps": len(trace),
                        "mono_fraction": float(info.get("mono_fraction", float("nan")))}
    finally:
        venv.close()


def classify(context: list[dict[str, Any]], contact_deg: float, kind: str, corridor_deg: float,
             agent: PersistentSSLAgent) -> dict[str, Any]:
    """A collision's circumstances from the steps before it (the last is the colliding step)."""
    last = context[-1]
    since_turn = next((i for i, r in enumerate(reversed(context)) if r["turn"]), len(context))
    where = ("corridor" if abs(contact_deg) <= corridor_deg else "view" if abs(contact_deg) <= 30.0 else "beside")
    stereo_saw = [r["cue"] > agent.tau_gt or max(r["strips"]) > agent.tau_stop for r in context[-5:]]
    strips_over = [max(r["strips"]) for r in context[-5:]]
    return {"contact_bearing_deg": contact_deg, "contact_kind": kind, "contact_where": where,
            "steps_since_turn": since_turn, "just_after_turn": since_turn <= 3,
            "est_nan_at_hit": not math.isfinite(last["est"]), "hist_at_hit": last["hist"],
            "stereo_call_last5": int(sum(stereo_saw)), "max_strip_last5": float(max(strips_over)),
            "cue_last5": [round(r["cue"], 2) for r in context[-5:]],
            "est_last5": [round(r["est"], 2) if math.isfinite(r["est"]) else None for r in context[-5:]],
            "swept_free_last5": [round(r["swept_free"], 2) for r in context[-5:]],
            "clearance_last5": [round(r["clearance"], 2) for r in context[-5:]],
            "context": context}


def cause(c: dict[str, Any]) -> str:
    """One label per collision: where the contact was and whether it came right after a turn."""
    return f"{c['contact_where']}{'_after_turn' if c['just_after_turn'] else ''}"


def pilot(state: dict[str, Any], hp: dict[str, Any], seed: int, variant: dict[str, Any], venv: Any) -> PersistentSSLAgent:
    agent = PersistentSSLAgent(venv, device="cpu", seed=seed, **{**hp, **dfd.ARMS["looming"], **variant})
    if variant.get("strategy") != "stereo_only":
        agent.load_state_dict(state)
    return agent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=12_000)
    ap.add_argument("--flights", type=int, default=10, help="60-s flights per seed and variant")
    ap.add_argument("--variants", nargs="+", default=["stereo_only", "looming"], choices=list(VARIANTS))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "drone_looming_collisions"))
    ap.add_argument("--from-json", default=None, metavar="JSON", help="no flying: print the table of a stored record")
    args = ap.parse_args()
    if args.from_json:
        stored = json.loads(Path(args.from_json).read_text())
        print("\n\n".join(table(r) for r in stored.get("rounds", [stored])))  # the results file keeps several runs
        return
    torch.set_num_threads(1)
    hp, env_kwargs, _ = dfd.default_job()
    env_kwargs = {**env_kwargs, "n_textures": 12, "texture_split": "train"}
    load, cpu0 = os.getloadavg(), time.process_time()
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    for seed in args.seeds:
        state, info = dfd.train("looming", seed, args.steps, hp, env_kwargs)
        print(f"seed {seed}: trained ({info['cpu_s']:.0f} CPU-s), on mono {info['on_mono_at_end']}, tau {info['tau_est']:.2f}",
              flush=True)
        for name in args.variants:
            for e in range(args.flights):
                room = seed + PILOT_SEED_OFFSET + e
                probe = make_vec_env(dfd.ENV_ID, 1, room, env_kwargs)
                agent = pilot(state, hp, seed, VARIANTS[name], probe)
                probe.close()
                flight = fly(agent, room, env_kwargs)
                flight.update(seed=seed, room=room, on_mono_at_end=bool(info["on_mono_at_end"]))
                results[name].append(flight)
            fl = results[name][-args.flights:]
            print(f"  {name:18s} collisions {sum(len(f['collisions']) for f in fl):3d} near {sum(f['near_misses'] for f in fl):3d} / {sum(f['near_misses_wide'] for f in fl):3d} "
                  f"metres {sum(f['metres'] for f in fl):6.1f}", flush=True)
    record = {"benchmark": "drone_looming_collisions", "time": time.strftime("%Y-%m-%d %H:%M:%S"), "seeds": args.seeds,
              "steps": args.steps, "flights_per_seed": args.flights, "env_kwargs": env_kwargs, "variants": {v: VARIANTS[v] for v in args.variants},
              "loadavg_before": load, "cpu_s": time.process_time() - cpu0, "near_miss_m": NEAR,
              "command": f"OMP_NUM_THREADS=1 nice -n 10 python benchmarks/drone_looming_collisions.py --seeds "
                         f"{' '.join(map(str, args.seeds))} --steps {args.steps} --flights {args.flights} --variants {' '.join(args.variants)}",
              "summary": {v: summarise(fl) for v, fl in results.items()}, "flights": results}
    out = Path(args.out)  # one run's record (benchmarks/results/drone_looming_collisions.json keeps the pilot's rounds)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out.with_suffix(".json"), json.dumps(record, indent=1, default=float))
    print(table(record))


def table(record: dict[str, Any]) -> str:
    """The record's summary as a markdown table, one row per variant (all its seeds' flights pooled)."""
    lines = [f"`{record['command']}` ({record['time']}, load {record['loadavg_before'][0]:.1f}, "
             f"{record['cpu_s'] / 60:.1f} CPU-min): seeds {record['seeds']}, {record.get('flights_per_seed', 10)} flights of 60 s per seed "
             "and variant in rooms seed + 30000 + e", "",
             "| variant | minutes | m/min | collisions (/min) | near misses < 0.1 m (/min) | < 0.2 m (/min) | turns, mean steps | collision causes | near misses < 0.2 m by where |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, s in record["summary"].items():
        m = s["minutes"]
        lines.append(f"| {name} | {m:.0f} | {s['metres_per_min']:.1f} | {s['collisions']} ({s['collisions'] / m:.3f}) | "
                     f"{s['near_misses']} ({s['near_misses'] / m:.2f}) | {s['near_misses_wide']} ({s['near_misses_wide'] / m:.2f}) | "
                     f"{s.get('turns', '-')}, {s.get('mean_turn_steps', float('nan')):.1f} | "
                     f"{', '.join(f'{k} {v}' for k, v in sorted(s['by_cause'].items())) or '-'} | "
                     f"{', '.join(f'{k} {v}' for k, v in s.get('near_wide_by_side', {}).items()) or '-'} |")
    return "\n".join(lines)


def near_sides(flights: list[dict[str, Any]]) -> dict[str, int]:
    """Wide near misses by where the nearest surface was when the drone came within ``NEAR_WIDE``
    (in the corridor, in the view, beside it) and whether a turn had ended in the 3 steps before."""
    out: dict[str, int] = {}
    for f in flights:
        for ev in f.get("near_events", []):
            b = abs(ev["bearing_deg"])
            key = ("corridor" if b <= 16.1 else "view" if b <= 30 else "beside") + ("_turning" if ev["turning"] else
                                                                                     "_after_turn" if ev["steps_since_turn"] <= 3 else "")
            out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def summarise(flights: list[dict[str, Any]]) -> dict[str, Any]:
    minutes, metres = sum(f["minutes"] for f in flights), sum(f["metres"] for f in flights)
    hits = [c for f in flights for c in f["collisions"]]
    by_cause: dict[str, int] = {}
    for c in hits:
        by_cause[cause(c)] = by_cause.get(cause(c), 0) + 1
    return {"flights": len(flights), "minutes": minutes, "metres": metres, "metres_per_min": metres / minutes,
            "collisions": len(hits), "near_misses": sum(f["near_misses"] for f in flights),
            "near_misses_wide": sum(f["near_misses_wide"] for f in flights),
            "collisions_per_min": len(hits) / minutes, "near_misses_per_min": sum(f["near_misses"] for f in flights) / minutes,
            "by_cause": by_cause, "near_wide_by_side": near_sides(flights),
            "turns": sum(len(f.get("turn_runs", [])) for f in flights),
            "mean_turn_steps": float(np.mean([r for f in flights for r in f.get("turn_runs", [])] or [float("nan")])),
            "stereo_called_in_last5": sum(c["stereo_call_last5"] > 0 for c in hits),
            "est_nan_at_hit": sum(c["est_nan_at_hit"] for c in hits)}


if __name__ == "__main__":
    main()
