"""How well do LMA3's LM roles agree with the oracle on CookingWorld trajectories?

Random trajectories (state-changing commands only, seeded) on the lma3 training games; for each:
the LM relabeler's goals (parsed share, share the oracle judges achieved, share of the oracle's
goals it names) and the LM reward on goals the oracle says were achieved (positives) and grammar
goals it says were not (negatives), thresholded at 0.5 and calibrated against an empty trajectory.

    OMP_NUM_THREADS=1 python benchmarks/lma3_roles_check.py [--trajectories 6] [--steps 30] [--model default]

Writes benchmarks/results/lma3_roles_check.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

from selfgym.agents.lma3_roles import LMRoles, Trajectory
from selfgym.envs.cooking.env import CookingWorldEnv
from selfgym.envs.cooking.goals import grammar_goals, oracle_judge, oracle_relabel
from selfgym.llm.policy import LLMPolicy

RESULTS = Path(__file__).resolve().parent / "results"
ENV_KWARGS = {"num_rooms": 3, "num_foods": 3, "num_layouts": 4}  # hyperparams/lma3.yml's games


def trajectories(n: int, steps: int, seed: int) -> list[Trajectory]:
    env, rng, out = CookingWorldEnv(**ENV_KWARGS), random.Random(seed), []
    for k in range(n):
        _, info = env.reset(seed=seed + k)
        traj = Trajectory("", [], states=[env.true_state()])
        for _ in range(steps):
            acting = [c for c in info["valid_commands"] if not c.startswith(("look", "inventory", "examine"))]
            command = rng.choice(acting)
            _, _, _, _, info = env.step(command)
            traj.commands.append(command)
            traj.feedback.append(info["feedback"])
            traj.states.append(env.true_state())
        out.append(traj)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trajectories", type=int, default=6)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--per-side", type=int, default=3, help="positive and negative goals judged per trajectory")
    ap.add_argument("--model", default="default")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    trajs = trajectories(args.trajectories, args.steps, args.seed)
    rng = random.Random(args.seed)
    roles = LMRoles(lambda: LLMPolicy(args.model, device="cpu", num_threads=1, max_new_tokens=48), batch_size=8)
    start = time.perf_counter()
    relabelled = roles.relabel(trajs)
    relabel_seconds = time.perf_counter() - start
    named, judged_true, found, truth_total = 0, 0, 0, 0
    pairs, labels = [], []
    for traj, lm_goals in zip(trajs, relabelled):
        truth = oracle_relabel(traj.states)
        named += len(lm_goals)
        judged_true += sum(oracle_judge(g, traj.states).success for g in lm_goals)
        found += len(set(truth) & set(lm_goals))
        truth_total += len(truth)
        negatives = [g for g in grammar_goals(traj.states[0]) if not oracle_judge(g, traj.states).success]
        for goal in rng.sample(truth, min(args.per_side, len(truth))):
            pairs.append((goal, traj))
            labels.append(True)
        for goal in rng.sample(negatives, min(args.per_side, len(negatives))):
            pairs.append((goal, traj))
            labels.append(False)
    start = time.perf_counter()
    calibrated = roles.reward(pairs)
    reward_seconds = time.perf_counter() - start
    roles.calibrate = False
    plain = roles.reward(pairs)
    truth_arr = np.array(labels)

    def rates(judged: list[tuple[bool, float]]) -> dict[str, float]:
        said = np.array([ok for ok, _ in judged])
        return {"accuracy": float((said == truth_arr).mean()), "true_positive_rate": float(said[truth_arr].mean()),
                "true_negative_rate": float((~said[~truth_arr]).mean())}

    p_yes = np.array([p for _, p in plain])
    result = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/lma3_roles_check.py " + " ".join(sys.argv[1:]),
        "model": args.model, "trajectories": args.trajectories, "steps": args.steps,
        "relabeler": {"answers_parsed": sum(bool(g) for g in relabelled) / len(relabelled),
                      "lm_goals": named, "lm_goals_oracle_achieved": judged_true,
                      "precision": judged_true / named if named else None,
                      "recall": found / truth_total if truth_total else None, "seconds": relabel_seconds,
                      "examples": relabelled[:3]},
        "reward": {"pairs": len(pairs), "positives": int(truth_arr.sum()), "threshold_0.5": rates(plain),
                   "calibrated": rates(calibrated), "p_yes_positives_mean": float(p_yes[truth_arr].mean()),
                   "p_yes_negatives_mean": float(p_yes[~truth_arr].mean()), "seconds": reward_seconds},
        "loadavg": os.getloadavg(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lma3_roles_check.json").write_text(json.dumps(result, indent=1))
    rel, rew = result["relabeler"], result["reward"]
    md = ["# LMA3's LM roles against the oracle", "", f"Command: `{result['command']}`; model {args.model}; "
          f"load average {result['loadavg'][0]:.1f}.", "",
          f"Relabeler, {args.trajectories} random trajectories of {args.steps} state-changing steps: "
          f"{rel['answers_parsed']:.2f} of answers parsed; {named} goals named, {judged_true} achieved per the oracle "
          f"(precision {rel['precision'] if rel['precision'] is None else round(rel['precision'], 2)}); recall of the "
          f"oracle's goals {rel['recall'] if rel['recall'] is None else round(rel['recall'], 2)}; {relabel_seconds:.0f} s.", "",
          f"Reward, {len(pairs)} (goal, trajectory) pairs, {rew['positives']} achieved:", "",
          "| threshold | accuracy | true-positive rate | true-negative rate |", "|---|---|---|---|"]
    for name in ("threshold_0.5", "calibrated"):
        r = rew[name]
        md.append(f"| {name} | {r['accuracy']:.2f} | {r['true_positive_rate']:.2f} | {r['true_negative_rate']:.2f} |")
    md += ["", f"Mean p(yes): {rew['p_yes_positives_mean']:.3f} on achieved goals, {rew['p_yes_negatives_mean']:.3f} on "
               f"the others; {reward_seconds:.0f} s for the calibrated pass (its empty-trajectory prompts included).", ""]
    (RESULTS / "lma3_roles_check.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
