"""Every self-generated training signal the toolkit ships, on one instrument (issue 22 item 1).

Each row trains the default SmolLM2-135M-Instruct (or ``--model PATH``) from scratch for the
same budget (``--iterations`` of ``--prompts`` x ``--group-size`` completions) on one
TextReasoning family, and measures the fixed held-out set (``--heldout`` questions) before and
after: greedy accuracy, and sampled accuracy (mean over ``--eval-samples`` samples per question
at the training temperature, the same sampling seed before and after). The verifier row (GRPO on
the exact answer checker, labels) is the ceiling printed beside every row. Gains get 95%
intervals from selfgym/compare.py's stratified bootstrap over (seeds x families).

The pre-registered protocol, with the budget and decision rule, is
benchmarks/results/self_rewarding_protocol.md. Written to run unchanged on CUDA (``--device auto``
picks it, bf16 there; fp32 on CPU) and with another local model (``--model /path/to/folder``: any
causal LM with a chat template; LoRA adapts the modules named in hyperparams/grpo.yml). Every run
records the device and dtype it ran on. benchmarks/gpu_check.py's ``study_grpo`` and ``study_dpo``
paths run a GRPO and a DPO row through ``build``, ``evaluate`` and ``iterate`` below, on the device
(``--model PATH`` for another model); the CUDA path has not been run yet (no GPU was available).

    python benchmarks/self_rewarding.py --families arithmetic:1 word:1 --seeds 301 302 303 \\
        --iterations 12 --heldout 200 --eval-samples 4 --out benchmarks/results/self_rewarding.json
    python benchmarks/self_rewarding.py --pilot   # 2 iterations, 20 questions: timings for the budget

Writes the json (atomically) and a .md table beside it after every run, so partial results survive; a
run that crashes is listed under "failed" with its error and the others go on; rerunning the same
command with the same --out resumes: the runs already in it are kept and skipped (a different
configuration is refused). ``--tables-only`` rewrites the table from the json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: row -> (agent, reward spec or "env" for the env's verifier reward, env kwargs, agent kwargs, uses labels)
SIGNALS: dict[str, dict[str, Any]] = {
    "majority_vote": dict(agent="grpo", reward="majority_vote"),  # TTRL
    "majority_vote_guard": dict(agent="grpo", reward="majority_vote:guard=temperature"),  # + the consensus guard
    "self_judge_yes_prob": dict(agent="grpo", reward="self_judge:mode=yes_prob"),  # SSR-Zero-style P(yes)
    "self_judge_rubric": dict(agent="grpo", reward="self_judge:mode=rubric"),  # Yuan et al.'s 0-5 rubric
    "likelihood": dict(agent="grpo", reward="likelihood"),  # sharpening: the initial model's likelihood
    "self_rewarding_dpo": dict(agent="self_rewarding_dpo", reward="self_judge:mode=yes_prob"),
    "temporal_dpo": dict(agent="self_rewarding_dpo", reward="self_judge:mode=yes_prob", hp={"rejected_from": "initial"}),
    "score_two_turn": dict(agent="grpo", reward="env", env={"two_turn": True, "correction_bonus": 0.5}, labels=True),
    "verifier": dict(agent="grpo", reward="env", labels=True),  # the ceiling
}
ENV_ID = "selfgym/TextReasoning-v0"


def parse_family(text: str) -> tuple[str, int]:
    name, _, level = text.partition(":")
    try:
        return name, int(level or 1)
    except ValueError:
        raise SystemExit(f"--families: {text!r} is not FAMILY:LEVEL (e.g. arithmetic:1)") from None


def build(args: argparse.Namespace, signal: str, family: str, level: int, seed: int) -> tuple[Any, Any]:
    import torch

    import selfgym  # noqa: F401  (registers the selfgym/ ids)
    from selfgym import agents, rewards
    from selfgym.config import load_hyperparams
    from selfgym.env_factory import make_vec_env

    spec = SIGNALS[signal]
    hp = load_hyperparams(spec["agent"], ENV_ID)
    env_kwargs = dict(hp.pop("env_kwargs", {}))
    env_kwargs.update(task=family, level=level, test_size=args.heldout, **spec.get("env", {}))
    for key in ("n_timesteps", "n_envs"):
        hp.pop(key, None)
    hp.update(group_size=args.group_size, max_new_tokens=args.max_new_tokens, heldout_size=args.heldout, eval_every=0,
              train_batch_size=args.train_batch_size, temperature=args.temperature, model=args.model, **spec.get("hp", {}))
    venv = make_vec_env(ENV_ID, args.prompts * args.group_size, seed, env_kwargs)
    reward = spec["reward"] + (f",guard_floor={args.guard_floor}" if "guard=" in spec["reward"] else "")
    modules = [] if reward == "env" else [rewards.make_reward(reward)]
    agent = agents.make_agent(spec["agent"], venv, hp, device=args.device, seed=seed, logger=None, reward_modules=modules)
    torch.set_num_threads(args.threads)
    return agent, venv


def evaluate(agent: Any, args: argparse.Namespace) -> dict[str, float]:
    """Greedy and sampled held-out accuracy on the first --heldout questions (fixed sampling seed)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = {"greedy": agent.heldout_accuracy(size=args.heldout)}
    if args.eval_samples:
        out["sampled"] = agent.heldout_accuracy(size=args.heldout, samples=args.eval_samples, seed=0)
    out["seconds"], out["cpu_seconds"] = time.perf_counter() - start, time.process_time() - cpu
    return out


