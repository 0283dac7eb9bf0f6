"""Where can a majority-vote reward help? Per task family, the untrained default model's
held-out accuracy three ways: greedy, sampled (mean over k samples per question: pass@1 as
TTRL reports it, avg@k) and the majority of the k stated answers (maj@k).

TTRL's reasoning: majority-vote training moves the policy toward its own majority answer, so
it can raise sampled accuracy up to about maj@k; where maj@k is no better than avg@k there is
nothing for the vote to teach. ``no stated answer`` is the fraction of samples that do not
vote (see ``selfgym.envs.text.tasks.stated_answer``).

    python benchmarks/llm_heldout_profile.py --families arithmetic:1 word:1 --questions 50 --samples 8

Writes benchmarks/results/llm_heldout_profile.{json,md} (or --out).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def profile(family: str, level: int, args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from selfgym import agents
    import selfgym  # noqa: F401  (registers the selfgym/ ids)
    from selfgym.envs.text.tasks import stated_answer
    from selfgym.rewards.llm import MajorityVoteReward
    from selfgym.env_factory import make_vec_env

    venv = make_vec_env("selfgym/TextReasoning-v0", 8, 0, {"task": family, "level": level, "split": "test",
                                                            "test_size": args.questions})
    hp = dict(model="default", group_size=8, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
              heldout_size=args.questions, eval_every=0)
    agent = agents.make_agent("grpo", venv, hp, device=args.device, seed=0, logger=None)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    tasks, greedy = agent.heldout_completions(samples=0)
    _, sampled = agent.heldout_completions(samples=args.samples, seed=args.seed)
    vote = MajorityVoteReward(family=family, tie_break="first")
    greedy_ok = [ok[0] for ok in agent.heldout_correct(tasks, greedy)]
    avg_ok = [np.mean(ok) for ok in agent.heldout_correct(tasks, sampled)]
    silent, labels = [], []
    for cs in sampled:
        answers = [stated_answer(family, c) for c in cs]
        silent.append(np.mean([a is None for a in answers]))
        label = vote.labels(answers, [0] * len(cs))[0]
        labels.append([next(iter(label))] if label else [])  # no label: nothing to score, counts as wrong
    maj_ok = [any(ok) for ok in agent.heldout_correct(tasks, labels)]
    venv.close()
    return {"family": family, "level": level, "questions": len(tasks), "greedy": float(np.mean(greedy_ok)),
            "avg_at_k": float(np.mean(avg_ok)), "maj_at_k": float(np.mean(maj_ok)),
            "no_stated_answer": float(np.mean(silent)), "seconds": time.perf_counter() - start,
            "examples": [{"question": t["question"], "target": t["target"], "greedy": g[0], "samples": cs[:4]}
                         for t, g, cs in list(zip(tasks, greedy, sampled))[:3]]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--families", nargs="+", default=["arithmetic:1", "word:1", "list:1", "logic:1", "countdown:1"],
                   help="family:level pairs")
    p.add_argument("--questions", type=int, default=50, help="first N questions of the fixed held-out set")
    p.add_argument("--samples", type=int, default=8, help="k of avg@k and maj@k")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/llm_heldout_profile.json"))
    args = p.parse_args()
    if args.samples < 1 or args.questions < 1 or not (math.isfinite(args.temperature) and args.temperature > 0):
        p.error(f"--samples and --questions must be >= 1 and --temperature finite and > 0, got "
                f"{args.samples}, {args.questions}, {args.temperature}")
    specs = [spec.partition(":")[::2] for spec in args.families]
    if any(not level.isdigit() for _, level in specs if level):
        p.error(f"--families takes family:level pairs with a whole-number level, got {args.families}")
    import torch

    torch.set_num_threads(args.threads)
    result = {"command": " ".join(["python"] + sys.argv), "config": vars(args), "families": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for family, level in specs:
        row = profile(family, int(level or 1), args)
        print(f"{family}:{row['level']}  greedy {row['greedy']:.3f}  avg@{args.samples} {row['avg_at_k']:.3f}  "
              f"maj@{args.samples} {row['maj_at_k']:.3f}  no stated answer {row['no_stated_answer']:.2f}  "
              f"({row['seconds']:.0f} s)", flush=True)
        result["families"].append(row)
        out.write_text(json.dumps(result, indent=1))
    k = args.samples
    lines = ["# Untrained SmolLM2-135M-Instruct on the held-out sets: greedy, avg@k, maj@k", "",
             f"`{result['command']}`", "",
             f"| family:level | questions | greedy | avg@{k} (T={args.temperature}) | maj@{k} | no stated answer | s |",
             "|---|---|---|---|---|---|---|"]
    for r in result["families"]:
        lines.append(f"| {r['family']}:{r['level']} | {r['questions']} | {r['greedy']:.3f} | {r['avg_at_k']:.3f} | "
                     f"{r['maj_at_k']:.3f} | {r['no_stated_answer']:.2f} | {r['seconds']:.0f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
