"""Issue 15's benchmark: BC, Play-GCBC and Play-LMP on PlayTable's 18 tasks (Lynch et al. 2019).

PRE-REGISTERED PROTOCOL. Committed before any run of this script; a change after the first run
is listed under "Deviations" in the results file with its reason.

Claims under test (the paper's, state observations): Play-LMP > Play-GCBC > BC in mean success
over the 18 tasks, and in robustness (success with the hand pushed from its start pose). The
paper: BC 70.3%, Play-GCBC 77.9%, Play-LMP 85.5%; perturbed 23.2% / 68.3% / 78.8%.

Data (made once by this script, seed 0, recorded with sha256 in every run's config.yaml):
* play: ``collect.collect(2.0, seed=0)``, 2 h = 216,000 steps of the scripted play policy (noise
  0.15); the main comparison uses its first hour, the data curve its first 0.25, 0.5, 1 and 2 h.
* expert demonstrations for BC: ``demos.save_demos(..., per_task=100, seed=0, noise=0.05)``,
  1,800 successful demonstrations (the paper's 100 per task), about 95,000 steps: about the
  same number of steps as the hour of play.
* test cases: ``heldout.make_test_cases(20)`` (seed 1,000,000,000, 20 per task, 360), stored as
  benchmarks/results/play_lmp_test_cases.npz; the script stops if ``leaked_cases`` finds any
  case's initial state in the play or demonstration logs. No case is used for training or for
  choosing anything.

Runs: ``python train.py --env selfgym/PlayTableGoal-v0 --agent {bc,play_gcbc,play_lmp} --seed S
-n 10000 --num-threads 1 --eval-freq 3000 --eval-episodes 10 --no-final-eval -params
dataset:D collect:0 hidden:128`` with everything else from hyperparams/<agent>.yml (kappa = 32,
beta = 0.01, 32-D plans, 5 logistics x 256 bins per action dimension, batch 64 windows, Adam
1e-3; BC: windows of 16). Seeds 0, 1, 2 for each agent on the 1 h log / the demonstrations;
Play-LMP seed 0 also on 0.25, 0.5 and 2 h (the data curve; the 1 h point is seed 0 of the main
runs). 12 runs, two at a time on one thread each. Budget: 10,000 gradient steps for every run,
fixed in advance; no tuning on the test cases; the final model is evaluated (not best_model).

Evaluation: ``python evaluate.py --run RUN`` on each run: the agent's 18-task table (the task's
success detector within 150 steps, deterministic actions, Play-LMP replanning from its
proposer's mean every 32 steps) from the start pose, and with the hand first moved 0.15 m
horizontally in a random direction at travel height (our table is about 0.5 m deep, the
paper's 0.4 m would leave the work area; this is our stand-in for its perturbation test).
eval.json's ``cases_sha256`` must equal the stored cases' digest.

Statistics: per run, mean success over the 18 tasks (each task weighs the same). Per agent, the
mean over its 3 seeds with a 95% percentile bootstrap interval over seeds (10,000 resamples,
numpy, seed 0; rliable's stratified bootstrap over runs for the mean); per comparison, the
bootstrap interval of the difference of the two agents' means (seeds resampled independently).
A claim is *supported* when that interval lies above 0, *reversed* when below, *not resolved*
otherwise. Three seeds give wide intervals: that is reported as it is, not re-run until it
resolves. Per-task rates are reported for every agent; the data curve is one seed per point.

Reading: Play-LMP at 85% or more would match the paper; below 70% means something is missing
(data, model size, action head, training budget) and the results note says what was tried.

    python benchmarks/play_lmp.py --workdir /tmp/play_lmp_bench [--parallel 2]
    python benchmarks/play_lmp.py --plan      # print every command of the protocol, run nothing
    python benchmarks/play_lmp.py --tables-only   # the tables from the runs finished so far
    python benchmarks/play_lmp.py --smoke     # the pipeline end to end at toy sizes, into /tmp (not results)

Bookkeeping (amendment 2026-11-30, before any run; nothing above changes): each run's line is
appended to benchmarks/results/play_lmp_runs.jsonl as it finishes (a failed run with its exit code
or error), the tables are rewritten after every run, and a restart with the same --workdir reuses
its data (workdir/data.json) and skips the runs finished in that file.

Amendments 2026-11-30, before any run (what and why: benchmarks/results/play_lmp_protocol.md): the play
collector behind collect.collect resets when a block leaves the hand's reach; every agent is conditioned
on the whole goal observation (goal: observation in hyperparams/<agent>.yml), the paper's s_g.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfgym.envs.play_table.collect import collect
from selfgym.envs.play_table.dataset import observation_layout
from selfgym.envs.play_table.demos import save_demos
from selfgym.envs.play_table.heldout import leaked_cases, make_test_cases

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "play_lmp"
CASES = ROOT / "benchmarks" / "results" / "play_lmp_test_cases.npz"
ENV, STEPS, SEEDS, HOURS = "selfgym/PlayTableGoal-v0", 10_000, (0, 1, 2), (0.25, 0.5, 1.0, 2.0)
AGENTS = ("bc", "play_gcbc", "play_lmp")


@dataclass(frozen=True)
class Scale:
    """The protocol's sizes (the defaults) or --smoke's toy ones, and where the results go."""

    steps: int = STEPS
    seeds: tuple[int, ...] = SEEDS
    data_fraction: float = 1.0  # of each play log's hours
    demos_per_task: int = 100
    cases_per_task: int = 20
    out: Path = OUT
    cases: Path = CASES

    @property
    def record(self) -> Path:
        return self.out.parent / f"{self.out.name}_runs.jsonl"


SMOKE_DIR = Path("/tmp/selfgym_smoke/play_lmp")
SMOKE = Scale(steps=50, seeds=(0,), data_fraction=0.005, demos_per_task=1, cases_per_task=1,
              out=SMOKE_DIR / "play_lmp", cases=SMOKE_DIR / "play_lmp_test_cases.npz")


def planned_runs(work: Path, seeds: tuple[int, ...] = SEEDS) -> list[dict]:
    """(tag, agent, seed, dataset) of every run, in the order they are started."""
    runs = [{"tag": f"{agent}_s{seed}", "agent": agent, "seed": seed,
             "dataset": work / ("expert_demos_100.npz" if agent == "bc" else "play_1h.npz")}
            for seed in seeds for agent in AGENTS]
    runs += [{"tag": f"play_lmp_{hours:g}h_s0", "agent": "play_lmp", "seed": 0, "dataset": work / f"play_{hours:g}h.npz"}
             for hours in HOURS if hours != 1.0]
    return runs


def train_command(run: dict, work: Path, scale: Scale = Scale()) -> list[str]:
    smoke = [] if scale.cases_per_task == 20 else [f"suite_cases_per_task:{scale.cases_per_task}"]
    return [sys.executable, "train.py", "--env", ENV, "--agent", run["agent"], "--seed", str(run["seed"]),
            "-n", str(scale.steps), "-f", str(work / "logs" / run["tag"]), "--num-threads", "1", "--eval-freq", "3000",
            "--eval-episodes", "10", "--no-final-eval", "-params", f"dataset:{run['dataset']}", "collect:0", "hidden:128",
            *smoke]


def data_files(work: Path) -> list[Path]:
    return [work / f"play_{hours:g}h.npz" for hours in HOURS] + [work / "expert_demos_100.npz"]


def make_data(work: Path, scale: Scale = Scale()) -> dict:
    """The play log and its prefixes, the demonstrations and the stored test cases (leak-checked);
    a restart reuses what an earlier start of the same --workdir made (workdir/data.json)."""
    work.mkdir(parents=True, exist_ok=True)
    made = work / "data.json"
    if made.exists() and scale.cases.exists() and all(f.exists() for f in data_files(work)):
        print(f"data: reusing {work} (made {json.loads(made.read_text()).get('made_at')})", flush=True)
        return json.loads(made.read_text())
    t0 = time.time()
    play = collect(max(HOURS) * scale.data_fraction, seed=0)
    timing = {"play_collect_s": round(time.time() - t0, 1)}
    for hours in HOURS:
        n = int(round(hours * scale.data_fraction * 3600 * 30))
        meta = {"kind": "play", "hours": hours, "seed": 0, "noise": 0.15, "steps": n, "prefix_of": f"{max(HOURS):g} h",
                "episodes": int(play["episode_ids"][n - 1]) + 1, "obs_layout": observation_layout()}
        np.savez_compressed(work / f"play_{hours:g}h.npz", meta=json.dumps(meta), **{k: v[:n] for k, v in play.items()})
    t0 = time.time()
    save_demos(str(work / "expert_demos_100.npz"), scale.demos_per_task, seed=0, noise=0.05)
    timing["demos_collect_s"] = round(time.time() - t0, 1)
    cases = make_test_cases(scale.cases_per_task)
    with np.load(work / "expert_demos_100.npz") as demos:
        leaks = leaked_cases(cases, np.concatenate([play["scene_states"], demos["scene_states"]]))
    if leaks:
        raise SystemExit(f"test cases {leaks} start in a training log: the protocol forbids it")
    scale.cases.parent.mkdir(parents=True, exist_ok=True)
    cases.save(scale.cases)
    data = {**timing, "cases_sha256": cases.digest(), "made_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    made.write_text(json.dumps(data))
    return data


def bootstrap_mean(values: np.ndarray, rng: np.random.Generator, n: int = 10_000) -> np.ndarray:
    """Means of ``n`` resamples (with replacement) of ``values``."""
    return values[rng.integers(0, len(values), (n, len(values)))].mean(1)


def summarise(evals: dict[str, dict], condition: str) -> dict:
    """Per agent: seeds' mean success with its 95% interval; per claim: the interval of the difference."""
    rng = np.random.default_rng(0)
    per_agent, boot = {}, {}
    for agent in AGENTS:
        means = np.array([evals[f"{agent}_s{s}"]["results"][condition]["mean"] for s in SEEDS if f"{agent}_s{s}" in evals])
        if len(means) == 0:
            continue
        boot[agent] = bootstrap_mean(means, rng)
        per_agent[agent] = {"mean": float(means.mean()), "ci95": np.percentile(boot[agent], [2.5, 97.5]).tolist(),
                            "seeds": means.tolist()}
    claims = {}
    for better, worse in (("play_lmp", "play_gcbc"), ("play_gcbc", "bc")):
        if better in boot and worse in boot:
            low, high = np.percentile(boot[better] - boot[worse], [2.5, 97.5])
            verdict = "supported" if low > 0 else "reversed" if high < 0 else "not resolved"
            claims[f"{better} > {worse}"] = {"ci95": [float(low), float(high)], "verdict": verdict}
    return {"agents": per_agent, "claims": claims}


