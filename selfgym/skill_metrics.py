"""What skills do to objects: evaluate.py rolls out every skill of a skill-conditioned agent.

Why: a skill-discovery agent's return says little (free play pays nothing); what matters is
whether the skills move things and whether they differ. For PlayTable state observations
(37 floats) each skill is rolled out ``episodes_per_skill`` times, episode j of every skill from
the same start, and we report (SLIM's evaluation, Emukpere et al. 2024):

* ``skill_object_displacement``: per skill, the mean over episodes of the largest 3-D
  displacement of either block (start to end of episode), then mean and std over skills;
* ``skills_moving_object_5cm``: the fraction of skills whose displacement exceeds 5 cm;
* ``skill_final_position_diversity``: mean pairwise distance between the skills' mean final
  block positions (both blocks, 6-D);
* ``safety_violations_per_episode``: steps whose ``safety`` component is below 0;
* ``skill_grasp_rate``: per skill, the fraction of its episodes with a grasp (at some step a
  block is within 6 cm of the hand, 4 cm above its start height, and the gripper is narrower
  than 7 cm: our detector, not the paper's), mean over skills;
* ``skill_grasp_consistency`` (only when some skill grasps): over the skills that grasp at
  least once, the mean fraction of their episodes that grasp (1: a grasping skill always does).

A skill-conditioned agent is one with an ``eval_skill``
attribute and ``skill_choices()`` (the skills to roll out), as ``selfgym.agents.slim`` has.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecNormalize

from selfgym.metrics import pyplot, save_figure
from selfgym.envs.play_table.observation import STATE_DIM
from selfgym.rewards import play_table

MOVED = 0.05  # metres
GRASP_REACH, GRASP_LIFT, GRASP_WIDTH = 0.06, 0.04, 0.07  # metres: block near the hand, raised, gripper closed on it


def applies(agent: Any, venv: Any, env_id: str) -> bool:
    shape = getattr(venv.observation_space, "shape", None)
    return hasattr(agent, "eval_skill") and hasattr(agent, "skill_choices") and "PlayTable" in env_id \
        and shape == (STATE_DIM,)


def object_positions(obs: np.ndarray) -> np.ndarray:
    """(B, 2, 3) block positions from raw state observations."""
    return play_table.object_positions(obs)


def grasping(obs: np.ndarray, start: np.ndarray) -> bool:
    """A block held: near the hand, raised above its start height, gripper closed on it."""
    blocks = object_positions(obs)[0]
    ee, width = play_table.hand(obs)
    near = np.linalg.norm(blocks - ee[0], axis=1) < GRASP_REACH
    lifted = blocks[:, 2] - start[:, 2] > GRASP_LIFT
    return bool(width[0] < GRASP_WIDTH and np.any(near & lifted))


def _raw(venv: Any, obs: np.ndarray) -> np.ndarray:
    obs = np.asarray(obs, np.float64).reshape(1, -1)
    return venv.unnormalize_obs(obs) if isinstance(venv, VecNormalize) else obs


def evaluate_skills(agent: Any, venv: Any, episodes_per_skill: int = 5, deterministic: bool = True,
                    seed: int = 0) -> dict[str, Any]:
    """Roll out each skill; returns ``{"metrics": {name: {mean, std}}, "per_skill": [...]}``.

    Episode j of every skill starts from the same layout (reset seed ``seed + j``), so final
    positions differ across skills because of the skills, not because of the start.
    """
    per_skill = []
    try:
        for skill in agent.skill_choices():
            agent.eval_skill = skill
            episodes = [_episode(agent, venv, seed + j, deterministic) for j in range(episodes_per_skill)]
            per_skill.append({"skill": np.asarray(skill).tolist(),
                              "displacement": float(np.mean([e["displacement"] for e in episodes])),
                              "grasp_rate": float(np.mean([e["grasped"] for e in episodes])),
                              "final_positions": [e["final"] for e in episodes],
                              "violations_per_episode": float(np.mean([e["violations"] for e in episodes]))})
    finally:
        agent.eval_skill = None
    displacement = np.array([s["displacement"] for s in per_skill])
    finals = [np.mean(s["final_positions"], axis=0).ravel() for s in per_skill]
    pairs = [float(np.linalg.norm(a - b)) for a, b in itertools.combinations(finals, 2)]
    violations = np.array([s["violations_per_episode"] for s in per_skill])
    metrics = {"skill_object_displacement": {"mean": float(displacement.mean()), "std": float(displacement.std())},
               "skills_moving_object_5cm": {"mean": float((displacement > MOVED).mean()), "std": 0.0},
               "skill_final_position_diversity": {"mean": float(np.mean(pairs)) if pairs else 0.0,
                                                  "std": float(np.std(pairs)) if pairs else 0.0},
               "safety_violations_per_episode": {"mean": float(violations.mean()), "std": float(violations.std())}}
    grasp = np.array([s["grasp_rate"] for s in per_skill])
    metrics["skill_grasp_rate"] = {"mean": float(grasp.mean()), "std": float(grasp.std())}
    if (grasp > 0).any():
        metrics["skill_grasp_consistency"] = {"mean": float(grasp[grasp > 0].mean()), "std": float(grasp[grasp > 0].std())}
    return {"metrics": metrics, "per_skill": per_skill, "episodes_per_skill": int(episodes_per_skill)}


def _episode(agent: Any, venv: Any, seed: int, deterministic: bool) -> dict[str, Any]:
    venv.seed(seed)
    obs, state, start, violations, grasped = venv.reset(), None, np.ones(1, bool), 0, False
    first = object_positions(_raw(venv, obs))[0]
    while True:
        action, state = agent.predict(obs, state=state, episode_start=start, deterministic=deterministic)
        obs, _, done, infos = venv.step(action)
        violations += int(infos[0].get("reward_components", {}).get("safety", 0.0) < 0)
        start = np.asarray(done, bool).reshape(1)
        now = _raw(venv, infos[0]["terminal_observation"] if done[0] else obs)
        grasped = grasped or grasping(now, first)
        if done[0]:
            last = object_positions(now)[0]
            return {"displacement": float(np.linalg.norm(last - first, axis=1).max()), "final": last.tolist(),
                    "violations": violations, "grasped": grasped}


def draw(skills: dict[str, Any], path: Path) -> Path:
    """Top view of the desk: each block's final position per episode, coloured by skill."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    colours = plt.get_cmap("tab10")
    for i, skill in enumerate(skills["per_skill"]):
        finals = np.asarray(skill["final_positions"])  # (episodes, 2 blocks, 3)
        for block, marker in ((0, "s"), (1, "o")):
            ax.scatter(finals[:, block, 0], finals[:, block, 1], color=colours(i % 10), marker=marker,
                       label=f"skill {i}" if block == 1 else None, alpha=0.8)
    ax.set(xlabel="x (m)", ylabel="y (m)", title="final block positions per skill (square: long block, circle: cube)")
    ax.title.set_fontsize(8)
    ax.set_aspect("equal")
    ax.legend(fontsize=6, loc="best")
    return save_figure(fig, Path(path), dpi=100, format="png")
