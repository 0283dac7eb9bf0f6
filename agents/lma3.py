"""LMA3: an autotelic agent whose language model sets its goals, relabels its experience and
rewards it (Colas, Teodorescu, Oudeyer, Yuan, Cote; CoLLAs 2023), on ``selfgym/CookingWorld-v0``.

The loop, ``episodes_per_update`` episodes at a time:

1. goal: with probability ``p_generate`` one the goal generator proposed (built from mastered
   goals, with its decomposition into them), else one of the library drawn by learning
   progress; an empty library means a random exploration episode;
2. act: the goal-conditioned policy (agents/lma3_parts.py) picks valid commands; a decomposed
   goal runs subgoal by subgoal (switching when the reward role is the cheap oracle and says the
   subgoal is done, else after an equal share of the episode);
3. relabel: the relabeler lists the goals each trajectory achieved; new ones join the library;
4. reward: the reward function judges each pursued goal; the library records the outcome;
5. learn: behaviour cloning on every relabelled success (the steps up to its achievement,
   information commands left out) and on the judged successes of pursued goals.

Roles (``relabeler``, ``reward``: "lm" or "oracle"; ``generator``: "lm", "oracle" or "none")
give the ablations: all oracle is the upper bound, ``generator="none"`` relabelled goals only,
``decompose=False`` no decomposition. LM calls are batched over the update's episodes and cached.
Logged per update: goals discovered and mastered against episodes, LM calls, prompts and seconds
per episode, parse failures; examples in goals.json and the curve in goals.png (``draw_picture``).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfgym.agents.base import TrainingHooks
from selfgym.agents.lma3_eval import draw_goals, evaluate_heldout, summary_table
from selfgym.agents.lma3_parts import GoalLibrary, GoalPolicy, words
from selfgym.agents.lma3_roles import LMRoles, OracleRoles, Trajectory
from selfgym.envs.cooking.game import Game
from selfgym.envs.cooking.goals import atoms, grammar_goals, oracle_judge
from selfgym.envs.cooking.world import draw_layout
from selfgym.envs.text.spaces import as_text
from selfgym.llm.policy import LLMPolicy
from selfgym.runs import atomic_write

INFO_VERBS = ("look", "inventory", "examine")
#: Held-out goals written by hand (not drawn from the relabeler's phrasing), checked by the oracle
#: on test-split layouts in ``evaluate_task_suite``.
HELD_OUT_GOALS = (
    "go to the kitchen", "go to the garden", "go to the backyard", "go to the pantry", "open the fridge",
    "take the knife", "pick up the carrot", "slice the carrot", "dice the potato", "chop the apple",
    "fry the potato", "roast the carrot", "grill the tomato", "cook the potato", "put the apple in the fridge",
    "put the knife on the counter", "eat the apple", "eat the sliced apple", "eat the fried potato",
    "take the knife and open the fridge",
)
ROLE_CHOICES = {"relabeler": ("lm", "oracle"), "reward": ("lm", "oracle"), "generator": ("lm", "oracle", "none")}


class LMA3Agent:
    """Hyperparameters (hyperparams/lma3.yml):

    relabeler, reward, generator: which role is the LM and which the oracle (see ROLE_CHOICES).
    decompose: run generated goals subgoal by subgoal.
    model: the LM for the "lm" roles: "default" (SmolLM2-135M-Instruct, offline) or a local path.
    num_threads: torch CPU threads (process-wide); lm_batch_size, max_new_tokens: LM sampling.
    p_generate: probability of pursuing a generated goal when one is queued.
    goals_per_call: goals asked of the generator per update (one batched call).
    episodes_per_update: episodes whose relabelling and judging share one batched LM call.
    mastery_window, mastery_threshold: mastered = success rate >= threshold over the last window attempts.
    epsilon, learning_rate, replay, n_features: the policy's exploration, SGD step, replayed examples
        per update and hashed feature count.
    bc_window: steps before a goal's achievement that are imitated for it.
    calibrate_reward: the LM reward says yes when p(yes) beats its value after an empty trajectory
        (contextual calibration), not 0.5 (see LMRoles.reward).
    goal_space: "open" (goals come from the relabeler and generator) or "hand": the hand-coded-goal
        baseline, whose library starts with every atomic goal of the oracle grammar in the training
        games and never grows (oracle relabeler and reward, no generator).
    eval_layouts: test layouts per held-out goal in ``evaluate_task_suite``.
    """

    def __init__(self, env: Any, *, device: str = "cpu", seed: int | None = None, logger: Any = None,
                 reward_modules: list | None = None, relabeler: str = "lm", reward: str = "lm",
                 generator: str = "lm", decompose: bool = True, model: str = "default", num_threads: int = 1,
                 lm_batch_size: int = 8, max_new_tokens: int = 48, p_generate: float = 0.5,
                 goals_per_call: int = 2, episodes_per_update: int = 4, mastery_window: int = 5,
                 mastery_threshold: float = 0.6, epsilon: float = 0.2, learning_rate: float = 0.5,
                 replay: int = 256, n_features: int = 2**18, bc_window: int = 10, eval_layouts: int = 3,
                 goal_space: str = "open", calibrate_reward: bool = True) -> None:
        generator = "none" if generator is None else generator  # YAML and -params read none as null
        for role, value in (("relabeler", relabeler), ("reward", reward), ("generator", generator)):
            if value not in ROLE_CHOICES[role]:
                raise ValueError(f"lma3: {role}={value!r}; choose from {ROLE_CHOICES[role]}")
        if goal_space not in ("open", "hand"):
            raise ValueError(f"lma3: goal_space={goal_space!r}; choose from ('open', 'hand')")
        if goal_space == "hand" and (relabeler, reward, generator) != ("oracle", "oracle", "none"):
            raise ValueError("lma3: goal_space='hand' is the hand-coded-goal baseline: it needs relabeler=oracle, "
                             f"reward=oracle, generator=none (got {relabeler}, {reward}, {generator})")
        if env.num_envs != 1:
            raise ValueError(f"lma3 runs one env (its episodes are judged one by one); got n_envs={env.num_envs}")
        if not env.has_attr("true_state") or not env.get_attr("state_in_info")[0]:
            raise ValueError("lma3 needs selfgym/CookingWorld-v0 with env_kwargs state_in_info=True "
                             "(hyperparams/lma3.yml sets it)")
        if reward_modules:
            raise ValueError("lma3 makes its own rewards (its reward role); it takes no --reward modules")
        self.env, self.logger, self.seed = env, logger, 0 if seed is None else int(seed)
        self.names = {"relabeler": relabeler, "reward": reward, "generator": generator}
        self.decompose, self.p_generate = bool(decompose), float(p_generate)
        self.goals_per_call, self.episodes_per_update = int(goals_per_call), int(episodes_per_update)
        self.replay, self.eval_layouts, self.bc_window = int(replay), int(eval_layouts), int(bc_window)
        if self.bc_window < 1:
            raise ValueError(f"lma3: bc_window must be >= 1, got {bc_window}")
        self.rng = random.Random(self.seed)
        self.oracle = OracleRoles()
        self.lm = None
        if "lm" in self.names.values():  # the model loads on the first LM call (evaluation makes none)
            def load() -> LLMPolicy:
                return LLMPolicy(model, device=device, num_threads=num_threads, max_new_tokens=max_new_tokens)

            self.lm = LMRoles(load, batch_size=lm_batch_size, max_new_tokens=max_new_tokens, calibrate=calibrate_reward)
        self.roles = {role: (self.lm if name == "lm" else self.oracle) for role, name in self.names.items() if name != "none"}
        self.library = GoalLibrary(mastery_window, mastery_threshold, seed=self.seed)
        self.oracle_check = GoalLibrary(mastery_window, mastery_threshold, seed=self.seed)  # evaluation only
        self.goal_space = goal_space
        self.hand_goals = self._hand_goals() if goal_space == "hand" else set()
        for goal in sorted(self.hand_goals):
            self.library.add(goal, "hand", 0)
        self.policy = GoalPolicy(n_features, learning_rate, epsilon, seed=self.seed)
        self.queue: list[tuple[str, list[str]]] = []
        self.curve: list[list[float]] = []  # [episode, discovered, mastered, lm_seconds, mastered per the oracle]
        self.episodes, self.num_timesteps = 0, 0
        spec = env.get_attr("spec")[0]
        self.episode_steps = int(getattr(spec, "max_episode_steps", None) or 50)
        self.eval_goal = ""
        self._obs: str | None = None

    def _hand_goals(self) -> set[str]:
        """The grammar's atomic goals over the env's training games (needs a fixed set: num_layouts > 0)."""
        attrs = {k: self.env.get_attr(k)[0] for k in ("split", "num_rooms", "num_foods", "doors", "test_fraction",
                                                      "num_layouts")}
        if attrs["num_layouts"] < 1:
            raise ValueError("lma3: goal_space='hand' enumerates the goals of a fixed set of games: set num_layouts > 0")
        goals: set[str] = set()
        for seed in range(attrs["num_layouts"]):
            layout = draw_layout(seed, attrs["split"], attrs["num_rooms"], attrs["num_foods"], attrs["doors"],
                                 attrs["test_fraction"])
            goals |= set(grammar_goals(Game(layout).state()))
        return goals

    # -- acting --------------------------------------------------------------------------------
    def _choose_goal(self) -> tuple[str, list[str]]:
        if self.queue and self.rng.random() < self.p_generate:
            return self.queue.pop(0)
        goal = self.library.sample()
        return (goal, []) if goal else ("", [])

    def _run_episode(self, goal: str, subgoals: list[str], hooks: TrainingHooks) -> tuple[Trajectory, bool]:
        if self._obs is None:
            self._obs = str(as_text(self.env.reset()[0]))
        traj = Trajectory(goal, subgoals, states=[self.env.env_method("true_state")[0]])
        plan = subgoals or [goal]
        share = max(1, math.ceil(self.episode_steps / len(plan)))
        current, started = 0, 0
        while True:
            commands = self.env.env_method("valid_commands")[0]
            target = plan[current]
            index = self.policy.act(target, self._obs, commands) if target else self.rng.randrange(len(commands))
            traj.observations.append(self._obs)
            traj.valid.append(commands)
            obs, _, dones, infos = self.env.step(np.array([index]))
            info = infos[0]
            traj.commands.append(commands[index])
            traj.feedback.append(info["feedback"])
            traj.states.append(info["state"])
            self._obs = str(as_text(obs[0]))
            self.num_timesteps += 1
            keep_going = hooks.on_step(self.num_timesteps)
            if dones[0] or not keep_going:
                return traj, keep_going
            steps = len(traj.commands)
            if current + 1 < len(plan) and (steps - started >= share or self._subgoal_done(target, traj.states[started:])):
                current, started = current + 1, steps

    def _subgoal_done(self, subgoal: str, states: list[dict[str, Any]]) -> bool:
        """Only the oracle reward is cheap enough to ask every step."""
        return self.names["reward"] == "oracle" and oracle_judge(subgoal, states).success

    def predict(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """Act for ``self.env``'s one env, conditioned on ``eval_goal`` (default: the most attempted mastered goal)."""
        goal = self.eval_goal or self._default_goal()
        commands = self.env.env_method("valid_commands")[0]
        text = str(as_text(np.asarray(observation, dtype=object).reshape(-1)[0]))
        index = self.policy.act(goal, text, commands, deterministic) if goal else self.rng.randrange(len(commands))
        return np.array([index]), state

    def _default_goal(self) -> str:
        mastered = self.library.mastered()
        return max(mastered, key=lambda g: self.library.goals[g].attempts) if mastered else ""

    # -- learning ------------------------------------------------------------------------------
    def learn(self, total_timesteps: int, hooks: TrainingHooks) -> None:
        keep_going = True
        while keep_going and self.num_timesteps < total_timesteps:
            batch = []
            for _ in range(self.episodes_per_update):
                goal, subgoals = self._choose_goal()
                traj, keep_going = self._run_episode(goal, subgoals, hooks)
                batch.append(traj)
                if not keep_going or self.num_timesteps >= total_timesteps:
                    break
            self._update(batch)

    def _achievement_step(self, goal: str, traj: Trajectory) -> int:
        """Steps to imitate for ``goal``: up to its achievement (exact with the oracle relabeler,
        else the last command sharing a word with the goal, else the whole trajectory)."""
        if self.names["relabeler"] == "oracle":
            before = atoms(traj.states[0])
            for t, state in enumerate(traj.states[1:], start=1):
                now = atoms(state)
                if goal in now and goal not in before:
                    return t
                before = now
        goal_words = set(words(goal))
        hits = [t for t, c in enumerate(traj.commands, start=1) if goal_words & set(words(c))]
        return hits[-1] if hits else len(traj.commands)

    def _imitate(self, goal: str, traj: Trajectory, upto: int) -> int:
        """Behaviour-cloning examples of ``goal``: the last ``bc_window`` steps before step ``upto``
        (information commands left out); earlier steps are mostly wandering, not the way to it."""
        added = 0
        for t in range(max(0, upto - self.bc_window), upto):
            command = traj.commands[t]
            if not command.startswith(INFO_VERBS):
                self.policy.add(goal, traj.observations[t], traj.valid[t], traj.valid[t].index(command))
                added += 1
        return added

    def _update(self, batch: list[Trajectory]) -> None:
        start = time.perf_counter()
        relabelled = self.roles["relabeler"].relabel(batch)
        pursued = [(t.goal, t) for t in batch if t.goal]
        judged = self.roles["reward"].reward(pursued) if pursued else []
        new_examples = 0
        for traj, goals in zip(batch, relabelled):
            self.episodes += 1
            for goal in goals:
                if self.hand_goals and goal not in self.hand_goals:
                    continue  # the hand-coded baseline knows only its own goal space
                self.library.add(goal, "relabelled", self.episodes)
                new_examples += self._imitate(goal, traj, self._achievement_step(goal, traj))
        for (goal, traj), (success, _) in zip(pursued, judged):
            self.library.record(goal, success, self.episodes)
            self._record_oracle_check(goal, traj)
            if success and goal not in relabelled[batch.index(traj)]:
                new_examples += self._imitate(goal, traj, self._achievement_step(goal, traj))
        loss = self.policy.train(new_examples, self.replay)
        self._generate(batch)
        self._log(batch, judged, loss, time.perf_counter() - start)

    def _record_oracle_check(self, goal: str, traj: Trajectory) -> None:
        """The oracle's verdict on the same attempt, kept apart for evaluation only (never learned from):
        mastery that the reward role claims can then be checked (goals_mastered_oracle)."""
        verdict = oracle_judge(goal, traj.states)
        if verdict.status != "outside_grammar":  # a goal naming what this game lacks was not achieved
            self.oracle_check.add(goal, "checked", self.episodes)
            self.oracle_check.record(goal, verdict.success, self.episodes)

    def _generate(self, batch: list[Trajectory]) -> None:
        if "generator" not in self.roles:
            return
        mastered = self.library.mastered()
        if len(mastered) < 2 or len(self.queue) >= 2 * self.goals_per_call:
            return
        for goal, steps in self.roles["generator"].generate(mastered, batch, self.goals_per_call, self.rng):
            steps = [s for s in steps if s in self.library.goals] if self.decompose else []
            if self.library.add(goal, "generated", self.episodes, steps):
                self.queue.append((goal, steps))

    def _log(self, batch: list[Trajectory], judged: list[tuple[bool, float]], loss: float, seconds: float) -> None:
        lm_seconds = sum(s.seconds for s in self.lm.stats.values()) if self.lm else 0.0
        discovered, mastered = len(self.library.goals), len(self.library.mastered())
        self.curve.append([self.episodes, discovered, mastered, lm_seconds, len(self.oracle_check.mastered())])
        if self.logger is None:
            return
        stats = (self.lm or self.oracle).stats
        self.logger.record("lma3/episodes", self.episodes)
        self.logger.record("lma3/goals_discovered", discovered)
        self.logger.record("lma3/goals_mastered", mastered)
        self.logger.record("lma3/goals_mastered_oracle", len(self.oracle_check.mastered()))
        self.logger.record("lma3/pursued_success", float(np.mean([s for s, _ in judged])) if judged else float("nan"))
        self.logger.record("lma3/bc_loss", loss)
        self.logger.record("lma3/lm_prompts", sum(s.prompts for s in stats.values()))
        self.logger.record("lma3/lm_calls", sum(s.calls for s in stats.values()))
        self.logger.record("lma3/lm_seconds_per_episode", lm_seconds / max(self.episodes, 1))
        self.logger.record("lma3/parse_failures", sum(s.parse_failures for s in stats.values()))
        self.logger.record("lma3/update_seconds", seconds)
        self.logger.record("time/total_timesteps", self.num_timesteps)
        self.logger.dump(self.num_timesteps)

    # -- evaluation, picture, checkpoints -----------------------------------------------------
    def goal_report(self, examples: int = 10) -> dict[str, Any]:
        """Goals discovered and mastered, with examples of each and the LM roles' counters."""
        goals = self.library.goals
        mastered = sorted(self.library.mastered(), key=lambda g: goals[g].mastered_at)
        return {"episodes": self.episodes, "goals_discovered": len(goals), "goals_mastered": len(mastered),
                "goals_mastered_oracle": len(self.oracle_check.mastered()),
                "mastered_oracle_examples": self.oracle_check.mastered()[:examples],
                "discovered_examples": list(goals)[:examples], "mastered_examples": mastered[:examples],
                "generated_examples": [(g, goals[g].subgoals) for g in goals if goals[g].source == "generated"][:examples],
                "roles": self.names, "lm_stats": self.lm.state_dict() if self.lm else None,
                "oracle_stats": self.oracle.state_dict()}

    def evaluate_task_suite(self, deterministic: bool = True) -> dict[str, Any]:
        """Held-out human-written goals on test-split layouts (oracle-judged), and the goal counts."""
        kwargs = {k: self.env.get_attr(k)[0] for k in ("num_rooms", "num_foods", "doors", "test_fraction")}
        results = evaluate_heldout(self.policy, HELD_OUT_GOALS, kwargs, self.eval_layouts, self.episode_steps,
                                   deterministic)
        rate, table = summary_table(results)
        report = self.goal_report()
        table = (f"goals discovered {report['goals_discovered']}, mastered {report['goals_mastered']} "
                 f"(by the oracle's verdicts on the same attempts: {report['goals_mastered_oracle']}) "
                 f"after {self.episodes} episodes\n" + table)
        return {"results": results, "heldout_success": rate, "table": table, **report}

    def draw_picture(self, run_dir: Any, title: str = "") -> Any:
        """goals.png (discovered and mastered against episodes) and goals.json (examples, LM counters)."""
        atomic_write(Path(run_dir) / "goals.json", json.dumps(self.goal_report(50), indent=1))
        return draw_goals(self.curve, Path(run_dir) / "goals.png", title)

    def _rngs(self) -> dict[str, random.Random]:
        return {"agent": self.rng, "library": self.library.rng, "policy": self.policy.rng}

    def state_dict(self, include_buffers: bool = True) -> dict[str, Any]:
        state = {"weights": torch.from_numpy(self.policy.weights.copy()), "library": self.library.state_dict(),
                 "oracle_check": self.oracle_check.state_dict(),
                 "queue": [[g, list(s)] for g, s in self.queue], "curve": [list(map(float, row)) for row in self.curve],
                 "episodes": self.episodes, "num_timesteps": self.num_timesteps, "roles": dict(self.names),
                 "rngs": {name: _rng_state(r) for name, r in self._rngs().items()},
                 "role_stats": {"oracle": self.oracle.state_dict(), **({"lm": self.lm.state_dict()} if self.lm else {})}}
        if include_buffers:
            state["buffer"] = [[g, o, list(c), t] for g, o, c, t in self.policy.buffer]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        weights = np.asarray(state["weights"], dtype=np.float32)
        if weights.shape != self.policy.weights.shape:
            raise ValueError(f"lma3 weights have shape {weights.shape}; this agent has {self.policy.weights.shape} "
                             "(n_features differs)")
        self.policy.weights = weights.copy()
        self.library.load_state_dict(state["library"])
        self.oracle_check.load_state_dict(state["oracle_check"])
        self.queue = [(g, list(s)) for g, s in state["queue"]]
        self.curve = [list(row) for row in state["curve"]]
        self.episodes, self.num_timesteps = int(state["episodes"]), int(state["num_timesteps"])
        for name, rng in self._rngs().items():
            rng.setstate(_rng_from(state["rngs"][name]))
        role_stats = state.get("role_stats", {})  # absent in checkpoints before 2026-11-30: counters start at 0
        self.oracle.load_state_dict(role_stats.get("oracle", {}))
        if self.lm is not None:
            self.lm.load_state_dict(role_stats.get("lm", {}))
        self.policy.buffer.clear()
        for g, o, c, t in state.get("buffer", []):
            self.policy.buffer.append((g, o, list(c), int(t)))
        self._obs = None


def _rng_state(rng: random.Random) -> list[Any]:
    """A ``random.Random`` state as plain data (torch.load(weights_only=True) takes lists of ints)."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_from(state: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss = state
    return int(version), tuple(int(x) for x in internal), None if gauss is None else float(gauss)
