"""CalendarConflict-v0: env speed and the baselines table on held-out (test) users.

    OMP_NUM_THREADS=1 python benchmarks/calendar_baselines.py \
        [--ppo-run logs/ppo/selfgym-CalendarConflict-v0_1] [--ppo-checkpoint STEPS]

Writes benchmarks/results/calendar_baselines.json and .md. Baselines: random; heuristics
(earliest scheduled, most senior attendee); the online preference learner (no prior, and
with role priors fitted on training users); PPO from a train.py run (trained on training
users). Each test user plays one episode of N rounds; ERR is pooled (see metrics.summarize).
The LLM baselines (SmolLM2-135M zero-shot and + StrategyHub, on a subset of users and rounds, next to
random on the same subset) are in benchmarks/calendar_llm_baselines.py -> results/calendar_llm_baselines.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import selfgym  # noqa: F401  (registers the selfgym/ ids)
from selfgym.envs.calendar.env import CalendarConflictEnv
from selfgym.envs.calendar.metrics import summarize
from selfgym.envs.calendar.schema import max_attendee_seniority

RESULTS = Path(__file__).resolve().parent / "results"
_USER_KEYS = {"split", "data_seed", "n_users", "users"}  # which users; never taken from a PPO run
Policy = Callable[[CalendarConflictEnv, np.ndarray, bool], list[int]]


def env_speed(seconds: float, **kwargs: Any) -> dict[str, float]:
    """Random-action steps per second of the raw env and of gym.make's wrapped env (warm cache),
    per wall-clock second and per CPU second of this process (less sensitive to a busy machine)."""
    out = {}
    for name, env in (("raw", CalendarConflictEnv(**kwargs)), ("gym_make", gym.make("selfgym/CalendarConflict-v0", **kwargs))):
        env.reset(seed=0)
        for u in env.unwrapped.user_ids:  # generate every user first: we time stepping, not generation
            env.unwrapped.user_data(u)
        rng = np.random.default_rng(0)
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds:
            env.reset()
            done = False
            while not done:
                a = int(rng.integers(5)) if kwargs.get("obs_mode", "structured") == "structured" else '{"selected_event_to_accept": %d}' % int(rng.integers(5))
                _, _, done, _, _ = env.step(a)
                n += 1
        out[name] = n / (time.perf_counter() - t0)
        out[name + "_per_cpu_s"] = n / max(time.process_time() - c0, 1e-9)
    return out


def generation_speed(n: int = 5) -> float:
    from selfgym.envs.calendar.generate import make_user_data

    t0 = time.perf_counter()
    for u in range(1000, 1000 + n):
        make_user_data(0, u)
    return (time.perf_counter() - t0) / n


# --- baseline policies: each returns a full ranking (best first), so ORD is exact -------------------
def _rank(keys: Any) -> list[int]:
    return [int(k) for k in np.argsort(-np.asarray(keys, dtype=np.float64), kind="stable")]


def random_policy(seed: int) -> Policy:
    rng = np.random.default_rng(seed)
    return lambda env, obs, start: [int(k) for k in rng.permutation(env.m)]


def earliest_scheduled(env: CalendarConflictEnv, obs: np.ndarray, start: bool) -> list[int]:
    return _rank([-e.created for e in env.data.rounds[env.t].events])


def most_senior(env: CalendarConflictEnv, obs: np.ndarray, start: bool) -> list[int]:
    return _rank([max_attendee_seniority(e, env.data.user) for e in env.data.rounds[env.t].events])


def learner_policy(agent: Any) -> Policy:
    def act(env: CalendarConflictEnv, obs: np.ndarray, start: bool) -> list[int]:
        agent.predict(obs[None], episode_start=np.array([start]), deterministic=True)  # takes in the feedback
        return agent.ranking(obs)

    return act


def ppo_policy(agent: Any) -> Policy:
    """Rank by the policy's action probabilities (the argmax, its deterministic action, first)."""
    import torch

    policy = agent.model.policy

    def act(env: CalendarConflictEnv, obs: np.ndarray, start: bool) -> list[int]:
        with torch.no_grad():
            obs_t, _ = policy.obs_to_tensor(obs[None])
            probs = policy.get_distribution(obs_t).distribution.probs[0].cpu().numpy()
        return _rank(probs)

    return act


def evaluate(policy: Policy, env: CalendarConflictEnv) -> dict[str, Any]:
    episodes = []
    for uid in env.user_ids:
        obs, _ = env.reset(options={"user_id": uid})
        done, start = False, True
        while not done:
            obs, _, done, _, info = env.step(policy(env, obs, start))
            start = False
        episodes.append({"user_id": uid, "role": env.data.user.role, "per_round_error": info["per_round_error"],
                         "per_round_ord": info["per_round_ord"]})
    s = summarize(episodes)
    errs = np.array([e["per_round_error"] for e in episodes])
    q = errs.shape[1] // 4
    s["error_by_quarter"] = [float(errs[:, i * q:(i + 1) * q].mean()) for i in range(4)]
    return s


def load_ppo(run: str) -> Any:
    """``RUN`` (its final model) or ``RUN@STEPS`` (the checkpoint at STEPS)."""
    from selfgym.evaluation import load_run

    path, _, steps = run.partition("@")
    _, agent, _, folder = load_run(Path(path), checkpoint=int(steps) if steps else None)
    return agent, str(folder)


