"""What the seed benchmarks share: one tune.py experiment, evaluate.py on its runs, compare.py's tables.

A benchmark that runs seeds (and methods) is one ``python tune.py ...`` experiment: every trial an
ordinary run folder under ``<exp>/runs/``. This module runs it as a user would (a subprocess, its
output kept beside it in ``<exp>.tune.log``), evaluates each trial's final model with evaluate.py's core,
and tabulates with ``selfgym.compare``: the training metrics' final values with rliable's
intervals (and a Wilson interval for ``eval_success_rate``), and the evaluate.py success rates
and returns with the same intervals. No interval code lives in the benchmarks.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: tune.py output lines kept in the log only: the trials' own output and Tune's periodic status lines
QUIET = ("(", "== Status", "Current time", "Using FIFO", "Logical resource", "Result logdir", "Number of trials",
         "Current best trial", "\n")


def run_tune(tune_args: list[str], exp_dir: Path, resume: bool = False) -> dict[str, Any]:
    """``python tune.py TUNE_ARGS --exp-dir EXP`` (or ``--resume EXP``); returns command, exit code and wall time.

    On a resume, ``command`` is still the one that started the experiment (``TUNE_ARGS``: give the
    same), ``resumed_with`` the resume, and ``wall_s`` the time of this call only.

    tune.py exits 1 when a trial failed; the benchmark still tabulates the others and lists it.
    """
    exp_dir = Path(exp_dir)
    args = ["--resume", str(exp_dir)] if resume else [*tune_args, "--exp-dir", str(exp_dir)]
    command = [sys.executable, "tune.py", *args]
    exp_dir.parent.mkdir(parents=True, exist_ok=True)
    log = exp_dir.parent / f"{exp_dir.name}.tune.log"  # tune.py refuses an --exp-dir that holds files of its own
    print("$ python " + " ".join(_quote(a) for a in command[1:]), flush=True)
    start = time.time()
    with open(log, "a", buffering=1) as out:  # line-buffered: the log can be followed while tune.py runs
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if not re.sub(r"\x1b\[[0-9;]*m", "", line).startswith(QUIET):
                print(line, end="", flush=True)
        proc.wait()
    wall = time.time() - start
    if proc.returncode not in (0, 1) or not (exp_dir / "runs").is_dir():
        raise SystemExit(f"tune.py exited with {proc.returncode} and made no runs; see {log}")
    started = ["tune.py", *tune_args, "--exp-dir", str(exp_dir)]  # what made the experiment, also when resumed
    return {"command": "python " + " ".join(_quote(a) for a in started), "returncode": proc.returncode,
            "wall_s": round(wall, 1), "log": str(log),
            **({"resumed_with": "python " + " ".join(_quote(a) for a in command[1:])} if resume else {})}


def _quote(arg: str) -> str:
    """An argument as a shell would need it typed (the command is recorded to be re-run)."""
    if not any(c in arg for c in " ,\"[]{}()'$"):
        return arg
    return f'"{arg}"' if "'" in arg and not any(c in arg for c in '"$`\\') else shlex.quote(arg)


def trial_runs(exp_dir: Path) -> list[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """(run folder, config.yaml, status.json) of every trial's run folder."""
    from selfgym.runs import read_yaml

    found = []
    for config in sorted((Path(exp_dir) / "runs").glob("*/*/*/config.yaml")):
        run = config.parent
        status = json.loads((run / "status.json").read_text()) if (run / "status.json").exists() else {}
        found.append((run, read_yaml(config), status))
    return found


