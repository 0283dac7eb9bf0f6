"""What learning from play on pixels costs on CPU (issue 15 item 7): renders, collection, training.

Measures, on this machine, one thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``):

* render: CPU ms per static-camera frame (TinyRenderer) at 48, 64 and 84 px, and one step of
  PlayTablePixelsGoal-v0 (physics + the frame) against one of PlayTableGoal-v0;
* collect: ``--minutes`` of play collected as a state log and as a 64 px pixel log from the same
  seed (the same play stream: checked), CPU and wall seconds, file sizes;
* train: gradient steps of play_gcbc and play_lmp, state vs pixels, at the state benchmark's
  sizes (benchmarks/play_lmp.py: hidden 128, window 32, batch 64 windows, 5 x 256 logistics), in
  windows per CPU second, on the logs just collected;
* estimate: a full pixel run at the state benchmark's budget (1 h of play, 10,000 gradient
  steps, 20 held-out cases per task from the start pose and perturbed) from those unit costs;
* pilot (``--pilot-steps N``, off by default): play_lmp on the pixel log for N steps, scored on
  ``--pilot-cases`` held-out cases per task from the start pose. A pilot this small claims nothing
  about what pixels can reach; it shows the path runs end to end.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/play_pixels.py [--minutes 1] [--train-steps 3]
        -> benchmarks/results/play_pixels_speed.{json,md}

CPU seconds are the figures to read: on a shared, starved machine wall time says more about the
neighbours than about the code (both are stored, with the load averages and the nice level).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfgym.runs import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = 64
STATE_BENCH = {"hidden": 128, "window": 32, "batch_size": 64, "n_mixtures": 5, "bins": 256}
FULL_RUN = {"play_hours": 1.0, "gradient_steps": 10_000, "cases_per_task": 20, "tasks": 18, "conditions": 2,
            "mean_case_steps": 150}  # an unsolved case runs all 150 steps; a pessimistic mean


class NoStop:
    def on_step(self, num_timesteps: int) -> bool:
        return True


def clock() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def since(start: tuple[float, float]) -> tuple[float, float]:
    cpu, wall = clock()
    return cpu - start[0], wall - start[1]


def measure_render(frames: int) -> dict[str, Any]:
    """CPU and wall ms per camera frame at three sizes, and env steps with and without a frame."""
    import gymnasium as gym

    import selfgym  # noqa: F401  (registers the ids)

    out: dict[str, Any] = {}
    env = gym.make("selfgym/PlayTableGoal-v0").unwrapped
    env.reset(seed=0)
    for size in (48, 64, 84):
        env.scene.camera_image(size)
        start = clock()
        for _ in range(frames):
            env.scene.camera_image(size)
        cpu, wall = since(start)
        out[f"frame_{size}px_ms"] = {"cpu": 1e3 * cpu / frames, "wall": 1e3 * wall / frames}
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (frames, 7)).astype(np.float32)
    for name, env_id in (("state_step_ms", "selfgym/PlayTableGoal-v0"), ("pixel_step_ms", "selfgym/PlayTablePixelsGoal-v0")):
        env = gym.make(env_id).unwrapped
        env.reset(seed=0)
        start = clock()
        for action in actions:
            env.step(action)
        cpu, wall = since(start)
        out[name] = {"cpu": 1e3 * cpu / frames, "wall": 1e3 * wall / frames}
        start = clock()
        env.reset(seed=1)
        cpu, wall = since(start)
        out[name.replace("step", "reset")] = {"cpu": 1e3 * cpu, "wall": 1e3 * wall}
        env.close()
    return out


def measure_collect(minutes: float, work: Path) -> dict[str, Any]:
    """A state log and a pixel log of the same play stream; their cost and size."""
    from selfgym.envs.play_table.collect import save_play
    from selfgym.envs.play_table.dataset import PlayDataset

    out: dict[str, Any] = {"minutes": minutes}
    hours = minutes / 60
    for name, pixels in (("state", None), ("pixels", SIZE)):
        path = work / f"play_{name}.npz"
        start = clock()
        meta = save_play(str(path), hours, seed=0, pixels=pixels)
        cpu, wall = since(start)
        out[name] = {"cpu_s": cpu, "wall_s": wall, "steps": meta["steps"], "bytes": path.stat().st_size,
                     "path": str(path), "layout": meta["obs_layout"]}
    state, pixel = PlayDataset(work / "play_state.npz"), PlayDataset(work / "play_pixels.npz")
    out["same_play_stream"] = bool(np.array_equal(state.obs[:, :pixel.obs.shape[1]], pixel.obs)
                                   and np.array_equal(state.scene_states, pixel.scene_states))
    return out


def measure_train(work: Path, steps: int) -> dict[str, Any]:
    """Windows per CPU second of one gradient step, state vs pixels, on the collected logs."""
    import gymnasium as gym

    import selfgym  # noqa: F401
    from selfgym import agents

    out: dict[str, Any] = {}
    spaces = {"state": gym.make("selfgym/PlayTableGoal-v0"), "pixels": gym.make("selfgym/PlayTablePixelsGoal-v0")}
    for agent_name in ("play_gcbc", "play_lmp"):
        for kind, env in spaces.items():
            params = {**STATE_BENCH, "dataset": str(work / f"play_{kind}.npz"), "suite_cases_per_task": 0,
                      "goal": "image" if kind == "pixels" else "observation", "replan_every": STATE_BENCH["window"]}
            agent = agents.make_agent(agent_name, env, params, device="cpu", seed=0)
            agent.learn(1, NoStop())  # warm-up: data load, normaliser, first allocations
            start = clock()
            agent.learn(1 + steps, NoStop())
            cpu, wall = since(start)
            out[f"{agent_name}_{kind}"] = {"steps": steps, "cpu_s_per_step": cpu / steps, "wall_s_per_step": wall / steps,
                                           "windows_per_cpu_s": STATE_BENCH["batch_size"] * steps / cpu,
                                           "windows_per_wall_s": STATE_BENCH["batch_size"] * steps / wall}
    for env in spaces.values():
        env.close()
    return out


def estimate(render: dict, collect: dict, train: dict) -> dict[str, Any]:
    """CPU hours of one full pixel run at the state benchmark's budget, from the unit costs."""
    steps_per_hour = 3600 * 30
    per_step_collect = collect["pixels"]["cpu_s"] / collect["pixels"]["steps"]
    eval_steps = FULL_RUN["cases_per_task"] * FULL_RUN["tasks"] * FULL_RUN["conditions"] * FULL_RUN["mean_case_steps"]
    out: dict[str, Any] = {"budget": FULL_RUN, "collect_1h_cpu_h": FULL_RUN["play_hours"] * steps_per_hour * per_step_collect / 3600}
    for agent_name in ("play_gcbc", "play_lmp"):
        train_s = FULL_RUN["gradient_steps"] * train[f"{agent_name}_pixels"]["cpu_s_per_step"]
        # each evaluation step: one pixel env step (physics + frame) and one CNN forward of one frame (small)
        eval_s = eval_steps * render["pixel_step_ms"]["cpu"] / 1e3
        state_s = FULL_RUN["gradient_steps"] * train[f"{agent_name}_state"]["cpu_s_per_step"]
        out[agent_name] = {"train_cpu_h": train_s / 3600, "evaluate_cpu_h_at_most": eval_s / 3600,
                           "run_cpu_h": (train_s + eval_s) / 3600, "state_train_cpu_h": state_s / 3600,
                           "pixel_over_state_train": train_s / state_s}
    return out


