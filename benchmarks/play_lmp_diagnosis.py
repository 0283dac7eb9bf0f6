"""Issue 15's diagnosis ladder: where is Play-LMP's success lost? (findings: results/play_lmp_diagnosis.md)

Cheap checks, each a few CPU-minutes on one thread; run them with ``OMP_NUM_THREADS=1 nice -n 10``.

    python benchmarks/play_lmp_diagnosis.py expert --per-task 5 [--perturbation 0.15]
        1. the scripted expert (closed loop) and its recorded actions (open loop) on the held-out
           cases through heldout.run_case: is the evaluation (reset, goal, detector, horizon) sound?
    python benchmarks/play_lmp_diagnosis.py inputs --log play.npz
        2. the test cases' start observations and goals in the units the policy sees (z-scores
           under the log's normaliser): is anything far outside what training saw?
    python benchmarks/play_lmp_diagnosis.py overfit --demos demos.npz --task open_drawer [--agent bc|gcbc]
        3. BC on one task's expert demonstrations only, scored on that task's held-out cases and
           on the demonstrations' own starts (the mixture's mode, a sample, the mixture mean).
    python benchmarks/play_lmp_diagnosis.py rollout --run RUN_FOLDER --per-task 2
        where a trained policy's hand goes: closest approach to the task's target, task progress.
    python benchmarks/play_lmp_diagnosis.py coverage --log play.npz
        4. the play log: how long each block is within the hand's reach, and how often a window
           of 32 (or 100) steps holds each task's success.
    python benchmarks/play_lmp_diagnosis.py goal-use --run RUN_FOLDER --log play.npz
        how much a trained Play-GCBC's likelihood of the play actions depends on its goal.
    python benchmarks/play_lmp_diagnosis.py full-goal --log play.npz --steps 5400 [--per-task 10]
        Play-GCBC conditioned on the window-end *observation* (hand + scene, the paper's s_g),
        scored on the held-out cases with the expert demonstration's final observation as goal.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from typing import Any

import numpy as np

from selfgym.envs.play_table import layout as L
from selfgym.envs.play_table import tasks as T
from selfgym.envs.play_table.collect import out_of_reach
from selfgym.envs.play_table.dataset import PlayDataset
from selfgym.envs.play_table.demos import demonstrate
from selfgym.envs.play_table.env import PlayTableEnv, PlayTableGoalEnv
from selfgym.envs.play_table.heldout import evaluate_cases, make_test_cases, run_case, start_observations
from selfgym.envs.play_table.observation import PROPRIO_KEYS, SCENE_KEYS
from selfgym.envs.play_table.primitives import ScriptedExpert


class ExpertPolicy:
    """The scripted expert behind SB3's predict signature; it plans when the rollout starts."""

    def __init__(self, task: str) -> None:
        self.task = task

    def predict(self, obs: dict, state: Any = None, start: Any = None, deterministic: bool = True):
        if state is None or (start is not None and start[0]):
            state = ScriptedExpert(self.task, noise=0.0, seed=0)
        return state.act(obs["observation"][0])[None], state


class ReplayPolicy:
    """A recorded action sequence, played open loop."""

    def __init__(self, actions: np.ndarray) -> None:
        self.actions = actions

    def predict(self, obs: dict, state: Any = None, start: Any = None, deterministic: bool = True):
        t = 0 if state is None else state
        return self.actions[min(t, len(self.actions) - 1)][None], t + 1


def check_expert(per_task: int, perturbation: float) -> None:
    cases = make_test_cases(per_task)
    closed_all, open_all = [], []
    for index in np.unique(cases.task_ids):
        name = T.TASK_NAMES[int(index)]
        goal_env, task_env = PlayTableGoalEnv(task=name), PlayTableEnv(task=name)
        closed, opened = [], []
        for i in np.flatnonzero(cases.task_ids == index):
            closed.append(run_case(ExpertPolicy(name), goal_env, cases, i, perturbation=perturbation))
            demo = demonstrate(task_env, name, int(cases.seeds[i]), 0.0)
            opened.append(demo is not None and run_case(ReplayPolicy(demo[1]), goal_env, cases, i,
                                                         perturbation=perturbation))
        goal_env.close(), task_env.close()
        closed_all.append(np.mean(closed)), open_all.append(np.mean(opened))
        print(f"{name:20s} expert closed loop {closed_all[-1]:.2f}  recorded actions open loop {open_all[-1]:.2f}", flush=True)
    print(f"mean over tasks: closed loop {np.mean(closed_all):.3f}, open loop {np.mean(open_all):.3f} "
          f"({len(cases)} cases, perturbation {perturbation:g} m)")


