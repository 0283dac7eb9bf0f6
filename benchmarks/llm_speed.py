"""Sampling tokens/s and GRPO seconds/step of the default LLM policy, per torch thread count.

    python benchmarks/llm_speed.py [--threads 1 2] [--batch 16] [--new-tokens 48] [--device auto] [--trl] [--rounds 3]

Prints a table and writes benchmarks/results/llm_speed.json (with os.getloadavg(): the
machine is shared, so compare thread counts measured side by side in the same run). ``--trl``
adds TRL's GRPOTrainer on the same model, prompts and completion length as a reference (its
s/step includes sampling; ours is reported as sampling + update). Runs unchanged on CUDA.

Both sides get the same batch: ``batch / group`` distinct questions, each ``group`` times (our
rows of one question share its prompt's prefill, as TRL's generations do not). ``--rounds N``
alternates ours and TRL's N times and reports the median per-round ratio, for a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(policy, prompts, new_tokens: int, repeats: int, group: int = 1) -> dict[str, float]:
    import torch

    from selfgym.agents.llm.losses import group_advantages, grpo_loss

    out = {"sample_tokens_per_s": [], "sample_s": [], "train_step_s": []}
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-5)
    for r in range(repeats):
        start = time.perf_counter()
        # with LoRA the reference's log-probs come from the sampling passes (adapter off on a row copy), as GRPOAgent does
        s = policy.sample(prompts, max_new_tokens=new_tokens, generator_seed=r, score_reference=True)
        dt = time.perf_counter() - start
        out["sample_s"].append(dt)
        out["sample_tokens_per_s"].append(float(s.completion_mask.sum()) / dt)
        start = time.perf_counter()  # one GRPO update on this batch: (reference pass) + fwd/bwd + AdamW
        rewards = torch.rand(len(prompts))
        adv = group_advantages(rewards, group).to(policy.device)
        ref = s.ref_logprobs if s.ref_logprobs is not None else policy.reference_logprobs(s)
        opt.zero_grad()
        loss, _ = grpo_loss(policy.logprobs(s), s.logprobs, ref, adv, s.completion_mask)
        loss.backward()
        opt.step()
        if policy.device.type == "cuda":
            torch.cuda.synchronize()
        out["train_step_s"].append(time.perf_counter() - start)
    return {k: sum(v[1:] or v) / len(v[1:] or v) for k, v in out.items()}  # drop the warm-up repeat


def measure_trl(model_dir: str, questions: list[str], group: int, new_tokens: int, steps: int, lora_rank: int, device: str) -> dict[str, float]:
    """TRL's GRPOTrainer on the same model, distinct questions, group size and completion length: s/step."""
    import tempfile

    import datasets
    import torch
    import trl
    from peft import LoraConfig
    from transformers import TrainerCallback

    from selfgym.llm.policy import LORA_TARGETS
    from selfgym.rewards.llm import MajorityVoteReward

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            stamps.append(time.perf_counter())

    # Conversational rows, so TRL applies the model's chat template as our policy does (a plain-string
    # prompt is sent raw: with SmolLM2's default system message left out it is about half as long).
    rows = [{"prompt": [{"role": "user", "content": p}], "family": "arithmetic"}
            for p in questions] * (steps + 1)
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    with tempfile.TemporaryDirectory() as out:
        args = trl.GRPOConfig(output_dir=out, per_device_train_batch_size=len(questions) * group, num_generations=group,
                              max_completion_length=new_tokens, max_steps=steps + 1, use_cpu=not cuda, bf16=cuda,
                              learning_rate=1e-5, beta=0.04, temperature=0.7, report_to=[], logging_steps=1, save_strategy="no")
        # The same adapted modules as ours: peft's own default for Llama adapts only q_proj and v_proj,
        # half of ours, which made an earlier comparison (TRL 1.7x faster) unequal.
        peft = (LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.0, target_modules=list(LORA_TARGETS),
                           task_type="CAUSAL_LM") if lora_rank else None)
        start = time.perf_counter()
        trainer = trl.GRPOTrainer(model=model_dir, reward_funcs=[MajorityVoteReward(family="arithmetic")], args=args,
                                  train_dataset=datasets.Dataset.from_list(rows), peft_config=peft, callbacks=[Clock()])
        trainer.train()
    steps_s = [b - a for a, b in zip(stamps, stamps[1:])]  # drop the first (warm-up) step
    return {"trl_version": trl.__version__, "trl_s_per_step": sum(steps_s) / len(steps_s), "trl_total_s": time.perf_counter() - start}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--lora", type=int, default=16, help="LoRA rank (0: full fine-tuning)")
    p.add_argument("--model", default="default", help="'default' or a local model folder")
    p.add_argument("--trl", action="store_true", help="also time TRL's GRPOTrainer on the same model and batch")
    p.add_argument("--group", type=int, default=8, help="group size: completions per question, ours and TRL's")
    p.add_argument("--rounds", type=int, default=1, help="alternate ours and TRL's this many times (with --trl)")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/llm_speed.json"))
    args = p.parse_args()
    import torch

    from selfgym.llm.policy import LLMPolicy
    from selfgym.envs.text.reasoning import TextReasoningEnv

    lora = {"r": args.lora, "alpha": 2 * args.lora} if args.lora else None
    t0 = time.perf_counter()
    policy = LLMPolicy(args.model, device=args.device, lora=lora, num_threads=args.threads[0], temperature=0.7)  # TRL's setting below
    load_s = time.perf_counter() - t0
    tasks = TextReasoningEnv(task="arithmetic", level=1, test_size=args.batch).heldout_tasks()
    if args.batch % args.group:
        raise SystemExit(f"--batch ({args.batch}) must be a multiple of --group ({args.group})")
    questions = [t["question"] for t in tasks][: args.batch // args.group]
    prompts = [q for q in questions for _ in range(args.group)]
    rows: list[dict] = []
    result = {"device": str(policy.device), "dtype": str(policy.dtype), "model": args.model, "lora_rank": args.lora,
              "batch": args.batch, "group": args.group, "new_tokens": args.new_tokens, "cached_load_s": load_s,
              "cpu_count": os.cpu_count(), "rows": rows, "command": " ".join(["python"] + sys.argv)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rounds = args.rounds if args.trl else 1
    result["rounds"] = []
    for r in range(rounds):
        for n in args.threads:
            torch.set_num_threads(n)
            load_before = os.getloadavg()
            stats = measure(policy, prompts, args.new_tokens, args.repeats, args.group)
            rows.append({"round": r, "threads": n, **stats, "loadavg_before": load_before, "loadavg_after": os.getloadavg()})
            print(f"round {r} threads={n}: {stats['sample_tokens_per_s']:.1f} tok/s sampling (batch {args.batch}, "
                  f"{args.new_tokens} new), {stats['sample_s']:.2f} s sampling + {stats['train_step_s']:.2f} s per GRPO update; "
                  f"load {load_before[0]:.2f}", flush=True)
            out.write_text(json.dumps(result, indent=1))  # partial results survive an interrupted run
        if args.trl:
            from selfgym.llm.default_model import default_model_dir

            torch.set_num_threads(args.threads[0])
            model_dir = str(default_model_dir()) if args.model == "default" else args.model
            load_before = os.getloadavg()
            trl_stats = measure_trl(model_dir, questions, args.group, args.new_tokens, args.repeats, args.lora, args.device)
            ours = rows[-len(args.threads)]  # this round's first thread count, the one TRL runs with
            step = ours["sample_s"] + ours["train_step_s"]
            result["rounds"].append({"round": r, "ours_s_per_step": step, **trl_stats, "threads": args.threads[0],
                                     "ratio": step / trl_stats["trl_s_per_step"], "loadavg_before": load_before,
                                     "loadavg_after": os.getloadavg()})
            result["trl"] = result["rounds"][-1]
            print(f"round {r} TRL GRPOTrainer: {trl_stats['trl_s_per_step']:.2f} s per step (same batch; sampling + update); "
                  f"ours {step:.2f} s: ratio {step / trl_stats['trl_s_per_step']:.2f}; load {load_before[0]:.2f}", flush=True)
            out.write_text(json.dumps(result, indent=1))
    if result["rounds"]:
        import statistics

        result["median_ratio"] = statistics.median(x["ratio"] for x in result["rounds"])
        print(f"median ours/TRL step time over {len(result['rounds'])} rounds: {result['median_ratio']:.2f}x")
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