def evaluate_runs(runs: list[Path], episodes: int, deterministic: bool, name: str) -> dict[str, dict[str, Any]]:
    """evaluate.py's evaluation of each run's final model, written to ``<run>/<name>.json``; by run folder."""
    from selfgym.evaluation import evaluate_run

    out = {}
    for run in runs:
        summary = evaluate_run(run, n_episodes=episodes, deterministic=deterministic, output=run / f"{name}.json")
        out[str(run)] = {"success_rate": summary["success_rate"], "return_mean": summary["return_mean"],
                         "length_mean": summary["length_mean"], "episodes": summary["n_episodes"],
                         "num_timesteps": summary["num_timesteps"], "deterministic": deterministic}
        rate = summary["success_rate"]
        print(f"evaluate.py {'deterministic' if deterministic else 'sampled'} {run}: return {summary['return_mean']:.3f}"
              + (f", success {rate:.2f}" if rate is not None else "") + f" over {episodes} episodes", flush=True)
    return out


def compare_runs(folders: list[Path], metrics: list[str], out: Path, reps: int = 10_000) -> Any:
    """compare.py over the runs under ``folders`` (e.g. ``<exp>/runs``) for those of ``metrics`` that some run logged."""
    from selfgym.compare import compare, find_runs

    runs, _ = find_runs(folders)
    logged = {c for run in runs for row in run.rows for c, v in row.items() if v is not None}
    return compare(folders, [m for m in metrics if m in logged], out, reps=reps)