def runs_env_kwargs(run: str) -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load((Path(run) / "config.yaml").read_text()).get("env_kwargs") or {})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--rounds", type=int, default=104)
    p.add_argument("--events", type=int, default=5)
    p.add_argument("--speed-seconds", type=float, default=3.0)
    p.add_argument("--prior-episodes", type=int, default=70, help="training episodes to fit the learner's role priors")
    p.add_argument("--ppo-run", action="append", default=[], metavar="[LABEL=]RUN",
                   help="a train.py run folder of ppo on CalendarConflict-v0, RUN@STEPS for a checkpoint (repeatable)")
    p.add_argument("--out", default=str(RESULTS / "calendar_baselines"))
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    kw = dict(n_users=a.users, n_rounds=a.rounds, n_events=a.events)
    report: dict[str, Any] = {"settings": kw | {"split": "test"}, "load_before": os.getloadavg()}
    report["speed_steps_per_s"] = {"structured": env_speed(a.speed_seconds, **kw),
                                   "text": env_speed(a.speed_seconds / 3, obs_mode="text", **kw)}
    report["generation_s_per_user"] = generation_speed()
    print("speed", report["speed_steps_per_s"], "generation s/user", round(report["generation_s_per_user"], 3), flush=True)

    from stable_baselines3.common.vec_env import DummyVecEnv

    from selfgym.agents import get_agent_class

    test_env = CalendarConflictEnv(split="test", **kw)
    train_venv = DummyVecEnv([lambda: CalendarConflictEnv(split="train", **kw)])
    learner_cls = get_agent_class("preference_learner")
    online = learner_cls(train_venv, device="cpu", seed=0, logger=None, reward_modules=[], use_prior=False)
    prior = learner_cls(train_venv, device="cpu", seed=0, logger=None, reward_modules=[], use_prior=True)

    class _Hooks:
        def on_step(self, n: int) -> bool:
            return True

    t0 = time.perf_counter()
    prior.learn(a.prior_episodes * a.rounds, _Hooks())
    report["prior_fit_s"] = time.perf_counter() - t0
    policies: dict[str, Policy] = {
        "random": random_policy(0),
        "earliest_scheduled": earliest_scheduled,
        "most_senior_attendee": most_senior,
        "preference_learner (online, no prior)": learner_policy(online),
        f"preference_learner (+ role prior, {a.prior_episodes} train episodes)": learner_policy(prior),
    }
    ppo_names = []
    for spec in a.ppo_run:
        label, _, run = spec.rpartition("=")
        ppo, folder = load_ppo(run)
        env_kwargs = runs_env_kwargs(run.partition("@")[0])
        name = f"ppo{' ' + label if label else ''} (train users -> test users)"
        report.setdefault("ppo_runs", {})[name] = {"weights": folder, "env_kwargs": env_kwargs}
        policies[name] = ppo_policy(ppo)
        ppo_names.append((name, env_kwargs))
    results = {}
    for name, policy in policies.items():
        t0 = time.perf_counter()
        # the run's own observation settings, but always the test users of data_seed 0
        extra = {k: v for k, v in next((kw_ for n, kw_ in ppo_names if n == name), {}).items() if k not in _USER_KEYS}
        results[name] = evaluate(policy, CalendarConflictEnv(split="test", **(kw | extra)) if extra else test_env)
        r = results[name]
        print(f"{name:55s} AER {r['aer']:.3f} ORD {r['ord']:.3f} Q1 {r['error_first_quarter']:.3f} "
              f"Q4 {r['error_last_quarter']:.3f} ERR {r['err']:.3f} ({time.perf_counter() - t0:.1f}s)", flush=True)
    for name, env_kwargs in ppo_names:  # the same policy on 15 of its training users: the generalisation gap
        train_env = CalendarConflictEnv(**(kw | env_kwargs | {"split": "train"}))
        train_env.user_ids = train_env.user_ids[:15]
        results[name.replace("train users -> test users", "on 15 of its training users")] = evaluate(policies[name], train_env)
    report["results"] = results
    report["load_after"] = os.getloadavg()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [f"CalendarConflict-v0, M={s['n_events']}, N={s['n_rounds']}, W=5, {s['n_users']} users "
             f"(test users: {report['results'][next(iter(report['results']))]['episodes']}), one episode per test user.",
             "", "| agent | AER | ORD | error Q1 | error Q4 | ERR (pooled) | ERR (mean per user) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in report["results"].items():
        lines.append(f"| {name} | {r['aer']:.3f} | {r['ord']:.3f} | {r['error_first_quarter']:.3f} | "
                     f"{r['error_last_quarter']:.3f} | {r['err']:.3f} | {r['err_mean']:.3f} |")
    sp = report["speed_steps_per_s"]
    st = sp["structured"]
    lines += ["", f"Env speed (random actions, cache warm): structured raw {st['raw']:.0f} steps/s "
              f"({st['raw_per_cpu_s']:.0f} per CPU second), via gym.make {st['gym_make']:.0f} steps/s "
              f"({st['gym_make_per_cpu_s']:.0f} per CPU second); text {sp['text']['raw']:.0f} steps/s. "
              f"Generating one user (year + {s['n_rounds']} rounds): {report['generation_s_per_user']:.3f} s.",
              f"Load average before/after: {report['load_before']} / {report['load_after']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
