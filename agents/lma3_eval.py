"""LMA3's evaluation: held-out human-written goals on held-out (test-split) layouts, judged by
the oracle; and its picture, goals discovered and mastered against episodes.

A goal naming something a layout lacks is tried on the next test layout; one that no layout of
``max_tries`` has, or that the oracle grammar cannot read, is reported with that status and
left out of the success rate (never scored as a failure).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selfgym.agents.lma3_parts import GoalPolicy
from selfgym.envs.cooking.env import CookingWorldEnv
from selfgym.envs.cooking.goals import OutsideGrammar, missing, oracle_judge, parse_goal
from selfgym.metrics import pyplot, save_figure


def evaluate_heldout(policy: GoalPolicy, goals: Sequence[str], env_kwargs: dict[str, Any], layouts: int,
                     episode_steps: int, deterministic: bool = True, max_tries: int = 200) -> list[dict[str, Any]]:
    """Per goal: status ("scored", "outside_grammar", "unknown_in_layout"), successes over ``layouts`` test layouts."""
    env = CookingWorldEnv(**{**env_kwargs, "split": "test", "state_in_info": False})
    results = []
    for goal in goals:
        try:
            clauses = parse_goal(goal)
        except OutsideGrammar as exc:
            results.append({"goal": goal, "status": "outside_grammar", "reason": str(exc)})
            continue
        outcomes, layout_seed = [], 0
        while len(outcomes) < layouts and layout_seed < max_tries:
            obs, info = env.reset(seed=layout_seed, options={"layout_seed": layout_seed})
            layout_seed += 1
            states = [env.true_state()]
            if any(missing(c, states[0]) for c in clauses):
                continue
            for _ in range(episode_steps):
                index = policy.act(goal, str(obs[0]), info["valid_commands"], deterministic)
                obs, _, _, _, info = env.step(index)
                states.append(env.true_state())
            outcomes.append(oracle_judge(goal, states).success)
        if outcomes:
            results.append({"goal": goal, "status": "scored", "successes": int(sum(outcomes)), "episodes": len(outcomes)})
        else:
            results.append({"goal": goal, "status": "unknown_in_layout",
                            "reason": f"none of {max_tries} test layouts has what it names"})
    return results


def summary_table(results: Sequence[dict[str, Any]]) -> tuple[float | None, str]:
    """(success rate over scored goal episodes, a table)."""
    scored = [r for r in results if r["status"] == "scored"]
    rate = (sum(r["successes"] for r in scored) / sum(r["episodes"] for r in scored)) if scored else None
    width = max(len(r["goal"]) for r in results) if results else 4
    lines = [f"{'goal':<{width}}  result"]
    for r in results:
        shown = f"{r['successes']}/{r['episodes']}" if r["status"] == "scored" else r["status"]
        lines.append(f"{r['goal']:<{width}}  {shown}")
    lines.append(f"{'held-out success':<{width}}  {'n/a' if rate is None else f'{rate:.3f}'}")
    return rate, "\n".join(lines)


def draw_goals(curve: Sequence[Sequence[float]], path: Path, title: str) -> Path | None:
    """goals.png: goals discovered and mastered against episodes."""
    if not curve:
        return None
    plt = pyplot()
    data = np.asarray(curve, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(data[:, 0], data[:, 1], label="discovered")
    ax.plot(data[:, 0], data[:, 2], label="mastered")
    if data.shape[1] > 4:
        ax.plot(data[:, 0], data[:, 4], "--", label="mastered per the oracle's verdicts")
    ax.set_xlabel("episodes")
    ax.set_ylabel("goals")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
