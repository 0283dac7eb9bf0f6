"""Label-free GRPO (TTRL majority-vote reward) vs the verifier-reward ceiling, from the default
SmolLM2-135M-Instruct, on one TextReasoning task family: held-out accuracy before/after over
seeds, plus sampling tokens/s and seconds per training step.

Held-out accuracy is measured greedily and, with ``--eval-samples K``, also as the mean over K
samples per question at the training temperature (pass@1 under sampling, TTRL's avg@K; the
same sampling seed before and after). ``--before PATH`` stores the untrained model's figures
(identical for every seed) so that parallel processes compute them once.

    python benchmarks/llm_ttrl.py --seeds 0 1 2 --iterations 20 [--eval-samples 4] [--device auto]

Writes benchmarks/results/llm_ttrl.json after every run (partial results survive an
interrupted benchmark) and llm_ttrl.md. Runs unchanged on CUDA (--device cuda).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


_BEFORE: dict[tuple, float] = {}


class _Hooks:
    def on_step(self, num_timesteps: int) -> bool:
        return True


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


# t(0.975, df) for df = 1..30; beyond that the normal quantile is within 2%.
_T975 = dict(enumerate([12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
                        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                        2.060, 2.056, 2.052, 2.048, 2.045, 2.042], start=1))


def mean_ci(values: list[float]) -> dict[str, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "ci95": float("nan"), "n": n}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = _T975.get(n - 1, 1.96)  # two-sided 95% Student-t quantile with n - 1 degrees of freedom
    return {"mean": mean, "ci95": t * sd / math.sqrt(n), "n": n}


def run_one(args: argparse.Namespace, reward: str, seed: int) -> dict:
    import numpy as np
    import torch

    from selfgym import agents
    import selfgym  # noqa: F401  (registers the selfgym/ ids)
    from selfgym import rewards
    from selfgym.config import load_hyperparams
    from selfgym.env_factory import make_vec_env

    env_id = "selfgym/TextReasoning-v0"
    hp = load_hyperparams("grpo", env_id)
    env_kwargs = dict(hp.pop("env_kwargs", {}))
    env_kwargs.update(task=args.task, level=args.level, test_size=args.heldout)
    for key in ("n_timesteps", "n_envs"):
        hp.pop(key, None)
    hp.update(group_size=args.group_size, max_new_tokens=args.max_new_tokens, heldout_size=args.heldout,
              eval_every=0, learning_rate=args.lr, train_batch_size=args.train_batch_size, temperature=args.temperature)
    venv = make_vec_env(env_id, args.prompts * args.group_size, seed, env_kwargs)
    modules = [] if reward == "env" else [rewards.make_reward(reward)]
    agent = agents.make_agent("grpo", venv, hp, device=args.device, seed=seed, logger=None, reward_modules=modules)
    torch.set_num_threads(args.threads)
    before = initial_heldout(agent, args)
    if args.iterations == 0:  # only the untrained model's figures (written to --before)
        venv.close()
        return {"reward": reward, "seed": seed, "heldout_before": before["greedy"], "sampled_before": before["sampled"]}
    steps, tokens, sample_s, rewards_seen, correct_seen, groups = [], 0, 0.0, [], [], []
    for it in range(args.iterations):
        start = time.perf_counter()
        roll = agent.rollout()
        agent.update(roll)
        agent.num_timesteps += venv.num_envs
        agent.iteration += 1
        steps.append(time.perf_counter() - start)
        tokens += roll.tokens
        sample_s += roll.sample_seconds
        rewards_seen.append(float(np.mean(roll.returns)))
        correct_seen.append(float(np.mean(roll.correct)))
        if args.dump_groups:  # what each group answered and was paid: shows reward hacking
            texts, G = roll.turns[-1].texts, args.group_size
            groups.append([{"iteration": it, "prompt": roll.prompts[-1][g * G], "completions": texts[g * G:(g + 1) * G],
                            "reward": roll.returns[g * G:(g + 1) * G].tolist(), "correct": roll.correct[g * G:(g + 1) * G].tolist()}
                           for g in range(len(texts) // G)])
        print(f"  [{reward} seed {seed}] it {it + 1}/{args.iterations}: reward {rewards_seen[-1]:.3f} "
              f"train-acc {correct_seen[-1]:.3f} {steps[-1]:.1f} s", flush=True)
    after = heldout(agent, args)
    n = args.heldout
    venv.close()
    sampled = {"sampled_before": before["sampled"], "sampled_after": after["sampled"]} if args.eval_samples else {}
    return {
        "reward": reward, "seed": seed, "heldout_before": before["greedy"], "heldout_after": after["greedy"], **sampled,
        "after_wilson95": wilson(round(after["greedy"] * n), n), "train_reward": rewards_seen, "train_accuracy": correct_seen,
        "s_per_step": sum(steps) / len(steps), "sample_tokens_per_s": tokens / max(sample_s, 1e-9),
        "loadavg": os.getloadavg(), **({"groups": groups} if args.dump_groups else {}),
    }


def heldout(agent, args: argparse.Namespace) -> dict[str, float | None]:
    """Greedy held-out accuracy and, with --eval-samples, the sampled one (fixed sampling seed)."""
    sampled = agent.heldout_accuracy(samples=args.eval_samples, seed=0) if args.eval_samples else None
    return {"greedy": agent.heldout_accuracy(), "sampled": sampled}


def initial_heldout(agent, args: argparse.Namespace) -> dict[str, float | None]:
    """The untrained model's figures: the same for every seed, so computed once per process, or
    once in all when --before names a file (read when its settings match, else written)."""
    settings = {k: getattr(args, k) for k in ("task", "level", "heldout", "eval_samples", "temperature", "max_new_tokens")}
    key = tuple(settings.values())
    if key not in _BEFORE:
        path = Path(args.before) if args.before else None
        stored = read_before(path) if path is not None and path.exists() else None
        if stored is not None:
            if stored["settings"] != settings:  # never overwrite another configuration's figures
                raise SystemExit(f"--before {path} holds figures for {stored['settings']}, not for {settings}; "
                                 "name another file")
            _BEFORE[key] = stored["heldout"]
        else:
            _BEFORE[key] = heldout(agent, args)
            if path is not None:
                path.write_text(json.dumps({"settings": settings, "heldout": _BEFORE[key]}, indent=1))
    return _BEFORE[key]


def read_before(path: Path) -> dict:
    """A --before file this script wrote, or a clear exit (it is never overwritten)."""
    try:
        stored = json.loads(path.read_text())
    except ValueError as exc:
        stored, why = None, f"not JSON: {exc}"
    else:
        why = "no 'settings' and 'heldout' keys"
    if not isinstance(stored, dict) or not {"settings", "heldout"} <= stored.keys():
        raise SystemExit(f"--before {path} is not a file this script wrote ({why}); move it away or name another file")
    return stored


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rewards", nargs="+", default=["majority_vote", "verifier"])
    p.add_argument("--task", default="arithmetic")
    p.add_argument("--level", type=int, default=1)
    p.add_argument("--iterations", type=int, default=20, help="0: only evaluate the untrained model (fills --before)")
    p.add_argument("--prompts", type=int, default=2, help="prompts per step")
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--train-batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--heldout", type=int, default=50)
    p.add_argument("--eval-samples", type=int, default=0, help="K: also measure held-out accuracy as the mean over K samples")
    p.add_argument("--before", default=None, help="json file holding the untrained model's held-out figures (read or written)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--dump-groups", action="store_true", help="store every group's completions, rewards and correctness")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/llm_ttrl.json"))
    args = p.parse_args()
    for flag, value, ok in (("--iterations", args.iterations, args.iterations >= 0),
                            ("--eval-samples", args.eval_samples, args.eval_samples >= 0),
                            ("--heldout", args.heldout, args.heldout >= 1),
                            ("--temperature", args.temperature, math.isfinite(args.temperature) and args.temperature > 0)):
        if not ok:
            p.error(f"{flag} got {value}: iterations and eval samples must be >= 0, heldout >= 1, temperature finite and > 0")
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"command": " ".join(["python"] + sys.argv), "config": vars(args), "runs": []}
    for seed in args.seeds:
        for reward in args.rewards:
            print(f"run: reward={reward} seed={seed}", flush=True)
            result["runs"].append(run_one(args, reward, seed))
            if args.iterations:
                summarise(result)
            out.write_text(json.dumps(result, indent=1))
    if not args.iterations:
        print(json.dumps(result["runs"], indent=1))
        return
    print(json.dumps(result["summary"], indent=1))
    write_table(result, out.with_suffix(".md"))


def summarise(result: dict) -> None:
    summary = {}
    for reward in {r["reward"] for r in result["runs"]}:
        runs = [r for r in result["runs"] if r["reward"] == reward]
        summary[reward] = {
            "heldout_before": mean_ci([r["heldout_before"] for r in runs]),
            "heldout_after": mean_ci([r["heldout_after"] for r in runs]),
            "gain": mean_ci([r["heldout_after"] - r["heldout_before"] for r in runs]),
            **({"sampled_before": mean_ci([r["sampled_before"] for r in runs]),
                "sampled_after": mean_ci([r["sampled_after"] for r in runs]),
                "sampled_gain": mean_ci([r["sampled_after"] - r["sampled_before"] for r in runs])}
               if all("sampled_after" in r for r in runs) else {}),
            "s_per_step": mean_ci([r["s_per_step"] for r in runs]),
            "sample_tokens_per_s": mean_ci([r["sample_tokens_per_s"] for r in runs]),
        }
    result["summary"] = summary


def write_table(result: dict, path: Path) -> None:
    cfg = result["config"]
    lines = [f"# GRPO on TextReasoning ({cfg['task']} level {cfg['level']}), SmolLM2-135M-Instruct",
             "", f"`{result['command']}`", "",
             "| reward | seeds | held-out before | held-out after | gain (95% CI) | s/step | sampling tok/s |",
             "|---|---|---|---|---|---|---|"]
    for reward, s in result["summary"].items():
        lines.append(f"| {reward} | {s['gain']['n']} | {s['heldout_before']['mean']:.3f} | {s['heldout_after']['mean']:.3f} | "
                     f"{s['gain']['mean']:+.3f} ± {s['gain']['ci95']:.3f} | {s['s_per_step']['mean']:.1f} | {s['sample_tokens_per_s']['mean']:.1f} |")
    lines += ["", "Per run (held-out greedy accuracy on the same fixed set; Wilson 95% interval of the after value):", "",
              "| reward | seed | before | after (95% CI) | s/step | sampling tok/s | load avg |", "|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        lo, hi = r["after_wilson95"]
        lines.append(f"| {r['reward']} | {r['seed']} | {r['heldout_before']:.3f} | {r['heldout_after']:.3f} ({lo:.2f}-{hi:.2f}) | "
                     f"{r['s_per_step']:.1f} | {r['sample_tokens_per_s']:.1f} | {r['loadavg'][0]:.1f} |")
    if cfg.get("eval_samples"):
        k = cfg["eval_samples"]
        lines += ["", f"Sampled held-out accuracy (mean over {k} samples per question at T={cfg['temperature']}, TTRL's avg@{k}):", "",
                  "| reward | seeds | before | after | gain (95% CI) |", "|---|---|---|---|---|"]
        for reward, s in result["summary"].items():
            if "sampled_gain" in s:
                lines.append(f"| {reward} | {s['sampled_gain']['n']} | {s['sampled_before']['mean']:.3f} | {s['sampled_after']['mean']:.3f} | "
                             f"{s['sampled_gain']['mean']:+.3f} ± {s['sampled_gain']['ci95']:.3f} |")
        lines += ["", "| reward | seed | sampled before | sampled after |", "|---|---|---|---|"]
        lines += [f"| {r['reward']} | {r['seed']} | {r['sampled_before']:.3f} | {r['sampled_after']:.3f} |"
                  for r in result["runs"] if "sampled_after" in r]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
