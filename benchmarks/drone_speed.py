"""DroneRoom steps/s side by side with gym-pybullet-drones' HoverAviary, headless, one env, one thread.

In one run, rounds alternate (the order flips every round) between: each DroneRoom
configuration (64 x 48 stereo pair, random actions), HoverAviary with its 64 x 48 RGB camera
(obs RGB, act ONE_D_RPM, ctrl_freq 48, pyb_freq 240; its camera renders every second control
step at 24 fps) in its own venv, and the two eye renders of DroneRoom's step alone (no
physics, no matching: the step's own floor). Figures are medians over rounds, so machine
load hits every contender alike; the load average is stored beside them.

gym-pybullet-drones is not on PyPI: its source is in ../shared/peers/gym-pybullet-drones. The
first run makes a venv for it (``--peer-venv``), installs its imports there (``setuptools<70``
for ``pkg_resources``, numpy, scipy, pybullet, gymnasium, pillow, transforms3d) and the peer
with ``--no-deps``, then drives ``drone_speed_peer.py`` in that venv through a pipe.

    python benchmarks/drone_speed.py [--steps 400] [--reps 7] [--egl] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

from selfgym.envs.drone.room_env import DroneRoomEnv
from selfgym.runs import atomic_write

HERE = Path(__file__).resolve().parent
PEER_SOURCE = HERE.parent.parent / "shared" / "peers" / "gym-pybullet-drones"
PEER_NAME = "gym-pybullet-drones HoverAviary, RGB 64x48 (obs RGB, act ONE_D_RPM, ctrl 48 Hz, pyb 240 Hz)"
PEER_REQUIREMENTS = ("setuptools<70", "numpy", "scipy", "pybullet", "gymnasium", "pillow", "transforms3d")
DEFAULT = "stereo_sgbm (default: both eyes rendered, SGBM)"
RENDER_ONLY = "render_only (the two eye renders of a step, no physics or matching)"
TARGET_VS_PEER, TARGET_VS_RENDER = 2.0, 1.3

CONFIGS = {
    "stereo_sgbm (default: both eyes rendered, SGBM)": dict(disparity_mode="sgbm"),
    "stereo_bm (both eyes rendered, StereoBM)": dict(disparity_mode="bm"),
    "stereo_sgbm_warp (right eye warped from left+depth, SGBM)": dict(disparity_mode="sgbm", right_eye="warp"),
    "fast_from_depth (left eye only, noisy depth disparity)": dict(disparity_mode="fast_from_depth"),
}


def measure_render(env: DroneRoomEnv, steps: int) -> float:
    """The two eye renders a default step makes (left with depth, right), per second, in the
    same room, turning a little each time: the step's floor, without physics or matching."""
    x, y, yaw = env.pose
    start = time.perf_counter()
    for i in range(steps):
        env.camera.render(env.client, x, y, env.z, yaw + 0.01 * i, env.renderer, "render")
    return steps / (time.perf_counter() - start)