def check_inputs(log: str, per_task: int) -> None:
    data = PlayDataset(log)
    mean, std = data.obs.mean(0), np.maximum(data.obs.std(0), 1e-2)  # the agents' Normalizer
    names = [f"{k}[{i}]" for keys in (PROPRIO_KEYS, SCENE_KEYS) for k, s in keys.items() for i in range(s.stop - s.start)]
    cases = make_test_cases(per_task)
    z_start = np.abs((start_observations(cases) - mean) / std).max(0)
    z_goal = np.abs((cases.goals - mean[15:]) / std[15:]).max(0)
    print(f"{'float':18s} {'log mean':>8s} {'log std':>8s} {'max |z| start':>14s} {'max |z| goal':>13s}")
    for j, name in enumerate(names):
        goal = f"{z_goal[j - 15]:13.2f}" if j >= 15 else f"{'':13s}"
        print(f"{name:18s} {mean[j]:8.3f} {std[j]:8.3f} {z_start[j]:14.2f} {goal}")


def check_overfit(demos: str, task: str, agent_name: str, steps: int, cases_per_task: int, hidden: int) -> None:
    import torch
    from torch.nn import functional as F

    from selfgym.agents.bc import BCAgent
    from selfgym.agents.play import networks as N
    from selfgym.agents.play_gcbc import PlayGCBCAgent

    torch.set_num_threads(1)
    index = T.TASK_NAMES.index(task)
    path = f"/tmp/play_lmp_diagnosis_{task}_{agent_name}.npz"
    with np.load(demos) as d:
        keep, meta = d["task_ids"] == index, json.loads(str(d["meta"]))
        meta["kind"] = "expert_demos" if agent_name == "bc" else "play"  # gcbc: hindsight windows on the demos
        np.savez(path, meta=json.dumps(meta), **{k: d[k][keep] for k in d.files if k != "meta"})
    cls, window = (BCAgent, 16) if agent_name == "bc" else (PlayGCBCAgent, 32)
    agent = cls(PlayTableGoalEnv(), seed=0, dataset=path, window=window, replan_every=window, hidden=hidden)
    t0 = time.time()
    agent.learn(steps, type("Hooks", (), {"on_step": lambda self, n: True})())
    print(f"{task} {agent_name}: {steps} gradient steps in {time.time() - t0:.0f} s, "
          f"loss {agent.loss(*agent.sample_batch())[1]['loss']:.2f}", flush=True)
    held_out = make_test_cases(cases_per_task, tasks=(task,))
    training = make_test_cases(cases_per_task, seed=0, noise=0.05, tasks=(task,))  # demos' own starts (demos.py seeds)
    mode = N.LogisticMixture.mode

    def mixture_mean(self):
        return (F.softmax(self.logits, -1) * self.means.clamp(-1, 1)).sum(-1)

    for label, decode, deterministic in (("mode (shipped)", mode, True), ("sample", mode, False),
                                         ("mixture mean", mixture_mean, True)):
        N.LogisticMixture.mode = decode
        torch.manual_seed(0)
        try:
            rates = [evaluate_cases(agent, c, deterministic)["mean"] for c in (held_out, training)]
        finally:
            N.LogisticMixture.mode = mode
        print(f"{task} {agent_name} decode={label}: held-out {rates[0]:.2f}, training starts {rates[1]:.2f}", flush=True)


def check_rollout(run: str, per_task: int, checkpoint: int | None) -> None:
    from selfgym.evaluation import load_run

    _, agent, _, _ = load_run(run, checkpoint=checkpoint) if checkpoint else load_run(run)
    cases = make_test_cases(per_task)
    for index in np.unique(cases.task_ids):
        name = T.TASK_NAMES[int(index)]
        task, env = T.TASKS[name], PlayTableGoalEnv(task=name)
        for i in np.flatnonzero(cases.task_ids == index):
            obs, _ = env.reset(seed=int(cases.seeds[i]), options={"goal": cases.goals[i]})
            s0, state, start = obs["achieved_goal"].copy(), None, np.ones(1, bool)
            first = float(np.linalg.norm(obs["observation"][:3] - task.target(s0)))
            closest, progress, success = first, 0.0, False
            for _ in range(150):
                action, state = agent.predict({k: v[None] for k, v in obs.items()}, state, start, True)
                start = np.zeros(1, bool)
                obs, *_ = env.step(np.asarray(action).reshape(-1))
                s = obs["achieved_goal"]
                closest = min(closest, float(np.linalg.norm(obs["observation"][:3] - task.target(s))))
                progress = max(progress, task.progress(s0, s))
                if task.success(s0, s):
                    success = True
                    break
            print(f"{name:20s} case {i}: hand to target {first:.3f} m -> closest {closest:.3f} m, "
                  f"max progress {progress:.2f}, success {success}", flush=True)
        env.close()


