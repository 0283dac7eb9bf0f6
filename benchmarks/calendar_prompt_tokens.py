"""CalendarConflict-v0: tokens per round of the text observation, verbose vs compact.

    OMP_NUM_THREADS=1 python benchmarks/calendar_prompt_tokens.py --users 15 --rounds 104

Counts, with the default model's tokenizer (SmolLM2-135M-Instruct, offline), the tokens of the
prompt the LLM policy is fed at each decision (chat template applied, as LLMPolicy.render does),
for every round of the first ``--users`` test users (data_seed 0, M=5, W=5, hub_turns=3, empty hub,
the agent always accepting event 0 so the history has feedback). Counting lives here, not in the
env: the env knows no tokenizer. Writes benchmarks/results/calendar_prompt_tokens.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from selfgym.envs.calendar.env import CalendarConflictEnv
from selfgym.envs.calendar.text import TEXT_STYLES
from selfgym.envs.text.spaces import as_text
from selfgym.llm.default_model import default_model_dir

RESULTS = Path(__file__).resolve().parent / "results"


def prompt_tokens(tokenizer: Any, style: str, users: list[int], rounds: int) -> list[int]:
    """Tokens of the chat-templated prompt at each of the first ``rounds`` rounds of each user."""
    env = CalendarConflictEnv(obs_mode="text", text_style=style)
    counts = []
    for uid in users:
        obs, _ = env.reset(seed=0, options={"user_id": uid})
        for _ in range(rounds):
            text = tokenizer.apply_chat_template([{"role": "user", "content": as_text(obs)}], tokenize=False,
                                                 add_generation_prompt=True)
            counts.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
            obs, _, done, _, _ = env.step('{"selected_event_to_accept": 0}')
            if done:
                break
    return counts


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=15, help="first N test users (data_seed 0 has 15)")
    p.add_argument("--rounds", type=int, default=104)
    a = p.parse_args(argv)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(default_model_dir()))
    users = CalendarConflictEnv(split="test").user_ids[: a.users]
    out: dict[str, Any] = {"command": f"python benchmarks/calendar_prompt_tokens.py --users {a.users} --rounds {a.rounds}",
                           "tokenizer": "SmolLM2-135M-Instruct (default model)", "users": users, "rounds": a.rounds,
                           "host": platform.node(), "styles": {}}
    start = time.perf_counter()
    for style in TEXT_STYLES:
        counts = np.array(prompt_tokens(tokenizer, style, users, a.rounds))
        out["styles"][style] = {"mean": float(counts.mean()), "median": float(np.median(counts)),
                                "p95": float(np.percentile(counts, 95)), "max": int(counts.max()), "prompts": int(counts.size)}
    out["seconds"] = time.perf_counter() - start
    out["compact_over_verbose"] = out["styles"]["compact"]["mean"] / out["styles"]["verbose"]["mean"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calendar_prompt_tokens.json").write_text(json.dumps(out, indent=2) + "\n")
    rows = ["| text_style | mean tokens / round | median | p95 | max | prompts |", "|---|---|---|---|---|---|"]
    rows += [f"| {s} | {v['mean']:.0f} | {v['median']:.0f} | {v['p95']:.0f} | {v['max']} | {v['prompts']} |"
             for s, v in out["styles"].items()]
    md = (f"# CalendarConflict-v0 prompt tokens per round\n\n`{out['command']}`\n\n" + "\n".join(rows) +
          f"\n\nCompact / verbose: {out['compact_over_verbose']:.2f}. Tokenizer: {out['tokenizer']}; prompts are "
          "chat-templated decision prompts (W=5, empty hub) of the test users' rounds.\n")
    (RESULTS / "calendar_prompt_tokens.md").write_text(md)
    print(md)
    return out


if __name__ == "__main__":
    main()