def final_eval_table(exp_dir: Path, evaluations: dict[str, dict[str, dict[str, Any]]], reps: int = 10_000,
                     labels: dict[str, str] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The evaluate.py results per configuration (compare.py's groups): success rate with rliable's
    interval over runs and a Wilson interval over the pooled episodes, return with rliable's interval.

    ``evaluations``: kind (e.g. "deterministic") -> run folder -> ``evaluate_runs``'s entry.
    ``labels``: compare.py's group label -> a shorter name for the table.
    """
    from selfgym.compare import find_runs, group_runs, interval_estimates, wilson

    runs, _ = find_runs([Path(exp_dir) / "runs"])
    rows = []
    for group in group_runs(runs):
        for kind, results in evaluations.items():
            mine = [(run, results[str(run.path)]) for run in group.runs if str(run.path) in results]
            if not mine:
                continue
            row: dict[str, Any] = {"configuration": (labels or {}).get(group.label, group.label), "evaluation": kind,
                                   "seeds": [run.config.get("seed") for run, _ in mine],
                                   "runs": [str(run.path) for run, _ in mine]}
            returns = np.array([[r["return_mean"]] for _, r in mine])
            row["return"] = {"per_run": returns[:, 0].tolist(), **interval_estimates(returns, reps, 0)}
            if all(r["success_rate"] is not None for _, r in mine):
                rates = np.array([[r["success_rate"]] for _, r in mine])
                successes = sum(round(r["success_rate"] * r["episodes"]) for _, r in mine)
                episodes = sum(r["episodes"] for _, r in mine)
                row["success"] = {"per_run": rates[:, 0].tolist(), **interval_estimates(rates, reps, 0),
                                  "pooled": f"{successes}/{episodes}", "wilson_ci": wilson(successes, episodes)}
            rows.append(row)
    lines = ["| configuration | evaluate.py actions | seeds | success per run | success mean [95% CI] | success pooled "
             "[Wilson 95%] | return mean [95% CI] | return IQM [95% CI] |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        s, r = row.get("success"), row["return"]
        cells = [row["configuration"], row["evaluation"], ", ".join(map(str, row["seeds"]))]
        if s:
            cells += [" ".join(f"{v:.2f}" for v in s["per_run"]), f"{s['mean']:.3f} [{s['mean_ci'][0]:.3f}, {s['mean_ci'][1]:.3f}]",
                      f"{s['pooled']} [{s['wilson_ci'][0]:.3f}, {s['wilson_ci'][1]:.3f}]"]
        else:
            cells += ["–", "–", "–"]
        cells += [f"{r['mean']:.4g} [{r['mean_ci'][0]:.4g}, {r['mean_ci'][1]:.4g}]",
                  f"{r['iqm']:.4g} [{r['iqm_ci'][0]:.4g}, {r['iqm_ci'][1]:.4g}]"]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines), rows


def check_out(out: str) -> None:
    """Refuse, before any training, an ``--out`` whose results were recorded by a benchmark's earlier,
    pre-tune.py form: those files are history (a rerun of the tune.py form writes new files)."""
    path = RESULTS / f"{out}.json"
    if path.exists() and "tune" not in json.loads(path.read_text()):
        raise SystemExit(f"benchmarks/results/{out}.json holds results recorded before the benchmark ran on tune.py; "
                         "they are kept as history: choose another --out")


def store(out: str, result: dict[str, Any], markdown: str, pictures: list[Path]) -> list[Path]:
    """``benchmarks/results/<out>.json``, ``<out>.md`` and ``<out>_<picture name>`` for each compare.py picture."""
    from selfgym.runs import atomic_write

    RESULTS.mkdir(parents=True, exist_ok=True)
    written = [RESULTS / f"{out}.json", RESULTS / f"{out}.md"]
    atomic_write(written[0], json.dumps(result, indent=1, default=str))
    atomic_write(written[1], markdown)
    for picture in pictures:
        written.append(RESULTS / f"{out}_{picture.name}")
        shutil.copyfile(picture, written[-1])
    return written


# -- a table kept run by run ---------------------------------------------------------------------------
def recorded_runs(record: Path, key: Sequence[str]) -> dict[tuple, dict[str, Any]]:
    """The lines of a runs ``.jsonl``, the latest per ``key`` (a rerun after a crash replaces its error line).

    A line torn by a kill is skipped: it is a run that never finished.
    """
    out: dict[tuple, dict[str, Any]] = {}
    if Path(record).exists():
        for line in Path(record).read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                out[tuple(row.get(k) for k in key)] = row
    return out


def finished_keys(record: Path, key: Sequence[str]) -> set[tuple]:
    """The keys whose latest line says the run finished (``returncode`` 0): what a restart skips."""
    return {k for k, row in recorded_runs(record, key).items() if row.get("returncode") == 0}


def record_run(record: Path, row: dict[str, Any]) -> None:
    """Append one finished (or crashed) run's line, flushed to disk: a session that ends keeps every line."""
    record = Path(record)
    record.parent.mkdir(parents=True, exist_ok=True)
    torn = record.exists() and record.stat().st_size > 0 and not record.read_bytes().endswith(b"\n")
    with open(record, "a") as out:
        out.write(("\n" if torn else "") + json.dumps(row, default=str) + "\n")
        out.flush()
        os.fsync(out.fileno())


def run_recorded(jobs: dict[tuple, Callable[[], dict[str, Any]]], key: Sequence[str], record: Path,
                 workers: int) -> list[dict[str, Any]]:
    """Run each job (key values -> a callable returning its row) on ``workers`` threads, skipping keys the
    record already holds as finished, and append each row to ``record`` as it finishes. A job that
    raises is recorded with ``returncode`` 1 and its error, and the others go on.

    Returns every finished row of the record (earlier sessions' included), in the jobs' order.
    """
    done = finished_keys(record, key)
    todo = {k: job for k, job in jobs.items() if k not in done}
    if done & set(jobs):
        print(f"{len(done & set(jobs))} of {len(jobs)} runs already finished in {record}: skipped", flush=True)
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        futures = {pool.submit(job): k for k, job in todo.items()}
        for future in as_completed(futures):
            k = futures[future]
            try:
                row = {**dict(zip(key, k)), "returncode": 0, **future.result()}
            except Exception as error:  # recorded, not fatal: the other runs keep going
                row = {**dict(zip(key, k)), "returncode": 1, "error": f"{type(error).__name__}: {error}"[-4000:]}
            row["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            record_run(record, row)
            failure = str(row.get("error", f"return code {row['returncode']}"))  # a job may return its own code
            print(f"{dict(zip(key, k))}: " + ("finished" if row["returncode"] == 0 else f"FAILED ({failure[:300]})"),
                  flush=True)
    latest = recorded_runs(record, key)
    return [latest[k] for k in jobs if k in latest and latest[k].get("returncode") == 0]
