"""CalendarConflict-v0: the default LLM (SmolLM2-135M-Instruct) zero-shot and with the StrategyHub.

    OMP_NUM_THREADS=1 python benchmarks/calendar_llm_baselines.py --users 3 --rounds 16

Companion of benchmarks/calendar_baselines.py (same env defaults: M=5, N=104, W=5, test users of
data_seed 0). A 135M model on a shared 2-core CPU decodes a few tokens per second over ~1,100-token
prompts, so only a subset is played: the first ``--users`` test users, the first ``--rounds`` of their
N=104 rounds (the episode keeps N=104, so conflicts and the prompt's "Round t of 104" are those of
the full benchmark). The random baseline (full random rankings) is computed on the SAME subset.

* ``zero-shot``: the text env with ``hub_turns=0``: every answer is the round's decision (a hub call
  counts as a format failure, as the env scores it).
* ``+ StrategyHub``: the env default ``hub_turns=3``: the model's answer is passed to the env as is;
  a hub call (``{"action": "list"}``/``{"action": "update", ...}``) does not end the round, the next
  prompt shows the tool result and the hub's strategies, and the model answers again (at most 3 hub
  calls per round; the 4th answer must be a decision).

Greedy decoding; the users' envs run in lockstep and their prompts are decoded as one batch. The
answer is scored by the env's own parser: unparsable or malformed answers are format failures
(error 1, ORD 0). Writes benchmarks/results/calendar_llm_baselines.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from selfgym.envs.calendar.env import CalendarConflictEnv
from selfgym.envs.calendar.metrics import summarize
from selfgym.envs.calendar.text import is_hub_call
from selfgym.envs.text.spaces import as_text

RESULTS = Path(__file__).resolve().parent / "results"


def subset_summary(envs: list[CalendarConflictEnv], rounds: int, fmt_fail: list[int]) -> dict[str, Any]:
    """Metrics over the first ``rounds`` rounds of each env's episode (quarters of that subset)."""
    eps = [{"user_id": e.data.user.user_id, "per_round_error": e.errors[:rounds].tolist(),
            "per_round_ord": e.ords[:rounds].tolist()} for e in envs]
    s = summarize(eps)
    s["format_failure_rate"] = float(sum(fmt_fail) / (rounds * len(envs)))
    return s


def run_random(users: list[int], rounds: int, seed: int) -> dict[str, Any]:
    """Uniformly random full rankings on the same users and rounds (the table's random row)."""
    rng = np.random.default_rng(seed)
    envs = []
    for uid in users:
        env = CalendarConflictEnv(split="test")
        env.reset(options={"user_id": uid})
        for _ in range(rounds):
            env.step([int(k) for k in rng.permutation(env.m)])
        envs.append(env)
    return subset_summary(envs, rounds, [0] * len(users))


