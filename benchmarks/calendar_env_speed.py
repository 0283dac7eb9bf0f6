"""CalendarConflict-v0 steps per second including resets and cold users, with and without the disk cache.

    OMP_NUM_THREADS=1 python benchmarks/calendar_env_speed.py --steps 20000

Each scenario runs in a fresh process (empty in-memory memo), plays ``--steps`` random actions with
a reset at every episode end (N=104 rounds, M=5, a random training user per reset of the 70 in
data_seed 0's train split, so most users are first met during the run):

* ``generate``: ``disk_cache=False``: every new user is generated (the behaviour before the cache);
* ``disk_cache``: the users were written to a fresh ``$SELFGYM_CACHE`` once beforehand, and this
  process reads them from disk (what every process after the first one sees);
* ``warm``: every user already in memory (the upper bound; stepping and resets only).

Also times one user's generation against one cached read. Writes
benchmarks/results/calendar_env_speed.{json,md}.
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
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("generate", "disk_cache", "warm")


def play(scenario: str, steps: int) -> dict[str, float]:
    """Random steps with resets in this process; the env is built as ``scenario`` says."""
    import torch

    from selfgym.envs.calendar.env import CalendarConflictEnv

    torch.set_num_threads(1)
    env = CalendarConflictEnv(disk_cache=scenario != "generate")
    if scenario == "warm":
        for uid in env.user_ids:
            env.user_data(uid)
    rng = np.random.default_rng(0)
    n, resets, start = 0, 0, time.perf_counter()
    env.reset(seed=0)
    while n < steps:
        _, _, done, _, _ = env.step(int(rng.integers(5)))
        n += 1
        if done:
            env.reset()
            resets += 1
    seconds = time.perf_counter() - start
    return {"steps": n, "resets": resets, "seconds": seconds, "steps_per_s": n / seconds}


def run_child(scenario: str, steps: int, cache: str) -> dict[str, float]:
    env = dict(os.environ, SELFGYM_CACHE=cache, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--child", scenario, "--steps", str(steps)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def per_user_seconds(cache: str, users: list[int]) -> dict[str, float]:
    from selfgym.envs.calendar import store

    os.environ["SELFGYM_CACHE"] = cache
    start = time.perf_counter()
    for uid in users:
        store.make_user_data(0, uid)
    generate = (time.perf_counter() - start) / len(users)
    start = time.perf_counter()
    for uid in users:
        store.load_user_data(0, uid)
    read = (time.perf_counter() - start) / len(users)
    return {"generate_s": generate, "cached_read_s": read, "speedup": generate / read}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(play(a.child, a.steps)))
        return {}
    from selfgym.envs.calendar import store

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        os.environ["SELFGYM_CACHE"] = cache
        store.fill(100, seed=0)  # 100 users: every split of data_seed 0
        fill_s = time.perf_counter() - start
        out: dict[str, Any] = {"command": f"OMP_NUM_THREADS=1 python benchmarks/calendar_env_speed.py --steps {a.steps}",
                               "host": platform.node(), "load_before": os.getloadavg(), "fill_100_users_s": fill_s,
                               "per_user": per_user_seconds(cache, list(range(5))), "scenarios": {}}
        for scenario in SCENARIOS:
            out["scenarios"][scenario] = run_child(scenario, a.steps, cache)  # "generate" never reads it
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calendar_env_speed.json").write_text(json.dumps(out, indent=2) + "\n")
    rows = ["| scenario | steps/s | resets | seconds |", "|---|---|---|---|"]
    rows += [f"| {k} | {v['steps_per_s']:.0f} | {v['resets']} | {v['seconds']:.1f} |" for k, v in out["scenarios"].items()]
    pu = out["per_user"]
    md = (f"# CalendarConflict-v0 env speed with resets and cold users\n\n`{out['command']}`\n\n" + "\n".join(rows) +
          f"\n\nOne user-year: generated in {pu['generate_s'] * 1000:.0f} ms, read from the disk cache in "
          f"{pu['cached_read_s'] * 1000:.1f} ms ({pu['speedup']:.0f}x). Filling the cache with data_seed 0's 100 users "
          f"took {fill_s:.0f} s once. Load average before: {', '.join(f'{x:.1f}' for x in out['load_before'])} (2 shared cores).\n")
    (RESULTS / "calendar_env_speed.md").write_text(md)
    print(md)
    return out


if __name__ == "__main__":
    main()
