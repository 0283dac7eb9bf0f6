"""PlayTable env steps/s (state and 84x84 pixels) vs panda-gym's PandaPush-v3, side by side.

panda-gym pins numpy<2, so it runs from its own venv (default /tmp/panda_venv; make it with
``python -m venv /tmp/panda_venv && /tmp/panda_venv/bin/pip install panda-gym``). Rounds
alternate ours / peer so both see the same machine load. Each env steps through random actions
from its own action space, drawn before the clock starts (the env is timed, not gymnasium's
``Box.sample``; ``--sample-in-loop`` draws them inside the timed loop, as runs 1-4 did). The
figure is the median over rounds of the per-round ratio (each round's pair ran back to back, under
the same load); on a loaded machine the CPU-time ratio is the steadier one. Results go to results/play_table_speed[_TAG].json / .md.

    OMP_NUM_THREADS=1 python benchmarks/play_table_speed.py [--rounds 3] [--tag NAME] [--panda-python PATH] [--merge-fixed-links]

``--merge-fixed-links`` also times the state env with its 9-link Panda (``merge_fixed_links=True``,
other trajectories, off by default) in every round, right after the default one, and reports its
median ratio too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
PEER_CODE = """
import time, gymnasium as gym, panda_gym
env = gym.make("PandaPush-v3"); env.reset(seed=0); env.action_space.seed(0)
n = {n}; acts = None if {in_loop} else [env.action_space.sample() for _ in range(n)]
t = time.perf_counter(); c = time.process_time()
for i in range(n):
    _, _, term, trunc, _ = env.step(env.action_space.sample() if acts is None else acts[i])
    if term or trunc: env.reset()