def check_coverage(log: str, stride: int) -> None:
    data = PlayDataset(log)
    s, ids = data.scene_states, data.episode_ids
    print(f"{log}: {len(s)} steps, {len(np.unique(ids))} episodes, meta {data.meta}")
    reach = np.array([not out_of_reach(x) for x in s[::stride]])
    for key in ("long_pos", "cube_pos"):
        p = s[::stride, SCENE_KEYS[key]]
        inside = ((L.EE_LOW[0] - 0.02 <= p[:, 0]) & (p[:, 0] <= L.EE_HIGH[0] + 0.02)
                  & (np.abs(p[:, 1]) <= L.EE_HIGH[1] + 0.02))
        near = ((np.abs(p[:, 0] - np.mean(L.PLAY_X)) < 0.125) & (np.abs(p[:, 1] - np.mean(L.PLAY_Y)) < 0.175))
        print(f"{key}: within the hand's reach {inside.mean():.2f} of steps, near the reset area {near.mean():.2f}")
    print(f"both blocks within reach: {reach.mean():.2f} of steps")
    for h in (32, 100):
        k = np.arange(0, len(s) - h, stride)
        k = k[ids[k] == ids[k + h]]
        rates = {name: np.mean([task.success(s[i], s[i + h]) and not task.success(s[i], s[i]) for i in k])
                 for name, task in T.TASKS.items()}
        print(f"windows of {h} steps holding the task's success (start every {stride} steps, {len(k)} windows): "
              + ", ".join(f"{n} {100 * r:.2f}%" for n, r in rates.items())
              + f"; mean {100 * np.mean(list(rates.values())):.2f}%")


def check_goal_use(run: str, log: str, batches: int) -> None:
    import torch

    from selfgym.evaluation import load_run

    _, agent, _, _ = load_run(run)
    data, rng = PlayDataset(log), np.random.default_rng(123)
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    nll: dict[str, list] = {"the true window-end scene": [], "the start scene": [], "another window's goal": []}
    changed = []
    with torch.no_grad():
        for _ in range(batches):
            b = data.sample_windows(256, agent.window, rng)
            obs, actions = agent.normalizer(as_tensor(b["obs"])), as_tensor(b["actions"])
            goals = dict(zip(nll, (b["goal"], b["obs"][:, 0, 15:], b["goal"][rng.permutation(256)])))
            for name, goal in goals.items():
                dist, _ = agent.model.policy(obs, agent.normalize_goal(as_tensor(goal)), None)
                nll[name].append(-dist.log_prob(actions).mean(1).numpy())
            changed.append(~PlayTableGoalEnv.goal_reached(b["obs"][:, 0, 15:], b["goal"]))
    moved = np.concatenate(changed)
    print(f"windows whose scene changes beyond the goal tolerance: {moved.mean():.3f} of {len(moved)}")
    for name, values in nll.items():
        v = np.concatenate(values)
        print(f"NLL per step, goal = {name:26s}: all {v.mean():.3f}, scene changed {v[moved].mean():.3f}, "
              f"unchanged {v[~moved].mean():.3f}")