def measure(env: DroneRoomEnv, steps: int, rng: np.random.Generator) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def peer_python(venv: Path, source: Path) -> Path:
    """The peer venv's python, made and filled on first use (network or a local index needed then)."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import pkg_resources, gym_pybullet_drones.envs.HoverAviary"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    if not (source / "gym_pybullet_drones").is_dir():
        raise FileNotFoundError(f"gym-pybullet-drones source not found at {source} (pass --peer-source or --no-peer)")
    print(f"Making the peer venv {venv} (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *PEER_REQUIREMENTS], check=True)
    subprocess.run([*pip, "--no-deps", str(source)], check=True)
    subprocess.run(check, check=True)
    return python


class Peer:
    """HoverAviary in its own venv, stepped on request through a pipe (drone_speed_peer.py)."""

    def __init__(self, python: Path) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH="")
        self.proc = subprocess.Popen([str(python), str(HERE / "drone_speed_peer.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                     cwd=tempfile.gettempdir())
        self.ready = self._line()
        if not self.ready.startswith("ready"):
            raise RuntimeError(f"peer worker did not start: {self.ready!r}")

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"peer worker exited (code {self.proc.wait()})")
        return line.strip()

    def measure(self, steps: int) -> float:
        self.proc.stdin.write(f"{steps}\n")
        self.proc.stdin.flush()
        return float(self._line())

    def close(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--egl", action="store_true", help="also measure renderer='egl' when the plugin loads")
    ap.add_argument("--no-peer", action="store_true", help="skip HoverAviary (no ratio to it is then reported)")
    ap.add_argument("--peer-source", default=str(PEER_SOURCE))
    ap.add_argument("--peer-venv", default=str(Path(os.environ.get("SELFGYM_CACHE") or
                                                    Path(tempfile.gettempdir()) / "selfgym_cache") / "venv-gym-pybullet-drones"))
    ap.add_argument("--out", default=str(HERE / "results" / "drone_speed"))
    args = ap.parse_args()
    cv2.setNumThreads(1)
    configs = dict(CONFIGS)
    if args.egl:
        configs["stereo_sgbm_egl (both eyes, EGL renderer)"] = dict(disparity_mode="sgbm", renderer="egl")
    envs, skipped = {}, {}
    for name, kw in configs.items():
        try:
            envs[name] = DroneRoomEnv(**kw)
            envs[name].reset(seed=0)
        except RuntimeError as exc:
            skipped[name] = str(exc)
    render_env = DroneRoomEnv()
    render_env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(20):
        render_env.reset()
    reset_ms = (time.perf_counter() - t0) / 20 * 1e3
    peer = None if args.no_peer else Peer(peer_python(Path(args.peer_venv), Path(args.peer_source)))
    rng = np.random.default_rng(0)
    contenders = {name: (lambda env=env: measure(env, args.steps, rng)) for name, env in envs.items()}
    contenders[RENDER_ONLY] = lambda: measure_render(render_env, args.steps)
    if peer is not None:
        contenders[PEER_NAME] = lambda: peer.measure(args.steps)
    for fn in contenders.values():  # warm-up
        fn()
    runs: dict[str, list[float]] = {n: [] for n in contenders}
    load_before = os.getloadavg()
    for rep in range(args.reps):
        order = list(contenders) if rep % 2 == 0 else list(contenders)[::-1]
        for name in order:
            runs[name].append(contenders[name]())
    load_after = os.getloadavg()
    if peer is not None:
        peer.close()
    med = {n: float(np.median(v)) for n, v in runs.items()}
    results = {n: {"median_steps_per_s": med[n], "best_steps_per_s": max(v), "runs": v} for n, v in runs.items()}
    # the ratios are per round (each round has every contender under the same load), then the median
    per_round_peer = ([a / b for a, b in zip(runs[DEFAULT], runs[PEER_NAME])] if peer is not None else [])
    per_round_render = [r / s for r, s in zip(runs[RENDER_ONLY], runs[DEFAULT])]
    ratios = {
        "default_vs_hover_aviary": float(np.median(per_round_peer)) if per_round_peer else None,
        "default_vs_hover_aviary_per_round": per_round_peer,
        "default_step_cost_vs_render_only": float(np.median(per_round_render)),
        "default_step_cost_vs_render_only_per_round": per_round_render,
        "targets": {"vs_hover_aviary_at_least": TARGET_VS_PEER, "step_cost_vs_render_only_at_most": TARGET_VS_RENDER},
    }
    record = {
        "benchmark": "drone_speed", "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": "python benchmarks/drone_speed.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "loadavg_before": load_before, "loadavg_after": load_after, "nice": os.nice(0),
        "image": "64x48 grey, 6 cm baseline, TinyRenderer (headless)", "steps_per_round": args.steps, "rounds": args.reps,
        "reset_ms": reset_ms, "peer": {"name": PEER_NAME, "measured": peer is not None,
                                       "worker": peer.ready if peer is not None else None},
        "results": results, "ratios": ratios, "skipped": skipped,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    history = []
    if out.with_suffix(".json").exists():
        history = json.loads(out.with_suffix(".json").read_text()).get("history", [])
    history.append({"time": record["time"], "loadavg_before": load_before[0], "nice": record["nice"], "medians": med,
                    "default_vs_hover_aviary": ratios["default_vs_hover_aviary"],
                    "default_step_cost_vs_render_only": ratios["default_step_cost_vs_render_only"]})
    record["history"] = history[-10:]
    atomic_write(out.with_suffix(".json"), json.dumps(record, indent=1))
    vs_peer = ratios["default_vs_hover_aviary"]
    lines = [f"# DroneRoom speed, side by side ({record['time']}, load {load_before[0]:.1f} -> {load_after[0]:.1f}, "
             f"nice {record['nice']}, {record['machine']})", "",
             f"Command: `{record['command']}`. Median of {args.reps} alternating rounds of {args.steps} steps; "
             f"reset {reset_ms:.2f} ms.", "",
             "| contender | median steps/s | best | runs |", "| --- | --- | --- | --- |"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['median_steps_per_s']:.0f} | {r['best_steps_per_s']:.0f} | "
                     + ", ".join(f"{v:.0f}" for v in r["runs"]) + " |")
    for name, why in skipped.items():
        lines.append(f"| {name} | skipped: {why} | | |")
    lines += ["", "- DroneRoom default / HoverAviary (median of per-round ratios): "
              + (f"**{vs_peer:.2f}x** (target >= {TARGET_VS_PEER:.1f}x)" if vs_peer is not None else "not measured"),
              f"- DroneRoom default step cost / its two renders alone: "
              f"**{ratios['default_step_cost_vs_render_only']:.2f}x** (target <= {TARGET_VS_RENDER:.1f}x)",
              "- HoverAviary renders its camera every second control step (24 fps at 48 Hz) and steps pybullet's "
              "physics 5 times per control step; DroneRoom renders two eyes and runs SGBM every step.",
              "- DroneRoom's renders: TinyRenderer, 64x48, no shadows, no segmentation mask; obstacles are drawn "
              "before the room's surfaces (depth-tested before shading, so hidden wall pixels are never shaded) and "
              "parked obstacles are transparent (skipped). The images are the same as before that change "
              "(tests/test_drone_render_speed.py).", "",
              "Runs so far (medians, steps/s):", "",
              "| time | load | nice | default | render only | HoverAviary | default / HoverAviary | step / render |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for h in record["history"]:
        m = h.get("medians", {})
        if not m:
            continue
        peer_ratio = h.get("default_vs_hover_aviary")
        lines.append(f"| {h['time']} | {h['loadavg_before']:.1f} | {h.get('nice', '?')} | {m.get(DEFAULT, float('nan')):.0f} | "
                     f"{m.get(RENDER_ONLY, float('nan')):.0f} | {m.get(PEER_NAME, float('nan')):.0f} | "
                     f"{'-' if peer_ratio is None else f'{peer_ratio:.2f}x'} | "
                     f"{h['default_step_cost_vs_render_only']:.2f}x |")
    atomic_write(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
