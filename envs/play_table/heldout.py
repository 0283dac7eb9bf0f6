"""Held-out test cases for the 18 tasks, and the rollout that scores a policy on them.

The protocol of Lynch et al. (2019): for each task, reset the env to a held-out
demonstration's initial state, give the state the demonstration ended in as the goal, roll
the goal-conditioned policy out, and count the *task's* success detector (``tasks.py``), not
the goal distance. Optionally the hand is first pushed away from its start pose
(``perturbation`` metres, the paper's robustness test).

A case is (task, reset seed, initial scene state s0, goal, goal observation): ``PlayTableGoalEnv(task=...)``
reset with the seed reproduces s0 exactly (checked at every rollout), and the goal is where
the scripted expert's successful demonstration from s0 ended; the goal observation is the whole
observation it ended in (hand + scene: the paper's goal s_g is a whole state), which ``run_case``
hands to the policy as ``goal_observation`` beside the env's scene goal. Seeds start at
``HELDOUT_SEED_BASE``, far from ``demos.py``'s, and ``leaked_cases`` checks by hash that no
case's initial state occurs in a training log.

Pixels: ``make_test_cases(image_size=S)`` also keeps the demonstration's last camera frame as
the case's goal image, which ``run_case`` hands to the policy as ``goal_image`` (the paper's
pixel goal); ``evaluate_cases(make_env=...)`` then rolls out in ``PlayTablePixelsGoalEnv``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from selfgym.envs.play_table import tasks as T
from selfgym.envs.play_table.demos import TASK_SEED_STRIDE, demonstrate
from selfgym.envs.play_table.env import PlayTableEnv, PlayTableGoalEnv
from selfgym.envs.play_table.pixels import PlayTablePixelsGoalEnv
from selfgym.envs.play_table.primitives import HIGH, OPEN, Waypoint, WaypointFollower
from selfgym.envs.play_table.observation import PROPRIO_DIM

HELDOUT_SEED_BASE = 1_000_000_000
MAX_STEPS = 150  # 5 s at 30 Hz; the expert needs 26-100 steps


@dataclass(frozen=True)
class TestCases:
    """Arrays over cases: task index, reset seed, initial scene state, goal scene state, the
    goal observation (proprioception + scene, the demonstration's last; None in old files), and
    the goal image (the demonstration's last camera frame; None unless made with ``image_size``)."""

    __test__ = False  # not a pytest class
    task_ids: np.ndarray
    seeds: np.ndarray
    starts: np.ndarray
    goals: np.ndarray
    goal_observations: np.ndarray | None = None
    goal_images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.seeds)

    def save(self, path: str | Path) -> None:
        extra = {} if self.goal_observations is None else {"goal_observations": self.goal_observations}
        if self.goal_images is not None:
            extra["goal_images"] = self.goal_images
        np.savez_compressed(path, task_ids=self.task_ids, seeds=self.seeds, starts=self.starts, goals=self.goals,
                            tasks=np.asarray(T.TASK_NAMES), **extra)

    @classmethod
    def load(cls, path: str | Path) -> "TestCases":
        with np.load(path, allow_pickle=False) as data:
            if tuple(data["tasks"]) != T.TASK_NAMES:
                raise ValueError(f"{path}: test cases for tasks {list(data['tasks'])}, this PlayTable has {list(T.TASK_NAMES)}")
            goal_observations = data["goal_observations"] if "goal_observations" in data.files else None
            goal_images = data["goal_images"] if "goal_images" in data.files else None
            return cls(data["task_ids"], data["seeds"], data["starts"], data["goals"], goal_observations, goal_images)

    def digest(self) -> str:
        """sha256 of the cases: two evaluations on equal digests used the same test set (the goal
        observations are left out: they follow from the same demonstrations, and old digests stay valid)."""
        h = hashlib.sha256()
        for array in (self.task_ids, self.seeds, self.starts, self.goals):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()


def make_test_cases(per_task: int = 20, seed: int = HELDOUT_SEED_BASE, noise: float = 0.0,
                    tasks: tuple[str, ...] = T.TASK_NAMES, image_size: int | None = None) -> TestCases:
    """``per_task`` cases per task from the scripted expert's successful demonstrations, fixed by
    ``seed``; with ``image_size`` each keeps its last camera frame as the goal image."""
    task_ids, seeds, starts, goals, goal_observations, goal_images = [], [], [], [], [], []
    for task in tasks:
        index = T.TASK_NAMES.index(task)
        env, attempt, kept = PlayTableEnv(task=task), 0, 0
        while kept < per_task:
            if attempt >= 5 * per_task:
                raise RuntimeError(f"the scripted expert solved {task} only {kept} times in {attempt} attempts")
            case_seed = seed + TASK_SEED_STRIDE * index + attempt
            attempt += 1
            demo = demonstrate(env, task, case_seed, noise)
            if demo is None:
                continue
            task_ids.append(index)
            seeds.append(case_seed)
            starts.append(demo[0][0, PROPRIO_DIM:])
            goals.append(demo[0][-1, PROPRIO_DIM:])
            goal_observations.append(demo[0][-1])
            if image_size is not None:  # the scene still stands where the demonstration ended
                goal_images.append(env.scene.camera_image(image_size))
            kept += 1
        env.close()
    return TestCases(np.asarray(task_ids, np.int32), np.asarray(seeds, np.int64), np.asarray(starts, np.float32),
                     np.asarray(goals, np.float32), np.asarray(goal_observations, np.float32),
                     None if image_size is None else np.asarray(goal_images, np.uint8))


def state_hash(scene_state: np.ndarray) -> str:
    return hashlib.sha256(np.round(np.asarray(scene_state, np.float64), 4).tobytes()).hexdigest()


def leaked_cases(cases: TestCases, scene_states: np.ndarray) -> list[int]:
    """Indices of the cases whose initial scene state occurs in a training log (by hash): must be empty."""
    seen = {state_hash(s) for s in scene_states}
    return [i for i, s in enumerate(cases.starts) if state_hash(s) in seen]


def start_observations(cases: TestCases) -> np.ndarray:
    """The full observation (proprioception + scene) each case starts from, (N, 37)."""
    out = np.zeros((len(cases), PROPRIO_DIM + cases.starts.shape[1]), np.float32)
    for index in np.unique(cases.task_ids):
        env = PlayTableGoalEnv(task=T.TASK_NAMES[int(index)])
        for i in np.flatnonzero(cases.task_ids == index):
            out[i] = env.reset(seed=int(cases.seeds[i]), options={"goal": cases.goals[i]})[0]["observation"]
        env.close()
    return out


def start_pixel_observations(cases: TestCases, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The camera image (N, S, S, 3) and proprioception (N, 15) each case starts from."""
    images = np.zeros((len(cases), image_size, image_size, 3), np.uint8)
    proprio = np.zeros((len(cases), PROPRIO_DIM), np.float32)
    for index in np.unique(cases.task_ids):
        env = PlayTablePixelsGoalEnv(task=T.TASK_NAMES[int(index)], image_size=image_size)
        for i in np.flatnonzero(cases.task_ids == index):
            obs = env.reset(seed=int(cases.seeds[i]), options={"goal": cases.goals[i]})[0]
            images[i], proprio[i] = obs["image"], obs["proprio"]
        env.close()
    return images, proprio


def _hand(obs: dict) -> np.ndarray:
    """The proprioception of a state goal env's or a pixel goal env's observation."""
    return obs["observation"][:PROPRIO_DIM] if "observation" in obs else obs["proprio"]


def _perturb(env: PlayTableGoalEnv, obs: dict, distance: float, rng: np.random.Generator) -> dict:
    """Move the open hand ``distance`` metres horizontally from its start, at travel height (scripted)."""
    angle = rng.uniform(0, 2 * np.pi)
    ee = _hand(obs)[:3]
    target = (float(ee[0] + distance * np.cos(angle)), float(ee[1] + distance * np.sin(angle)), HIGH)
    follower = WaypointFollower([Waypoint((float(ee[0]), float(ee[1]), HIGH), 0.0, OPEN, 20),
                                 Waypoint(target, 0.0, OPEN, 40)])
    while not follower.done:
        obs, *_ = env.step(follower.act(_hand(obs)))
    return obs


def run_case(policy: Any, env: PlayTableGoalEnv, cases: TestCases, i: int, deterministic: bool = True,
             perturbation: float = 0.0, max_steps: int = MAX_STEPS) -> bool:
    """Roll ``policy`` (SB3's ``predict`` signature, batch of one) out on case ``i``; the task's detector decides."""
    task = T.TASKS[T.TASK_NAMES[int(cases.task_ids[i])]]
    obs, _ = env.reset(seed=int(cases.seeds[i]), options={"goal": cases.goals[i]})
    s0 = obs["achieved_goal"].copy()
    if not np.allclose(s0, cases.starts[i], atol=1e-4):
        raise RuntimeError(f"test case {i} ({task.name}, seed {cases.seeds[i]}) no longer resets to its stored "
                           "initial state: the scene or reset changed since the cases were made; make them again")
    if perturbation > 0:
        obs = _perturb(env, obs, perturbation, np.random.default_rng(int(cases.seeds[i])))
    state, start = None, np.ones(1, bool)
    goal_observation = {} if cases.goal_observations is None else {"goal_observation": cases.goal_observations[i][None]}
    if cases.goal_images is not None and "goal_image" in obs:  # a pixel policy sees the demonstration's last frame
        goal_observation["goal_image"] = cases.goal_images[i][None]
    for _ in range(max_steps):
        action, state = policy.predict({**{k: v[None] for k, v in obs.items()}, **goal_observation}, state, start,
                                       deterministic)
        start = np.zeros(1, bool)
        obs, _, terminated, _, _ = env.step(np.asarray(action).reshape(-1))
        if task.success(s0, obs["achieved_goal"]):
            return True
        if terminated:
            return False
    return False


def evaluate_cases(policy: Any, cases: TestCases, deterministic: bool = True, perturbation: float = 0.0,
                   max_steps: int = MAX_STEPS, progress: Callable[[str], None] | None = None,
                   make_env: Callable[..., PlayTableGoalEnv] = PlayTableGoalEnv) -> dict[str, Any]:
    """Per-task success rates and their mean over tasks (each task weighs the same); ``make_env``
    makes the env of a task (a pixel policy's: ``PlayTablePixelsGoalEnv`` at its image size)."""
    per_task: dict[str, list[bool]] = {}
    for index in np.unique(cases.task_ids):
        name = T.TASK_NAMES[int(index)]
        env = make_env(task=name)
        per_task[name] = [run_case(policy, env, cases, i, deterministic, perturbation, max_steps)
                          for i in np.flatnonzero(cases.task_ids == index)]
        env.close()
        if progress is not None:
            progress(f"{name}: {np.mean(per_task[name]):.2f}")
    rates = {name: float(np.mean(v)) for name, v in per_task.items()}
    return {"per_task": rates, "mean": float(np.mean(list(rates.values()))), "cases_per_task": len(cases) // len(rates),
            "perturbation_m": perturbation, "max_steps": max_steps, "cases_sha256": cases.digest()}


def format_suite(results: dict[str, dict[str, Any]]) -> str:
    """The per-task table, one column per condition (e.g. "start pose", "perturbed 0.15 m")."""
    names = list(results)
    tasks = list(next(iter(results.values()))["per_task"])
    width = max(len(t) for t in tasks + ["mean over tasks"])
    lines = [f"{'task':<{width}}  " + "  ".join(f"{n:>16}" for n in names), "-" * (width + 18 * len(names))]
    for task in tasks:
        lines.append(f"{task:<{width}}  " + "  ".join(f"{results[n]['per_task'][task]:>16.2f}" for n in names))
    lines.append(f"{'mean over tasks':<{width}}  " + "  ".join(f"{results[n]['mean']:>16.3f}" for n in names))
    return "\n".join(lines)
