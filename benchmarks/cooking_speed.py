"""CookingWorld-v0 steps/s against TextWorldExpress's CookingWorld, side by side in one run.

Both take a uniformly random valid command each step (ours: an index into
``info["valid_commands"]``, through ``gym.make``'s wrappers; TextWorldExpress: a random entry of
``infos["validActions"]``), and both reset every 50 steps (our registered episode length);
TextWorldExpress's score and done are ignored (its task is not ours). TextWorldExpress runs
``cookingworld`` with ``numIngredients=1``, ``numLocations=4``, doors, no distractors, through its
Python API (py4j to the JVM; JVM start-up is not timed). Rounds alternate ours / theirs so both
see the same machine load; the figure is the median over rounds. Wall-clock time only: the
JVM's CPU time is not this process's.

Needs ``pip install 'selfgym[textworld]'`` and a Java runtime (``java`` on PATH); without them
only our side runs and the comparison is reported as not run.

    OMP_NUM_THREADS=1 python benchmarks/cooking_speed.py [--rounds 5] [--steps 20000] [--twx-steps 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
EPISODE = 50
TWX_PARAMS = "numLocations=4,numIngredients=1,numDistractorItems=0,includeDoors=1,limitInventorySize=0"


def ours(steps: int, seed: int) -> float:
    """Random valid steps per wall-clock second of selfgym/CookingWorld-v0 (resets included)."""
    import gymnasium as gym

    import selfgym  # noqa: F401  (registers the selfgym/ ids)

    env = gym.make("selfgym/CookingWorld-v0")
    rng = random.Random(seed)
    _, info = env.reset(seed=seed)
    start = time.perf_counter()
    for t in range(1, steps + 1):
        _, _, terminated, truncated, info = env.step(rng.randrange(len(info["valid_commands"])))
        if terminated or truncated:
            _, info = env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


class TextWorldExpress:
    """TextWorldExpress's CookingWorld, loaded once (the JVM starts here, outside the timing)."""

    def __init__(self) -> None:
        from textworld_express import TextWorldExpressEnv

        self.env = TextWorldExpressEnv(envStepLimit=10**6)
        self.env.load(gameName="cookingworld", gameParams=TWX_PARAMS)

    def rate(self, steps: int, seed: int) -> float:
        rng = random.Random(seed)
        _, infos = self.env.reset(seed=seed, gameFold="train")
        start = time.perf_counter()
        for t in range(1, steps + 1):
            _, _, _, infos = self.env.step(rng.choice(infos["validActions"]))
            if t % EPISODE == 0:
                _, infos = self.env.reset(seed=seed + t, gameFold="train")
        return steps / (time.perf_counter() - start)


def peer_or_reason() -> tuple[TextWorldExpress | None, str]:
    if shutil.which("java") is None:
        return None, "no `java` on PATH (TextWorldExpress needs a Java runtime)"
    try:
        return TextWorldExpress(), ""
    except ImportError as exc:
        return None, f"textworld-express is not installed: pip install 'selfgym[textworld]' ({exc})"


def write(result: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cooking_speed.json").write_text(json.dumps(result, indent=2))
    med = result["median_steps_per_s"]
    lines = ["# CookingWorld-v0 speed against TextWorldExpress CookingWorld (random valid commands)", "",
             f"Command: `{result['command']}`", "",
             "| env | steps / s (median of rounds) | rounds |", "|---|---|---|",
             f"| selfgym/CookingWorld-v0 (4 rooms, 5 foods, doors) | {med['selfgym']:.0f} | "
             f"{', '.join(f'{x:.0f}' for x in result['rounds']['selfgym'])} |"]
    if result["textworld_express"]:
        lines.append(f"| TextWorldExpress cookingworld ({TWX_PARAMS}) | {med['textworld_express']:.0f} | "
                     f"{', '.join(f'{x:.0f}' for x in result['rounds']['textworld_express'])} |")
        lines += ["", f"Ratio ours / TextWorldExpress, median of per-round ratios: **{result['ratio_median']:.1f}x** "
                      f"(targets: >= 10,000 steps/s and >= 1x)."]
    else:
        lines += ["", f"TextWorldExpress not run: {result['peer_not_run']}"]
    lines += ["", f"One process, wall-clock, resets every {EPISODE} steps included; load average before / after: "
                  f"{result['loadavg'][0]} / {result['loadavg'][-1]}; {result['cpu_count']} CPUs; Python {result['python']}.", ""]
    (RESULTS / "cooking_speed.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20_000, help="our steps per round")
    ap.add_argument("--twx-steps", type=int, default=3_000, help="TextWorldExpress steps per round")
    ap.add_argument("--no-save", action="store_true", help="print only (tests)")
    args = ap.parse_args()
    peer, reason = peer_or_reason()
    rounds: dict[str, list[float]] = {"selfgym": [], "textworld_express": []}
    load = [os.getloadavg()]
    for r in range(args.rounds):
        rounds["selfgym"].append(ours(args.steps, seed=r))
        if peer is not None:
            rounds["textworld_express"].append(peer.rate(min(args.twx_steps, args.steps), seed=r))
        load.append(os.getloadavg())
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.0f} steps/s" for k, v in rounds.items() if v), flush=True)
    median = {k: float(np.median(v)) for k, v in rounds.items() if v}
    ratios = [a / b for a, b in zip(rounds["selfgym"], rounds["textworld_express"])]
    result = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/cooking_speed.py"
                   f" --rounds {args.rounds} --steps {args.steps} --twx-steps {args.twx_steps}",
        "rounds": rounds, "median_steps_per_s": median, "textworld_express": peer is not None,
        "peer_not_run": reason, "ratio_per_round": ratios,
        "ratio_median": float(np.median(ratios)) if ratios else None, "twx_params": TWX_PARAMS,
        "episode_steps": EPISODE, "loadavg": load, "cpu_count": os.cpu_count(), "python": platform.python_version(),
    }
    print(json.dumps({"median_steps_per_s": median, "ratio_median": result["ratio_median"]}))
    if not args.no_save:
        write(result)


if __name__ == "__main__":
    main()