def run_llm(policy: Any, users: list[int], rounds: int, hub_turns: int, max_new_tokens: int,
            log_answers: int = 4) -> dict[str, Any]:
    """Play ``rounds`` rounds per user in lockstep; one batched greedy generate call per iteration."""
    envs = [CalendarConflictEnv(obs_mode="text", split="test", hub_turns=hub_turns) for _ in users]
    obs = [as_text(env.reset(options={"user_id": uid})[0]) for env, uid in zip(envs, users)]
    fmt_fail = [0] * len(users)
    used_hub = [False] * len(users)  # a valid hub call in the current round
    hub = {"calls": 0, "valid_calls": 0, "list": 0, "update": 0, "rounds_with_valid_call": 0}
    stats = {"generate_calls": 0, "prompt_tokens": 0, "new_tokens": 0, "generate_s": 0.0, "max_prompt_tokens": 0}
    messages: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    while True:
        active = [i for i, env in enumerate(envs) if env.t < rounds]
        if not active:
            break
        t0 = time.perf_counter()
        samples = policy.sample([obs[i] for i in active], greedy=True, max_new_tokens=max_new_tokens)
        dt = time.perf_counter() - t0
        plen = samples.prompt_mask.sum(1)
        stats["generate_calls"] += 1
        stats["prompt_tokens"] += int(plen.sum())
        stats["max_prompt_tokens"] = max(stats["max_prompt_tokens"], int(plen.max()))
        stats["new_tokens"] += int(samples.lengths.sum())
        stats["generate_s"] += dt
        for i, text in zip(active, samples.texts):
            env = envs[i]
            t_before = env.t
            next_obs, _, _, _, info = env.step(text)
            obs[i] = as_text(next_obs)
            fb = info["feedback"]
            if fb["hub_step"]:
                hub["calls"] += 1
                hub["valid_calls"] += int(fb["valid"])
                action = str((is_hub_call(text) or {}).get("action"))
                key = action if action in ("list", "update") else "other"
                hub[key] = hub.get(key, 0) + 1
                if fb["valid"] and not used_hub[i]:
                    hub["rounds_with_valid_call"] += 1
                used_hub[i] = used_hub[i] or fb["valid"]
            else:
                used_hub[i] = False
                if not fb["valid"]:
                    fmt_fail[i] += 1
                    key = info["message"].split(":")[0][:60]
                    messages[key] = messages.get(key, 0) + 1
            if (i == 0 and t_before < log_answers) or (fb["hub_step"] and len(examples) < 3 * log_answers):
                examples.append({"user": users[i], "round": t_before + 1, "answer": text[:300],
                                 "hub_step": fb["hub_step"], "valid": fb["valid"], "message": info["message"][:120]})
        done = sum(min(e.t, rounds) for e in envs)
        print(f"  [{time.perf_counter() - t_start:6.0f}s] batch {len(active)}, prompt <= {int(plen.max())} tok, "
              f"{int(samples.lengths.sum())} new tok in {dt:.1f}s; rounds done {done}/{rounds * len(envs)}; "
              f"format failures {sum(fmt_fail)}; hub calls {hub['calls']}", flush=True)
    s = subset_summary(envs, rounds, fmt_fail)
    s["wall_s"] = time.perf_counter() - t_start
    s["generation"] = stats | {"new_tokens_per_s": stats["new_tokens"] / max(stats["generate_s"], 1e-9),
                               "prompt_tokens_per_s": stats["prompt_tokens"] / max(stats["generate_s"], 1e-9)}
    s["hub"] = hub
    s["hub_strategies_at_end"] = {str(u): list(e.hub.strategies) for u, e in zip(users, envs)}
    s["format_failure_messages"] = messages
    s["example_answers"] = examples
    return s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=3, help="the first K test users (data_seed 0, 100 users)")
    p.add_argument("--rounds", type=int, default=16, help="the first R of each user's N=104 rounds")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--model", default="default")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--modes", default="zero-shot,hub", help="comma list of: zero-shot, hub")
    p.add_argument("--out", default=str(RESULTS / "calendar_llm_baselines"))
    a = p.parse_args()
    from selfgym.llm.policy import LLMPolicy

    users = CalendarConflictEnv(split="test").user_ids[: a.users]
    report: dict[str, Any] = {
        "settings": {"n_events": 5, "n_rounds": 104, "window": 5, "split": "test", "n_users": 100, "data_seed": 0,
                     "users": users, "rounds_played": a.rounds, "max_new_tokens": a.max_new_tokens,
                     "decoding": "greedy", "model": a.model, "torch_threads": a.threads},
        "load_before": os.getloadavg()}
    t0 = time.perf_counter()
    policy = LLMPolicy(a.model, device="cpu", num_threads=a.threads, max_new_tokens=a.max_new_tokens)
    report["model_load_s"] = time.perf_counter() - t0
    results = {"random (same subset)": run_random(users, a.rounds, seed=0)}
    for mode in a.modes.split(","):
        name = {"zero-shot": "SmolLM2-135M-Instruct zero-shot (hub_turns=0)",
                "hub": "SmolLM2-135M-Instruct + StrategyHub (hub_turns=3)"}[mode]
        print(name, flush=True)
        results[name] = run_llm(policy, users, a.rounds, 0 if mode == "zero-shot" else 3, a.max_new_tokens)
        r = results[name]
        print(f"{name}: AER {r['aer']:.3f} ORD {r['ord']:.3f} format failures {r['format_failure_rate']:.3f} "
              f"Q1 {r['error_first_quarter']:.3f} Q4 {r['error_last_quarter']:.3f} ({r['wall_s']:.0f}s, "
              f"{r['generation']['new_tokens_per_s']:.1f} new tok/s)", flush=True)
        report["results"] = results
        report["load_after"] = os.getloadavg()
        out = Path(a.out)  # written after every mode: a timeout still leaves the finished rows
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(report, indent=1))
        out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    q = max(1, s["rounds_played"] // 4)
    lines = [f"CalendarConflict-v0 LLM baselines, M={s['n_events']}, N={s['n_rounds']}, W={s['window']}: subset = "
             f"{len(s['users'])} test users {s['users']} x the first {s['rounds_played']} rounds (quarters of "
             f"{q} rounds); greedy, max {s['max_new_tokens']} new tokens, model {s['model']}, CPU, "
             f"{s['torch_threads']} torch thread. Full-episode baselines: calendar_baselines.md.",
             "", "| agent | AER | format failures | ORD | error Q1 | error Q4 | hub calls (valid) | wall s | new tok/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["results"].items():
        hub = f"{r['hub']['calls']} ({r['hub']['valid_calls']})" if "hub" in r else "-"
        gen = f"{r['generation']['new_tokens_per_s']:.1f}" if "generation" in r else "-"
        wall = f"{r['wall_s']:.0f}" if "wall_s" in r else "-"
        lines.append(f"| {name} | {r['aer']:.3f} | {r['format_failure_rate']:.3f} | {r['ord']:.3f} | "
                     f"{r['error_first_quarter']:.3f} | {r['error_last_quarter']:.3f} | {hub} | {wall} | {gen} |")
    lines += ["", f"Load average before/after: {report['load_before']} / {report.get('load_after')}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