def pilot(work: Path, steps: int, cases: int) -> dict[str, Any]:
    """play_lmp on the pixel log for ``steps`` steps, scored on ``cases`` held-out cases per task."""
    import gymnasium as gym

    import selfgym  # noqa: F401
    from selfgym import agents

    env = gym.make("selfgym/PlayTablePixelsGoal-v0")
    params = {**STATE_BENCH, "dataset": str(work / "play_pixels.npz"), "goal": "image", "suite_cases_per_task": cases,
              "suite_perturbation": 0.0, "replan_every": STATE_BENCH["window"]}
    agent = agents.make_agent("play_lmp", env, params, device="cpu", seed=0)
    start = clock()
    agent.learn(steps, NoStop())
    train_cpu, _ = since(start)
    start = clock()
    suite = agent.evaluate_task_suite()
    eval_cpu, _ = since(start)
    env.close()
    return {"agent": "play_lmp", "gradient_steps": steps, "cases_per_task": cases, "train_cpu_s": train_cpu,
            "eval_cpu_s": eval_cpu, "mean_success": suite["results"]["start pose"]["mean"], "table": suite["table"]}


def write(result: dict[str, Any]) -> None:
    render, collect, train, est = result["render"], result["collect"], result["train"], result["estimate"]
    md = ["# Learning from play on pixels: CPU cost (issue 15 item 7)", "",
          f"Command: `{result['command']}` (nice {result['nice']}, one torch thread, {result['cpu_count']} cores "
          f"shared; load average {result['loadavg_start'][0]:.1f} at start, {result['loadavg_end'][0]:.1f} at end). "
          "CPU seconds are the figures to read; wall time on this starved machine is mostly the neighbours'.", "",
          "## Render (TinyRenderer, static camera)", "", "| what | CPU ms | wall ms |", "|---|---|---|"]
    md += [f"| {k} | {v['cpu']:.2f} | {v['wall']:.1f} |" for k, v in render.items()]
    md += ["", f"## Collection: {collect['minutes']:g} min of play, seed 0", "",
           "| log | steps | CPU s | wall s | MB (compressed) | layout |", "|---|---|---|---|---|---|"]
    for name in ("state", "pixels"):
        row = collect[name]
        md.append(f"| {name} | {row['steps']} | {row['cpu_s']:.1f} | {row['wall_s']:.0f} | {row['bytes'] / 1e6:.1f} | `{row['layout'][:40]}...` |")
    ten = 10 / collect["minutes"]
    md += ["", f"Same play stream in both logs (proprioception and scene states equal): {collect['same_play_stream']}. "
           f"10 min of pixel play: about {ten * collect['pixels']['cpu_s'] / 60:.1f} CPU min "
           f"(state: {ten * collect['state']['cpu_s'] / 60:.2f}).", "",
           "## Training throughput (state benchmark's sizes: hidden 128, window 32, batch 64)", "",
           "| agent | CPU s / step | windows / CPU s | windows / wall s |", "|---|---|---|---|"]
    md += [f"| {k} | {v['cpu_s_per_step']:.3f} | {v['windows_per_cpu_s']:.1f} | {v['windows_per_wall_s']:.1f} |"
           for k, v in train.items()]
    md += ["", "## A full pixel run at the state benchmark's budget (estimate, one core)", "",
           f"1 h of pixel play: {est['collect_1h_cpu_h']:.2f} CPU h (once, shared by the runs).", ""]
    for agent_name in ("play_gcbc", "play_lmp"):
        row = est[agent_name]
        md.append(f"- {agent_name}: training {row['train_cpu_h']:.1f} CPU h ({row['pixel_over_state_train']:.0f}x the "
                  f"state run's {row['state_train_cpu_h']:.2f}), evaluation's env steps (physics + frames, "
                  f"without the policy's forward) at most {row['evaluate_cpu_h_at_most']:.1f} CPU h")
    if result.get("pilot"):
        p = result["pilot"]
        md += ["", f"## Pilot (claims nothing: {p['gradient_steps']} gradient steps, {p['cases_per_task']} case(s) per task)", "",
               f"mean success {p['mean_success']:.3f}; training {p['train_cpu_s']:.0f} CPU s, evaluation {p['eval_cpu_s']:.0f} CPU s "
               f"(policy included; {p['cases_per_task'] * 18} cases of at most 150 steps)", "",
               "```", p["table"], "```"]
    md += ["", "GPU (not run here: no device was lent to this task):", "", "```",
           *result["gpu_commands"], "```", ""]
    atomic_write(RESULTS / "play_pixels_speed.md", "\n".join(md))
    atomic_write(RESULTS / "play_pixels_speed.json", json.dumps(result, indent=1))
    print("\n".join(md))