def iterate(agent: Any, venv: Any) -> tuple[Any, dict[str, float]]:
    """One training iteration of a row: sample and score the groups, update, count."""
    roll = agent.rollout()
    info = agent.update(roll)
    agent.num_timesteps += venv.num_envs
    agent.iteration += 1
    return roll, info


def run_one(args: argparse.Namespace, signal: str, family: str, level: int, seed: int, before: dict) -> dict:
    import numpy as np

    agent, venv = build(args, signal, family, level, seed)
    key = f"{family}:{level}"
    if key not in before:  # the untrained model's figures are the same for every row and seed
        before[key] = evaluate(agent, args)
    steps, cpu_steps, train_reward, train_acc, metrics = [], [], [], [], []
    for it in range(args.iterations):
        start, cpu = time.perf_counter(), time.process_time()
        roll, info = iterate(agent, venv)
        steps.append(time.perf_counter() - start)
        cpu_steps.append(time.process_time() - cpu)  # the work itself: what a budget on a quiet machine scales with
        train_reward.append(float(np.mean(roll.returns)))
        train_acc.append(float(np.mean(roll.correct)))
        logged = {k: float(v) for m in agent.reward_modules for k, v in getattr(m, "last_metrics", {}).items()}
        metrics.append({**logged, **{f"train/{k}": float(v) for k, v in info.items()}, "temperature": agent.policy.temperature})
        print(f"  [{signal} {key} seed {seed}] it {it + 1}/{args.iterations}: reward {train_reward[-1]:.3f} "
              f"train-acc {train_acc[-1]:.3f} {steps[-1]:.1f} s ({cpu_steps[-1]:.1f} CPU-s)", flush=True)
    after = evaluate(agent, args)
    venv.close()
    b = before[key]
    return {"signal": signal, "family": key, "seed": seed, "uses_labels": bool(SIGNALS[signal].get("labels")),
            "device": str(agent.policy.device), "dtype": str(agent.policy.dtype).replace("torch.", ""),
            "greedy_before": b["greedy"], "greedy_after": after["greedy"],
            "sampled_before": b.get("sampled"), "sampled_after": after.get("sampled"),
            "train_reward": train_reward, "train_accuracy": train_acc, "iteration_metrics": metrics,
            "s_per_iteration": steps, "cpu_s_per_iteration": cpu_steps, "eval_s": after["seconds"],
            "eval_cpu_s": after["cpu_seconds"], "before_eval_s": b["seconds"], "loadavg": os.getloadavg()}


def summarise(runs: list[dict], reps: int = 2000) -> dict[str, dict]:
    """Per signal: the gain (after - before) in greedy and sampled accuracy, mean with its 95%
    stratified-bootstrap interval over a (seeds x families) matrix (selfgym/compare.py), and a verdict."""
    import numpy as np

    from selfgym.compare import interval_estimates

    out: dict[str, dict] = {}
    for signal in dict.fromkeys(r["signal"] for r in runs):
        rows = [r for r in runs if r["signal"] == signal]
        families = sorted({r["family"] for r in rows})
        entry: dict[str, Any] = {"families": families, "uses_labels": rows[0]["uses_labels"]}
        for metric in ("greedy", "sampled"):
            if any(r[f"{metric}_after"] is None for r in rows):
                continue
            per_family = [[r[f"{metric}_after"] - r[f"{metric}_before"] for r in rows if r["family"] == f] for f in families]
            n = min(len(v) for v in per_family)
            if n == 0:
                continue
            matrix = np.array([v[:n] for v in per_family]).T  # (seeds, families)
            est = interval_estimates(matrix, reps, seed=0) if n > 1 else {"mean": float(matrix.mean()), "mean_ci": [math.nan, math.nan]}
            lo, hi = est["mean_ci"]
            verdict = "rose" if lo > 0 else "fell" if hi < 0 else "no change shown"
            entry[metric] = {"gain": est["mean"], "ci95": [lo, hi], "verdict": verdict, "seeds": n,
                             "after": float(np.mean([r[f"{metric}_after"] for r in rows]))}
        out[signal] = entry
    return out


