"""What Ray Tune costs: the same PPO CartPole trials through tune.py and one after another through train.py.

Issue 19, item 5. Three ways run the same ``--trials`` trainings (seeds 0..N-1, ``-n`` steps, one torch
thread, no evaluation), in this order in one run: train.py one after another, train.py ``--cpus`` at a
time (a plain process pool, no Ray), then tune.py with ``--num-cpus`` CPUs (one per trial). Measured:

- ``sequential_s``: the sum of the train.py processes' wall times (start-up included);
- ``parallel_s``: the wall time of the plain pool; ``tune_s``: tune.py's wall time, Ray's start and
  the final table included;
- speed-up = sequential_s / tune_s (the ideal with C CPUs is C), and what this machine gives without
  Ray, sequential_s / parallel_s: two processes at once need not run twice as fast on a VM's two vCPUs;
- Ray's overhead per trial = (tune_s - parallel_s) / N * C, and as a fraction of a trial's wall time in
  the pool: what a trial pays for Ray (start-up, reporting, actor launch) beyond a plain train.py run
  under the same parallelism;
- Ray's own memory: the peak summed RSS of Ray's processes (GCS, raylet, monitors, idle workers),
  trial workers and the driver excluded, sampled every 0.5 s.

    python benchmarks/tune_overhead.py                         # 8 trials of 120,000 steps, 2 CPUs
    python benchmarks/tune_overhead.py --trials 4 -n 5000      # a quick look

Writes benchmarks/results/<--out>.{json,md}. The machine's load average is stored with the figures:
on a shared machine both halves slow down, not always equally.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TRAIN = ["--env", "CartPole-v1", "--agent", "ppo", "--eval-freq", "0", "--no-final-eval", "--num-threads", "1"]


def ray_memory(driver: int, stop: threading.Event, peak: dict[str, float]) -> None:
    """Peak RSS (MiB) of Ray's processes below the driver, trial workers excluded."""
    while not stop.is_set():
        try:
            children = psutil.Process(driver).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        ray_rss, workers = 0.0, 0
        for proc in children:
            try:
                title = " ".join(proc.cmdline())
                rss = proc.memory_info().rss / 2**20
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            name = title.split()[0][:60] if title else proc.name()
            seen = peak.setdefault("processes_mib", {})
            seen[name] = round(max(seen.get(name, 0.0), rss), 1)
            if "run_trial" in title or "ImplicitFunc" in title:
                workers += 1
                continue
            ray_rss += rss
        peak["ray_rss_mib"] = max(peak.get("ray_rss_mib", 0.0), ray_rss)  # trial workers excluded
        peak["max_trial_workers"] = max(peak.get("max_trial_workers", 0), workers)
        stop.wait(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("-n", "--steps", type=int, default=120_000)  # about a minute per trial with 2 at a time
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--out", default="tune_overhead")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    work = Path(tempfile.mkdtemp(prefix="tune_overhead_"))
    loads = [os.getloadavg()[0]]

    walls = []
    for seed in range(args.trials):
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "train.py"), *TRAIN, "-n", str(args.steps), "--seed", str(seed),
                        "-f", str(work / "sequential")], check=True, env=env, cwd=work, capture_output=True)
        walls.append(time.perf_counter() - start)
        print(f"train.py seed {seed}: {walls[-1]:.1f} s", flush=True)
    loads.append(os.getloadavg()[0])

    from concurrent.futures import ThreadPoolExecutor

    def one(seed: int) -> float:
        begin = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "train.py"), *TRAIN, "-n", str(args.steps), "--seed", str(seed),
                        "-f", str(work / "parallel")], check=True, env=env, cwd=work, capture_output=True)
        return time.perf_counter() - begin

    start = time.perf_counter()
    with ThreadPoolExecutor(args.cpus) as pool:
        pooled = list(pool.map(one, range(args.trials)))
    parallel_s = time.perf_counter() - start
    print(f"train.py {args.cpus} at a time: {parallel_s:.1f} s (per trial {sum(pooled) / len(pooled):.1f} s)", flush=True)
    loads.append(os.getloadavg()[0])

    command = [sys.executable, str(ROOT / "tune.py"), *TRAIN, "-n", str(args.steps), "--seeds",
               *map(str, range(args.trials)), "--num-cpus", str(args.cpus), "--cpus-per-trial", "1",
               "--exp-dir", str(work / "tune")]
    start = time.perf_counter()
    driver = subprocess.Popen(command, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop, peak = threading.Event(), {}
    sampler = threading.Thread(target=ray_memory, args=(driver.pid, stop, peak), daemon=True)
    sampler.start()
    output = driver.communicate()[0]
    tune_s = time.perf_counter() - start
    stop.set()
    sampler.join()
    loads.append(os.getloadavg()[0])
    if driver.returncode != 0:
        raise SystemExit(f"tune.py failed:\n{output[-3000:]}")
    trained = [json.loads(p.read_text())["train_seconds"] for p in sorted((work / "tune" / "runs").glob("*/*/*/status.json"))]

    sequential_s = sum(walls)
    pooled_mean = sum(pooled) / len(pooled)
    overhead = (tune_s - parallel_s) * args.cpus / args.trials
    result = {
        "command": " ".join(["python benchmarks/tune_overhead.py", *sys.argv[1:]]),
        "trials": args.trials, "steps": args.steps, "cpus": args.cpus,
        "sequential_walls_s": [round(w, 2) for w in walls], "sequential_s": round(sequential_s, 1),
        "parallel_walls_s": [round(w, 2) for w in pooled], "parallel_s": round(parallel_s, 1),
        "tune_s": round(tune_s, 1), "speedup": round(sequential_s / tune_s, 3),
        "speedup_without_ray": round(sequential_s / parallel_s, 3),
        "overhead_per_trial_s": round(overhead, 2), "overhead_fraction": round(overhead / pooled_mean, 4),
        "tune_trial_train_seconds": trained, "ray_peak_rss_mib": round(peak.get("ray_rss_mib", 0.0), 1),
        "max_trial_workers_seen": peak.get("max_trial_workers", 0),
        "peak_rss_by_process_mib": peak.get("processes_mib", {}),
        "load_average_1min": {"start": loads[0], "after_sequential": loads[1], "after_pool": loads[2], "after_tune": loads[3]},
        "machine": f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"# Ray Tune overhead: {args.trials} PPO CartPole trials of {args.steps} steps, {args.cpus} CPUs", "",
        f"`{result['command']}` ({result['machine']}; load average {loads[0]:.1f} / {loads[1]:.1f} / {loads[2]:.1f} / {loads[3]:.1f} "
        "at start / after train.py / after the pool / after tune.py)", "",
        "| measure | value |", "|---|---|",
        f"| train.py one after another (sum of walls) | {sequential_s:.1f} s (mean {sequential_s / args.trials:.1f} s per trial) |",
        f"| train.py {args.cpus} at a time, no Ray (wall) | {parallel_s:.1f} s (a trial's wall {pooled_mean:.1f} s) |",
        f"| tune.py, {args.cpus} trials at a time (wall, Ray start included) | {tune_s:.1f} s |",
        f"| speed-up with tune.py (ideal {args.cpus}) / this machine's without Ray | {result['speedup']:.2f}x / {result['speedup_without_ray']:.2f}x |",
        f"| Ray's overhead per trial (against the pool) | {overhead:.1f} s ({100 * result['overhead_fraction']:.1f}% of a trial) |",
        f"| Ray's own processes, peak RSS | {result['ray_peak_rss_mib']:.0f} MiB |",
    ]
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