GPU_COMMANDS = [
    "python -m selfgym.envs.play_table.collect --hours 1 --out play_pixels64_1h.npz --pixels 64   # CPU: renders",
    "python train.py --env selfgym/PlayTablePixelsGoal-v0 --agent play_lmp --device cuda -n 10000 -params hidden:128",
    "python evaluate.py --run logs/play_lmp/selfgym-PlayTablePixelsGoal-v0_1   # 18-task table (renders: CPU)",
    "python benchmarks/gpu_check.py --device cuda --paths play_lmp_pixels play_lmp   # one step, timed",
]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=1.0, help="minutes of play to collect (state and pixels)")
    ap.add_argument("--frames", type=int, default=50, help="frames / env steps per render measurement")
    ap.add_argument("--train-steps", type=int, default=3, help="timed gradient steps per agent and observation")
    ap.add_argument("--pilot-steps", type=int, default=0, help="train a pixel play_lmp this many steps (0: no pilot)")
    ap.add_argument("--pilot-cases", type=int, default=1, help="held-out cases per task in the pilot")
    ap.add_argument("--workdir", default=None, help="where the logs go (default: a temporary folder)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="PlayTable without a task")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="play_pixels_"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"command": " ".join(["python", *sys.argv]), "nice": os.nice(0), "cpu_count": os.cpu_count(),
                              "python": platform.python_version(), "torch": torch.__version__,
                              "loadavg_start": os.getloadavg(), "image_size": SIZE, "sizes": STATE_BENCH}
    result["render"] = measure_render(args.frames)
    print(json.dumps(result["render"]), flush=True)
    result["collect"] = measure_collect(args.minutes, work)
    print(json.dumps(result["collect"]), flush=True)
    result["train"] = measure_train(work, args.train_steps)
    print(json.dumps(result["train"]), flush=True)
    result["estimate"] = estimate(result["render"], result["collect"], result["train"])
    result["loadavg_end"], result["gpu_commands"] = os.getloadavg(), GPU_COMMANDS
    write(result)  # the measurements are kept even if the pilot fails or is stopped
    if args.pilot_steps:
        result["pilot"] = pilot(work, args.pilot_steps, args.pilot_cases)
        result["loadavg_end"] = os.getloadavg()
        write(result)


if __name__ == "__main__":
    main()