def finish_run(tag: str, run: dict, returncode: int, wall_s: float, work: Path, digest: str) -> dict:
    """One run's line: its exit code and, when it evaluated on the stored test cases, its task suite."""
    record = {"tag": tag, "agent": run["agent"], "seed": run["seed"], "dataset": str(run["dataset"]),
              "wall_s": round(wall_s), "returncode": returncode, "log": str(work / f"{tag}.log")}
    found = list((work / "logs" / tag).glob("*/*/eval.json"))
    if returncode == 0 and not found:
        record.update(returncode=1, error="exit 0 but no eval.json")
    elif returncode == 0:
        try:
            suite = json.loads(found[0].read_text())["task_suite"]
            digests = {r["cases_sha256"] for r in suite["results"].values()}
        except (ValueError, KeyError, TypeError) as error:
            return {**record, "returncode": 1, "error": f"eval.json unreadable: {error!r}"}
        if digests != {digest}:
            return {**record, "returncode": 1, "error": f"evaluated on test cases {sorted(digests)}, not the stored {digest}"}
        record.update(suite)
    return record


def tabulate(results: dict, record: Path) -> dict:
    """results["runs"] (the latest line of every run in the record) and the summary of those that evaluated."""
    from tune_bench import recorded_runs

    results["runs"] = {tag: row for (tag,), row in recorded_runs(record, ("tag",)).items()}
    evals = {tag: r for tag, r in results["runs"].items() if r.get("returncode") == 0 and "results" in r}
    conditions = list(next(iter(evals.values()))["results"]) if evals else []
    results["summary"] = {c: summarise(evals, c) for c in conditions}
    return results