def mean(values: list[float]) -> float:
    return sum(values) / max(len(values), 1)


def write_table(result: dict, path: Path) -> None:
    summary, cfg = result["summary"], result["config"]
    ceiling = summary.get("verifier", {})
    devices = sorted({f"{r['device']} {r['dtype']}" for r in result["runs"] if "device" in r})  # older runs did not record it
    ran_on = f"Ran on {', '.join(devices)}; " if devices else ""
    lines = [f"# Self-generated signals on TextReasoning ({', '.join(cfg['families'])}), {cfg['model']}", "",
             f"`{result['command']}`", "",
             f"{ran_on}{cfg['iterations']} iterations of {cfg['prompts']} x {cfg['group_size']} completions per run; held-out: "
             f"{cfg['heldout']} questions, greedy and avg@{cfg['eval_samples']} at T={cfg['temperature']}. "
             "Gain = after - before; 95% stratified-bootstrap interval over seeds x families (selfgym/compare.py).", "",
             "| signal | labels | greedy gain (95% CI) | greedy | sampled gain (95% CI) | sampled | verifier ceiling after (greedy / sampled) |",
             "|---|---|---|---|---|---|---|"]

    def cell(entry: dict, metric: str) -> tuple[str, str]:
        if metric not in entry:
            return "n/a", "n/a"
        e = entry[metric]
        return f"{e['gain']:+.3f} [{e['ci95'][0]:+.3f}, {e['ci95'][1]:+.3f}]", e["verdict"]

    ceil = " / ".join(f"{ceiling[m]['after']:.3f}" if m in ceiling else "n/a" for m in ("greedy", "sampled"))
    for signal, entry in summary.items():
        (g, gv), (s, sv) = cell(entry, "greedy"), cell(entry, "sampled")
        lines.append(f"| {signal} | {'yes' if entry['uses_labels'] else 'no'} | {g} | {gv} | {s} | {sv} | {ceil} |")
    lines += ["", "| signal | family | seed | greedy before -> after | sampled before -> after | s/iteration (CPU-s) | eval s (CPU-s) | load |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        sampled = f"{r['sampled_before']:.3f} -> {r['sampled_after']:.3f}" if r["sampled_after"] is not None else "n/a"
        lines.append(f"| {r['signal']} | {r['family']} | {r['seed']} | {r['greedy_before']:.3f} -> {r['greedy_after']:.3f} | "
                     f"{sampled} | {mean(r['s_per_iteration']):.1f} ({mean(r['cpu_s_per_iteration']):.1f}) | "
                     f"{r['eval_s']:.0f} ({r['eval_cpu_s']:.0f}) | {r['loadavg'][0]:.1f} |")
    lines += guard_lines(result["runs"])
    path.write_text("\n".join(lines) + "\n")


#: the protocol's collapse rule: over the last COLLAPSE_WINDOW iterations the vote pays >= 0.75 while the
#: verifier (monitoring only) finds <= 0.10 correct
COLLAPSE_WINDOW, COLLAPSE_REWARD, COLLAPSE_ACCURACY = 5, 0.75, 0.10


def collapsed(run: dict) -> bool:
    """Consensus on wrong answers, by the protocol's rule (decided before the run)."""
    reward, accuracy = run["train_reward"][-COLLAPSE_WINDOW:], run["train_accuracy"][-COLLAPSE_WINDOW:]
    return mean(reward) >= COLLAPSE_REWARD and mean(accuracy) <= COLLAPSE_ACCURACY


def guard_lines(runs: list[dict]) -> list[str]:
    """The guard's verdict (item 2): did a majority_vote run collapse, and did the guarded row?"""
    votes = [r for r in runs if r["signal"] in ("majority_vote", "majority_vote_guard") and r.get("train_reward")]
    if not votes:
        return []
    lines = ["", f"Consensus guard (protocol rule: collapsed if over the last {COLLAPSE_WINDOW} iterations the mean "
             f"training reward is >= {COLLAPSE_REWARD} while the verifier's training accuracy is <= {COLLAPSE_ACCURACY}):", "",
             "| signal | family | seed | last-5 reward | last-5 accuracy | collapsed | guard fired at iterations |",
             "|---|---|---|---|---|---|---|"]
    for r in votes:
        fired = [str(i + 1) for i, m in enumerate(r.get("iteration_metrics", [])) if m.get("guard_active", 0) > 0]
        lines.append(f"| {r['signal']} | {r['family']} | {r['seed']} | {mean(r['train_reward'][-COLLAPSE_WINDOW:]):.3f} | "
                     f"{mean(r['train_accuracy'][-COLLAPSE_WINDOW:]):.3f} | {'yes' if collapsed(r) else 'no'} | "
                     f"{', '.join(fired) if r['signal'] == 'majority_vote_guard' else ''}{'none' if r['signal'] == 'majority_vote_guard' and not fired else ''} |")
    plain = [collapsed(r) for r in votes if r["signal"] == "majority_vote"]
    guarded = [collapsed(r) for r in votes if r["signal"] == "majority_vote_guard"]
    if not any(plain):
        verdict = "no majority_vote run collapsed: no collapse to prevent in this study"
    elif guarded and not any(guarded):
        verdict = "the guard prevented collapse"
    else:
        verdict = "the guard did not prevent collapse"
    return lines + ["", f"Verdict: {verdict} ({sum(plain)} of {len(plain)} majority_vote runs, "
                        f"{sum(guarded)} of {len(guarded)} majority_vote_guard runs collapsed)."]


#: settings that do not change what a study measures: may differ between a study's processes and restarts
BOOKKEEPING = ("seeds", "out", "merge", "tables_only", "reps")


def merge(paths: list[Path], out: Path, reps: int) -> None:
    """One study from per-process result files: their runs joined, summarised and tabled."""
    parts = [json.loads(path.read_text()) for path in paths]
    configs = [{k: v for k, v in part["config"].items() if k not in BOOKKEEPING} for part in parts]
    if any(c != configs[0] for c in configs[1:]):
        raise SystemExit(f"--merge: {', '.join(map(str, paths))} were run with different settings; not one study")
    result = {"command": " ".join(["python"] + sys.argv), "commands": [part["command"] for part in parts],
              "config": {**parts[0]["config"], "seeds": sorted({r["seed"] for part in parts for r in part["runs"]})},
              "runs": [r for part in parts for r in part["runs"]], "before": parts[0]["before"],
              "failed": [f for part in parts for f in part.get("failed", [])]}
    write_result(result, out, reps)
    print(out.with_suffix(".md").read_text())


def write_result(result: dict, out: Path, reps: int) -> None:
    """The summary, then the json and its .md table, each replaced atomically (a kill mid-write keeps the last one)."""
    from selfgym.runs import atomic_write

    result["summary"] = summarise(result["runs"], reps) if result["runs"] else {}
    atomic_write(out, json.dumps(result, indent=1))
    table = out.with_suffix(".md")
    write_table(result, table)
    if result.get("failed"):
        atomic_write(table, table.read_text() + "\nFailed runs (not in the table): " + "; ".join(
            f"{f['signal']} {f['family']} seed {f['seed']}: {f['error'][:200]}" for f in result["failed"]) + "\n")


def resume(out: Path, config: dict) -> dict | None:
    """The study already in ``out`` when it was run with the same settings (its runs are kept and skipped)."""
    if not out.exists():
        return None
    try:
        earlier = json.loads(out.read_text())
    except ValueError:
        raise SystemExit(f"{out} exists but is not readable json; move it away or choose another --out") from None
    mine = {k: v for k, v in config.items() if k not in BOOKKEEPING}
    theirs = {k: v for k, v in earlier.get("config", {}).items() if k not in BOOKKEEPING}
    if mine != theirs:
        differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        raise SystemExit(f"{out} holds a study run with other settings ({', '.join(differ)} differ); "
                         "choose another --out or move it away")
    return earlier


def check_device_and_model(p: argparse.ArgumentParser, device: str, model: str) -> None:
    """Refuse a device torch does not know or cannot reach, and a model folder that does not exist,
    before any run (each run would otherwise fail on its own with the same error)."""
    if device not in ("auto", "cpu"):
        import torch

        try:
            kind = torch.device(device).type
        except RuntimeError:
            p.error(f"--device {device!r} is not a torch device; valid: auto, cpu, cuda, cuda:N")
        if kind == "cuda" and not torch.cuda.is_available():
            p.error(f"--device {device!r}: torch {torch.__version__} sees no CUDA device (use auto or cpu)")
    if model.startswith((".", "/", "~")) and not Path(model).expanduser().is_dir():
        p.error(f"--model {model!r} is not a folder (give a local model folder with config.json, or 'default')")


def make_parser() -> argparse.ArgumentParser:
    """The study's flags and defaults (benchmarks/gpu_check.py builds its rows from them too)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--signals", nargs="+", default=list(SIGNALS), help=f"rows, from: {', '.join(SIGNALS)}")
    p.add_argument("--families", nargs="+", default=["arithmetic:1", "word:1"])
    p.add_argument("--seeds", type=int, nargs="+", default=[301, 302, 303])
    p.add_argument("--iterations", type=int, default=None, help="per run (default 12; 2 with --pilot)")
    p.add_argument("--prompts", type=int, default=2)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--train-batch-size", type=int, default=16)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--heldout", type=int, default=200)
    p.add_argument("--eval-samples", type=int, default=4)
    p.add_argument("--model", default="default", help="'default' (SmolLM2-135M-Instruct) or a local model folder")
    p.add_argument("--device", default="auto", help="auto (CUDA with bf16 when available, else CPU fp32), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--guard-floor", type=float, default=0.5, help="the consensus guard's floor (majority_vote_guard row)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples of the intervals")
    p.add_argument("--pilot", action="store_true", help="timing pilot: 20 questions, 2 samples, first seed")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="no training: join the runs of these result files (one process per seed) into --out and its table")
    p.add_argument("--tables-only", action="store_true", help="no training: rewrite --out's summary and .md table")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/self_rewarding.json"))
    return p


def main(argv: list[str] | None = None) -> None:
    p = make_parser()
    args = p.parse_args(argv)
    if args.merge:
        merge([Path(f) for f in args.merge], Path(args.out), args.reps)
        return
    if args.tables_only:
        write_result(json.loads(Path(args.out).read_text()), Path(args.out), args.reps)
        print(Path(args.out).with_suffix(".md").read_text())
        return
    unknown = [s for s in args.signals if s not in SIGNALS]
    if unknown:
        p.error(f"unknown signal(s) {unknown}; valid: {', '.join(SIGNALS)}")
    if args.pilot:
        args.heldout, args.eval_samples, args.seeds = 20, 2, args.seeds[:1]
    if args.iterations is None:
        args.iterations = 2 if args.pilot else 12
    for flag, value in (("--iterations", args.iterations), ("--heldout", args.heldout), ("--group-size", args.group_size)):
        if value < 1:
            p.error(f"{flag} must be >= 1, got {value}")
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        p.error(f"--temperature must be finite and > 0, got {args.temperature}")
    check_device_and_model(p, args.device, args.model)
    families = [parse_family(f) for f in args.families]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"command": " ".join(["python"] + sys.argv), "config": vars(args), "runs": [], "before": {},
                              "failed": []}
    earlier = resume(out, vars(args))
    if earlier is not None:
        result.update(runs=earlier["runs"], before=earlier.get("before", {}),
                      commands=[*earlier.get("commands", [earlier["command"]]), result["command"]])
        print(f"resuming {out}: {len(result['runs'])} runs already there are kept", flush=True)
    done = {(r["signal"], r["family"], r["seed"]) for r in result["runs"]}
    for family, level in families:  # families outermost: an interrupted study has whole families
        for seed in args.seeds:
            for signal in args.signals:
                if (signal, f"{family}:{level}", seed) in done:
                    continue
                print(f"run: {signal} {family}:{level} seed {seed}", flush=True)
                try:
                    result["runs"].append(run_one(args, signal, family, level, seed, result["before"]))
                except Exception as error:  # recorded, and the study goes on; a rerun retries it
                    result["failed"].append({"signal": signal, "family": f"{family}:{level}", "seed": seed,
                                             "error": f"{type(error).__name__}: {error}"[-2000:]})
                    print(f"  FAILED: {result['failed'][-1]['error']}", flush=True)
                write_result(result, out, args.reps)
    write_result(result, out, args.reps)  # also when a restart found every run done: its command is recorded
    print(out.with_suffix(".md").read_text())
    if result["failed"]:
        raise SystemExit(f"{len(result['failed'])} runs failed (listed in {out}); rerun the same command to retry them")


if __name__ == "__main__":
    main()