def check_full_goal(log: str, steps: int, per_task: int, hidden: int) -> None:
    import gymnasium as gym
    import torch

    from selfgym.agents.play_gcbc import PlayGCBCAgent
    from selfgym.envs.play_table.heldout import MAX_STEPS

    torch.set_num_threads(1)

    class Spaces:  # the goal is a whole observation (37 floats), not the scene (22)
        observation_space = gym.spaces.Dict({"observation": gym.spaces.Box(-10, 10, (37,), np.float32),
                                             "desired_goal": gym.spaces.Box(-10, 10, (37,), np.float32)})
        action_space = gym.spaces.Box(-1, 1, (7,), np.float32)

    class FullGoalGCBC(PlayGCBCAgent):
        def sample_batch(self):
            b = self._load_data().sample_windows(self.batch_size, self.window, self.sampler_rng)
            as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
            return self.normalizer(as_tensor(b["obs"])), as_tensor(b["actions"]), self.normalize_goal(as_tensor(b["goal_obs"]))

    agent = FullGoalGCBC(Spaces(), seed=0, dataset=log, hidden=hidden)
    t0 = time.time()
    agent.learn(steps, type("Hooks", (), {"on_step": lambda self, n: True})())
    print(f"full-goal GCBC: {steps} gradient steps in {time.time() - t0:.0f} s", flush=True)
    cases, rates = make_test_cases(per_task), {}
    for index in np.unique(cases.task_ids):
        name = T.TASK_NAMES[int(index)]
        task, env, wins = T.TASKS[name], PlayTableGoalEnv(task=name), []
        for i in np.flatnonzero(cases.task_ids == index):
            demo = demonstrate(PlayTableEnv(task=name), name, int(cases.seeds[i]), 0.0)  # its final observation
            if demo is None:  # the expert's rerun differs from the case's (simulation history): a failure
                wins.append(False)
                continue
            obs, _ = env.reset(seed=int(cases.seeds[i]), options={"goal": cases.goals[i]})
            s0, state, start, solved = obs["achieved_goal"].copy(), None, np.ones(1, bool), False
            for _ in range(MAX_STEPS):
                action, state = agent.predict({"observation": obs["observation"][None], "desired_goal": demo[0][-1][None]},
                                              state, start, True)
                start = np.zeros(1, bool)
                obs, _, terminated, _, _ = env.step(np.asarray(action).reshape(-1))
                solved = task.success(s0, obs["achieved_goal"])
                if solved or terminated:
                    break
            wins.append(bool(solved))
        env.close()
        rates[name] = float(np.mean(wins))
        print(f"{name:20s} {rates[name]:.2f}", flush=True)
    print(f"mean over tasks {np.mean(list(rates.values())):.3f}")


def main() -> None:
    warnings.filterwarnings("ignore")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="check", required=True)
    e = sub.add_parser("expert")
    e.add_argument("--per-task", type=int, default=5)
    e.add_argument("--perturbation", type=float, default=0.0)
    i = sub.add_parser("inputs")
    i.add_argument("--log", required=True)
    i.add_argument("--per-task", type=int, default=5)
    o = sub.add_parser("overfit")
    o.add_argument("--demos", required=True)
    o.add_argument("--task", default="open_drawer", choices=T.TASK_NAMES)
    o.add_argument("--agent", default="bc", choices=("bc", "gcbc"))
    o.add_argument("--steps", type=int, default=1500)
    o.add_argument("--per-task", type=int, default=10)
    o.add_argument("--hidden", type=int, default=128)
    r = sub.add_parser("rollout")
    r.add_argument("--run", required=True)
    r.add_argument("--per-task", type=int, default=2)
    r.add_argument("--checkpoint", type=int, default=None)
    g = sub.add_parser("goal-use")
    g.add_argument("--run", required=True)
    g.add_argument("--log", required=True)
    g.add_argument("--batches", type=int, default=8)
    f = sub.add_parser("full-goal")
    f.add_argument("--log", required=True)
    f.add_argument("--steps", type=int, default=5400)
    f.add_argument("--per-task", type=int, default=10)
    f.add_argument("--hidden", type=int, default=128)
    c = sub.add_parser("coverage")
    c.add_argument("--log", required=True)
    c.add_argument("--stride", type=int, default=4)
    a = p.parse_args()
    if a.check == "expert":
        check_expert(a.per_task, a.perturbation)
    elif a.check == "inputs":
        check_inputs(a.log, a.per_task)
    elif a.check == "overfit":
        check_overfit(a.demos, a.task, a.agent, a.steps, a.per_task, a.hidden)
    elif a.check == "rollout":
        check_rollout(a.run, a.per_task, a.checkpoint)
    elif a.check == "goal-use":
        check_goal_use(a.run, a.log, a.batches)
    elif a.check == "full-goal":
        check_full_goal(a.log, a.steps, a.per_task, a.hidden)
    else:
        check_coverage(a.log, a.stride)


if __name__ == "__main__":
    main()