def run_all(work: Path, parallel: int, scale: Scale = Scale()) -> dict:
    from tune_bench import finished_keys, record_run

    results = {"protocol_commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                                 text=True).stdout.strip(), "data": make_data(work, scale), "runs": {}}
    done = {tag for (tag,) in finished_keys(scale.record, ("tag",))}
    pending = [run for run in planned_runs(work, scale.seeds) if run["tag"] not in done]
    if done:
        print(f"skipping the runs finished in {scale.record}: {sorted(done)}", flush=True)
    running: dict[str, tuple] = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    while pending or running:
        while pending and len(running) < parallel:
            run = pending.pop(0)
            shutil.rmtree(work / "logs" / run["tag"], ignore_errors=True)  # an unfinished earlier try
            log = open(work / f"{run['tag']}.log", "w")
            script = (f"{' '.join(map(str, train_command(run, work, scale)))} && {sys.executable} evaluate.py "
                      f"--run $(ls -d {work / 'logs' / run['tag']}/*/*/ | head -1) -n 5")
            running[run["tag"]] = (subprocess.Popen(script, shell=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                                    env=env), time.time(), run, log)
            print(f"{run['tag']}: started (log {log.name})", flush=True)
        time.sleep(10 if scale.steps == STEPS else 1)
        for tag, (proc, start, run, log) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[tag]
            log.close()
            record = finish_run(tag, run, proc.returncode, time.time() - start, work, results["data"]["cases_sha256"])
            record["commit"] = results["protocol_commit"]
            record_run(scale.record, record)
            print(f"{tag}: done in {record['wall_s'] / 60:.1f} min (exit {record['returncode']}"
                  + (f": {record['error']}" if "error" in record else "") + ")", flush=True)
            write_results(tabulate(results, scale.record), scale)  # a partial table after every run
    return tabulate(results, scale.record)


def plot_plan_space(plan_pca: dict, path: Path) -> None:
    """The paper's figure: Play-LMP's proposed plans for the test cases in 2-D, one colour per task."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xy, tasks = np.array(plan_pca["xy"]), np.array(plan_pca["tasks"])
    fig, ax = plt.subplots(figsize=(8, 6))
    cmap = plt.get_cmap("tab20")
    for i, task in enumerate(dict.fromkeys(tasks)):
        ax.scatter(*xy[tasks == task].T, s=14, color=cmap(i % 20), label=task)
    ax.set_xlabel(f"PC 1 ({plan_pca['explained_variance'][0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({plan_pca['explained_variance'][1]:.0%})")
    ax.set_title("Play-LMP proposer means of the held-out test cases (PCA)")
    ax.legend(fontsize=6, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(results: dict, scale: Scale = Scale()) -> None:
    out = scale.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    lines = ["# BC, Play-GCBC, Play-LMP on PlayTable's 18 tasks", "", f"`python benchmarks/play_lmp.py` "
             f"(protocol: benchmarks/play_lmp.py docstring, commit {results['protocol_commit']})", ""]
    planned = [run["tag"] for run in planned_runs(Path("."), scale.seeds)]
    missing = [tag for tag in planned if results["runs"].get(tag, {}).get("returncode") != 0]
    if missing:
        lines += [f"Partial: no finished run for {', '.join(missing)} (failed: "
                  f"{', '.join(t for t in missing if t in results['runs']) or 'none'}).", ""]
    for condition, summary in results.get("summary", {}).items():
        lines += [f"## {condition}", "", "| agent | mean success | 95% CI | seeds |", "|---|---|---|---|"]
        for agent, s in summary["agents"].items():
            lines.append(f"| {agent} | {s['mean']:.3f} | [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}] | "
                         f"{', '.join(f'{v:.3f}' for v in s['seeds'])} |")
        lines += ["", *(f"- {claim}: {c['verdict']} (difference 95% CI [{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}])"
                        for claim, c in summary["claims"].items()), ""]
    lines += per_task_table(results) + data_curve(results)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    if "plan_pca" in results["runs"].get("play_lmp_s0", {}):
        plot_plan_space(results["runs"]["play_lmp_s0"]["plan_pca"], out.parent / f"{out.name}_plan_space.png")


def per_task_table(results: dict) -> list[str]:
    """Success per task, mean over each agent's seeds, for every condition."""
    main_runs = {tag: r for tag, r in results["runs"].items()
                 if r.get("returncode") == 0 and "results" in r and tag.rsplit("_s", 1)[0] in AGENTS}
    if not main_runs:
        return []
    conditions = list(next(iter(main_runs.values()))["results"])
    tasks = list(next(iter(main_runs.values()))["results"][conditions[0]]["per_task"])
    header = [f"{agent} {condition}" for condition in conditions for agent in AGENTS]
    lines = ["## Per task (mean over seeds)", "", "| task | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for task in tasks:
        cells = []
        for condition in conditions:
            for agent in AGENTS:
                rates = [r["results"][condition]["per_task"][task] for tag, r in main_runs.items() if r["agent"] == agent]
                cells.append(f"{np.mean(rates):.2f}" if rates else "-")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines + [""]


def data_curve(results: dict) -> list[str]:
    """Play-LMP seed 0: mean success against hours of play."""
    lines = ["## Play-LMP against hours of play (seed 0)", "", "| hours | condition | mean success |", "|---|---|---|"]
    for hours in HOURS:
        run = results["runs"].get("play_lmp_s0" if hours == 1.0 else f"play_lmp_{hours:g}h_s0", {})
        for condition, r in run.get("results", {}).items():
            lines.append(f"| {hours:g} | {condition} | {r['mean']:.3f} |")
    return lines + [""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default="/tmp/play_lmp_bench", help="data, run folders and logs go here")
    p.add_argument("--parallel", type=int, default=2, help="runs at once (one thread each)")
    p.add_argument("--plan", action="store_true", help="print the protocol's commands and stop")
    p.add_argument("--tables-only", action="store_true", help="no training: the tables from the runs' record")
    p.add_argument("--smoke", action="store_true", help=f"toy sizes (seed 0, {SMOKE.steps} steps, 1 case per task), "
                   f"into {SMOKE_DIR} (not results)")
    args = p.parse_args()
    scale = SMOKE if args.smoke else Scale()
    work = (SMOKE_DIR / "work" if args.smoke else Path(args.workdir)).resolve()
    if args.plan:
        for run in planned_runs(work, scale.seeds):
            print(" ".join(map(str, train_command(run, work, scale))))
        return
    if args.tables_only:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        data = json.loads((work / "data.json").read_text()) if (work / "data.json").exists() else {}
        results = tabulate({"protocol_commit": commit, "data": data, "runs": {}}, scale.record)
    else:
        results = run_all(work, args.parallel, scale)
    write_results(results, scale)
    print(f"wrote {scale.out.with_suffix('.md')}")
    failed = [tag for tag, r in results["runs"].items() if r.get("returncode") != 0]
    if failed:
        raise SystemExit(f"{len(failed)} runs failed (see {scale.record}): {failed}")


if __name__ == "__main__":
    main()