print(n / (time.perf_counter() - t), n / (time.process_time() - c))
"""


def ours(env_id: str, n: int, in_loop: bool = False, **kwargs) -> tuple[float, float]:
    """(steps per wall-clock second, steps per CPU second of this process). The random actions are
    drawn before the clock starts (the env's steps are timed, not gymnasium's Box.sample), or in
    the loop with ``in_loop`` (the protocol of runs 1-4)."""
    import gymnasium as gym

    import selfgym  # noqa: F401  (registers the selfgym/ ids)

    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    acts = None if in_loop else [env.action_space.sample() for _ in range(n)]
    t, c = time.perf_counter(), time.process_time()
    for i in range(n):
        _, _, term, trunc, _ = env.step(env.action_space.sample() if acts is None else acts[i])
        if term or trunc:
            env.reset()
    rate = (n / (time.perf_counter() - t), n / (time.process_time() - c))
    env.close()
    return rate


def peer(python: str, n: int, in_loop: bool = False) -> tuple[float, float] | None:
    try:
        code = PEER_CODE.format(n=n, in_loop=bool(in_loop))
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600)
        wall, cpu = out.stdout.strip().splitlines()[-1].split()
        return float(wall), float(cpu)
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as exc:
        print(f"panda-gym peer failed: {exc}", file=sys.stderr)
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--pixel-steps", type=int, default=300)
    ap.add_argument("--panda-python", default="/tmp/panda_venv/bin/python")
    ap.add_argument("--sample-in-loop", action="store_true",
                    help="draw each random action inside the timed loop (runs 1-4) instead of before it")
    ap.add_argument("--merge-fixed-links", action="store_true",
                    help="also time the state env with merge_fixed_links=True (the 9-link Panda)")
    ap.add_argument("--tag", default="", help="store as play_table_speed_TAG.json / .md (earlier runs are kept)")
    args = ap.parse_args()
    if args.tag and not args.tag.replace("_", "").replace("-", "").isalnum():
        ap.error(f"--tag must be letters, digits, '_' or '-', got {args.tag!r}")
    name = "play_table_speed" + (f"_{args.tag}" if args.tag else "")
    runs: dict[str, list[tuple[float, float]]] = {"playtable_state": [], "playtable_pixels84": [],
                                                  "playtable_pixels84_egl": [], "panda_push_v3": []}
    if args.merge_fixed_links:
        runs["playtable_state_merged"] = []
    load = [os.getloadavg()]
    for r in range(args.rounds):
        runs["playtable_state"].append(ours("selfgym/PlayTable-v0", args.steps, args.sample_in_loop))
        if args.merge_fixed_links:
            runs["playtable_state_merged"].append(ours("selfgym/PlayTable-v0", args.steps, args.sample_in_loop,
                                                       merge_fixed_links=True))
        p = peer(args.panda_python, args.steps, args.sample_in_loop)
        if p is not None:
            runs["panda_push_v3"].append(p)
        runs["playtable_pixels84"].append(ours("selfgym/PlayTablePixels-v0", args.pixel_steps, args.sample_in_loop))
        runs["playtable_pixels84_egl"].append(ours("selfgym/PlayTablePixels-v0", args.pixel_steps, args.sample_in_loop,
                                                   renderer="egl"))
        load.append(os.getloadavg())
        print(f"round {r} (wall, cpu steps/s): " + ", ".join(f"{k} {v[-1][0]:.0f}, {v[-1][1]:.0f}" for k, v in runs.items() if v), flush=True)
    best = {k: max(w for w, _ in v) for k, v in runs.items() if v}
    best_cpu = {k: max(c for _, c in v) for k, v in runs.items() if v}
    peer_ok = "panda_push_v3" in best
    ratio = best["playtable_state"] / best["panda_push_v3"] if peer_ok else None
    ratio_cpu = best_cpu["playtable_state"] / best_cpu["panda_push_v3"] if peer_ok else None
    per_round = [(s[0] / p[0], s[1] / p[1]) for s, p in zip(runs["playtable_state"], runs["panda_push_v3"])]
    median = (float(np.median([w for w, _ in per_round])), float(np.median([c for _, c in per_round]))) if per_round else None
    merged_per_round = [(s[0] / p[0], s[1] / p[1]) for s, p in zip(runs.get("playtable_state_merged", []), runs["panda_push_v3"])]
    merged_median = (float(np.median([w for w, _ in merged_per_round])),
                     float(np.median([c for _, c in merged_per_round]))) if merged_per_round else None
    result = {"ratio_per_round_wall_cpu": per_round, "ratio_median_wall_cpu": median,
              "merged_ratio_per_round_wall_cpu": merged_per_round, "merged_ratio_median_wall_cpu": merged_median, "steps_per_s_best": best, "steps_per_cpu_s_best": best_cpu, "runs_wall_cpu": runs,
              "command": " ".join(["python", *sys.argv]),
              "ratio_state_vs_panda_push": ratio, "ratio_state_vs_panda_push_cpu_time": ratio_cpu,
              "target_ratio": 4.0, "loadavg_1_5_15": load, "cpu_count": os.cpu_count(), "nice": os.nice(0),
              "python": platform.python_version(), "steps": args.steps, "pixel_steps": args.pixel_steps,
              "actions": "drawn in the timed loop" if args.sample_in_loop else "drawn before the clock starts",
              "notes": "random actions, single process, headless (DIRECT; TinyRenderer, or EGL where it loads: "
                       "on a machine without a GPU that is Mesa llvmpipe, i.e. software), resets included; "
                       "PlayTable 30 Hz control / 240 Hz physics, PandaPush 25 Hz / 500 Hz"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    rows = [f"| {k} | {v:.0f} | {best_cpu[k]:.0f} |" for k, v in best.items()]
    md = ["# PlayTable speed (env steps/s, best of rounds, side by side)", "",
          f"{args.steps} random-action steps per env and round ({args.pixel_steps} for pixels), {args.rounds} rounds, "
          f"actions {result['actions']}; resets included.", "",
          "| env | steps / wall s | steps / CPU s |", "|---|---|---|", *rows, "",
          f"ratio PlayTable state / PandaPush-v3, median of the side-by-side rounds: **{median[0]:.2f}x** wall, "
          f"**{median[1]:.2f}x** CPU time (target 4x); best-of-rounds: {ratio:.2f}x wall, {ratio_cpu:.2f}x CPU"
          if peer_ok and median else "peer not run",
          f"per round (wall, CPU): " + ", ".join(f"{w:.2f}x / {c:.2f}x" for w, c in per_round),
          *([f"with merge_fixed_links=True (the 9-link Panda, other trajectories, not the default): median "
             f"**{merged_median[0]:.2f}x** wall, **{merged_median[1]:.2f}x** CPU; per round: "
             + ", ".join(f"{w:.2f}x / {c:.2f}x" for w, c in merged_per_round)] if merged_median else []),
          f"load average (1, 5, 15 min) before the rounds and after each: " + "; ".join(
              ", ".join(f"{x:.2f}" for x in lo) for lo in load),
          f"command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} {result['command']}` at nice {result['nice']}", ""]
    (RESULTS / f"{name}.md").write_text("\n".join(md))
    print(json.dumps({"wall": best, "cpu": best_cpu}), "median ratio (wall, cpu)", median,
          *(["merged", merged_median] if merged_median else []))


if __name__ == "__main__":
    main()
