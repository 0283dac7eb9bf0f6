"""LMA3's three language-model roles and their oracle counterparts (Colas et al., CoLLAs 2023).

* relabeler: a trajectory -> the goals it achieved, in language (hindsight relabelling);
* goal generator: mastered goals and recent experience -> a new goal and its decomposition
  into mastered goals;
* reward function: (goal, trajectory) -> achieved or not, with a likelihood.

The LM roles are prompt templates on ``LLMPolicy`` (the offline default model, or any local
model by path). Every call is batched over the trajectories of one update and cached (same
prompt, same answer: greedy decoding); ``stats`` counts calls, prompts, seconds and parse
failures. An answer that does not parse is counted and yields nothing, never an exception.
The reward function reads no free text at all: it compares the next-token probabilities of
"yes" and "no" after the question (one forward pass), so it always answers, with p(yes).
Trajectories are shown as their last 20 state-changing commands with feedback.

The oracle roles (``Oracle*``) read the true states through envs/cooking/goals.py: exact,
deterministic and free, for ablations (upper bound) and fast tests.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from selfgym.envs.cooking.goals import OutsideGrammar, oracle_judge, oracle_relabel, parse_goal


_INFO = ("look", "inventory", "examine")
EMPTY_TRAJECTORY = "(the agent only looked around)"


@dataclass
class Trajectory:
    """One episode: the goal pursued, the commands, their feedback and the true states s_0..s_T."""

    goal: str
    subgoals: list[str]
    commands: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)  # o_0..o_{T-1}: what each command was chosen from
    valid: list[list[str]] = field(default_factory=list)  # the valid commands at each of those steps
    states: list[dict[str, Any]] = field(default_factory=list)

    def text(self, max_steps: int = 20) -> str:
        """The trajectory as the LM reads it: numbered commands and their feedback (state-changing ones)."""
        lines = [f"{i + 1}. > {c}: {f.splitlines()[0] if f else ''}"
                 for i, (c, f) in enumerate(zip(self.commands, self.feedback)) if not c.startswith(_INFO)]
        return "\n".join(lines[-max_steps:]) or EMPTY_TRAJECTORY




@dataclass
class RoleStats:
    calls: int = 0
    prompts: int = 0
    cached: int = 0
    seconds: float = 0.0
    parse_failures: int = 0
    failure_examples: list[str] = field(default_factory=list)

    def failed(self, answer: str) -> None:
        self.parse_failures += 1
        if len(self.failure_examples) < 5:
            self.failure_examples.append(answer[:200])


def stats_state(stats: dict[str, RoleStats]) -> dict[str, Any]:
    """The roles' counters as plain data (saved with the agent: a resumed or evaluated run reports
    the calls, seconds and parse failures of its training, not of the process that loaded it)."""
    return {role: {**vars(s), "failure_examples": list(s.failure_examples)} for role, s in stats.items()}


def load_stats(stats: dict[str, RoleStats], state: dict[str, Any]) -> None:
    for role, saved in state.items():
        stats[role] = RoleStats(**saved)


RELABEL_PROMPT = (
    "An agent acted in a text cooking game. Its commands and what happened:\n{trajectory}\n\n"
    "List the goals the agent achieved, one per line, in the form of short commands such as "
    "'slice the carrot', 'fry the potato', 'put the apple in the fridge', 'go to the garden'.\nGoals:\n"
)
GENERATE_PROMPT = (
    "In a text cooking game (rooms, a fridge, a knife, a stove, an oven, a barbecue, food) an agent already masters "
    "these goals:\n{mastered}\nRecently it did:\n{recent}\n\n"
    "Invent one new, harder goal that combines two of the mastered goals, and list its steps, each a mastered goal. "
    "Answer with two lines, 'Goal: ...' then 'Steps: ...; ...'.\n"
)
REWARD_PROMPT = (
    "An agent acted in a text cooking game. Its commands and what happened:\n{trajectory}\n\n"
    "Did the agent achieve the goal '{goal}'? Answer yes or no."
)
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*")
_WORDS = re.compile(r"^[a-z][a-z' -]*[a-z]$")


def clean_goal(line: str, max_words: int = 10) -> str | None:
    """A goal-like line (bullets, quotes and final dots stripped, lower case) or None."""
    text = _BULLET.sub("", line).strip().strip("\"'`").rstrip(".!;,").strip().lower()
    if not text or not _WORDS.match(text) or not 2 <= len(text.split()) <= max_words:
        return None
    return text


def parse_goal_list(answer: str, limit: int = 12) -> list[str]:
    goals: dict[str, None] = {}
    for line in answer.splitlines():
        if (goal := clean_goal(line)) is not None and goal not in ("none", "no goals"):
            goals.setdefault(goal, None)
    return list(goals)[:limit]


def parse_generated(answer: str) -> tuple[str, list[str]] | None:
    """(goal, steps) from "Goal: X / Steps: a; b" or "The new goal is to X"; failing those, from a
    list of goals (a small model often lists the goals to combine instead): the first two distinct
    ones joined by "and", with themselves as steps. None when nothing goal-like is found."""
    goal_match = re.search(r"goal(?:\s+is\s+to|\s+is|\s*:)[ \t]*(\S.*)", answer, re.IGNORECASE)
    goal = clean_goal(goal_match.group(1)) if goal_match else None
    if goal is None:
        listed = parse_goal_list("\n".join(line for line in answer.splitlines() if _BULLET.match(line)))
        return (f"{listed[0]} and {listed[1]}", listed[:2]) if len(listed) >= 2 else None
    steps_match = re.search(r"steps?\s*:\s*(.+)", answer, re.IGNORECASE)
    steps = [s for s in (clean_goal(p) for p in re.split(r";|, then | then ", steps_match.group(1)))
             if s] if steps_match else []
    return goal, steps


class LMRoles:
    """The three roles on one ``LLMPolicy`` (relabeler, goal generator, reward function)."""

    kind = "lm"

    def __init__(self, load_policy: Callable[[], Any], batch_size: int = 8, max_new_tokens: int = 48,
                 calibrate: bool = True) -> None:
        """``load_policy`` builds the LLMPolicy on the first LM call (evaluation never pays for it);
        ``calibrate``: see ``reward``."""
        self._load_policy, self._policy, self.calibrate = load_policy, None, bool(calibrate)
        self.batch_size, self.max_new_tokens = int(batch_size), int(max_new_tokens)
        self.stats = {"relabeler": RoleStats(), "generator": RoleStats(), "reward": RoleStats()}
        self._cache: dict[tuple[str, str], Any] = {}
        self._answer_ids: tuple[list[int], list[int]] | None = None

    @property
    def policy(self) -> Any:
        if self._policy is None:
            self._policy = self._load_policy()
        return self._policy

    def _generate(self, role: str, prompts: list[str]) -> list[str]:
        stats = self.stats[role]
        todo = sorted({p for p in prompts if (role, p) not in self._cache})
        stats.cached += len(prompts) - len(todo)
        if todo:
            start = time.perf_counter()
            answers = self.policy.generate(todo, greedy=True, batch_size=self.batch_size, max_new_tokens=self.max_new_tokens)
            stats.seconds += time.perf_counter() - start
            stats.calls += math.ceil(len(todo) / self.batch_size)
            stats.prompts += len(todo)
            self._cache.update({(role, p): a for p, a in zip(todo, answers)})
        return [self._cache[(role, p)] for p in prompts]

    def relabel(self, trajectories: Sequence[Trajectory]) -> list[list[str]]:
        answers = self._generate("relabeler", [RELABEL_PROMPT.format(trajectory=t.text()) for t in trajectories])
        out = []
        for answer in answers:
            goals = parse_goal_list(answer)
            if not goals:
                self.stats["relabeler"].failed(answer)
            out.append(goals)
        return out

    def generate(self, mastered: Sequence[str], recent: Sequence[Trajectory], n: int, rng: random.Random) -> list[tuple[str, list[str]]]:
        prompts = []
        for _ in range(n):
            shown = rng.sample(list(mastered), min(8, len(mastered)))
            prompts.append(GENERATE_PROMPT.format(mastered="\n".join(f"- {g}" for g in shown),
                                                  recent="\n".join(t.text(8) for t in recent[-2:]) or "(nothing yet)"))
        out = []
        for answer in self._generate("generator", prompts):
            parsed = parse_generated(answer)
            if parsed is None:
                self.stats["generator"].failed(answer)
            else:
                out.append(parsed)
        return out

    def reward(self, pairs: Sequence[tuple[str, Trajectory]]) -> list[tuple[bool, float]]:
        """(achieved, p(yes)) per (goal, trajectory): one forward pass per prompt, then the
        next-token probabilities of "yes"/"Yes" against "no"/"No" (no text to parse).

        With ``calibrate`` (contextual calibration, Zhao et al. 2021) a goal counts as achieved
        when p(yes) beats the same question's p(yes) after an empty trajectory, not 0.5: a small
        model's p(yes) sits near one value whatever happened (SmolLM2-135M: 0.46-0.49)."""
        prompts = [REWARD_PROMPT.format(trajectory=t.text(), goal=g) for g, t in pairs]
        nulls = [REWARD_PROMPT.format(trajectory=EMPTY_TRAJECTORY, goal=g) for g, _ in pairs] if self.calibrate else []
        self._judge(prompts + nulls)
        p_yes = [self._cache[("reward", p)] for p in prompts]
        bars = [self._cache[("reward", p)] for p in nulls] if self.calibrate else [0.5] * len(prompts)
        return [(p > bar, p) for p, bar in zip(p_yes, bars)]

    def _judge(self, prompts: list[str]) -> None:
        stats = self.stats["reward"]
        todo = sorted({p for p in prompts if ("reward", p) not in self._cache})
        stats.cached += len(prompts) - len(todo)
        if not todo:
            return
        start = time.perf_counter()
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i: i + self.batch_size]
            for prompt, p_yes in zip(chunk, self._p_yes(chunk)):
                self._cache[("reward", prompt)] = p_yes
            stats.calls += 1
        stats.seconds += time.perf_counter() - start
        stats.prompts += len(todo)

    @torch.no_grad()
    def _p_yes(self, prompts: list[str]) -> list[float]:
        if self._answer_ids is None:
            first = lambda w: self.policy.tokenizer.encode(w, add_special_tokens=False)[0]  # noqa: E731
            self._answer_ids = ([first(w) for w in ("yes", "Yes")], [first(w) for w in ("no", "No")])
        ids, mask = self.policy.encode(prompts)
        logits = self.policy.model(input_ids=ids, attention_mask=mask).logits[:, -1].float()
        yes = torch.logsumexp(logits[:, self._answer_ids[0]], dim=1)
        no = torch.logsumexp(logits[:, self._answer_ids[1]], dim=1)
        return torch.sigmoid(yes - no).tolist()

    def state_dict(self) -> dict[str, Any]:
        return stats_state(self.stats)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_stats(self.stats, state)


class OracleRoles:
    """The same three roles read off the true states (oracle_relabel / oracle_judge): exact and free.

    ``generate`` joins two mastered goals with "and" (decomposition: the two); ``reward``
    counts a goal outside the oracle grammar as not achieved and in ``stats``' parse failures.
    """

    kind = "oracle"

    def __init__(self) -> None:
        self.stats = {"relabeler": RoleStats(), "generator": RoleStats(), "reward": RoleStats()}

    def relabel(self, trajectories: Sequence[Trajectory]) -> list[list[str]]:
        self.stats["relabeler"].calls += 1
        return [oracle_relabel(t.states) for t in trajectories]

    def generate(self, mastered: Sequence[str], recent: Sequence[Trajectory], n: int, rng: random.Random) -> list[tuple[str, list[str]]]:
        self.stats["generator"].calls += 1
        atomic = sorted(g for g in mastered if " and " not in g)
        out = []
        for _ in range(n if len(atomic) >= 2 else 0):
            first, second = sorted(rng.sample(atomic, 2))  # one order: "a and b" is "b and a"
            out.append((f"{first} and {second}", [first, second]))
        return out

    def reward(self, pairs: Sequence[tuple[str, Trajectory]]) -> list[tuple[bool, float]]:
        self.stats["reward"].calls += 1
        out = []
        for goal, trajectory in pairs:
            verdict = oracle_judge(goal, trajectory.states)
            if verdict.status == "outside_grammar":
                self.stats["reward"].failed(goal)
            out.append((verdict.success, float(verdict.success)))
        return out

    def understands(self, goal: str) -> bool:
        try:
            parse_goal(goal)
        except OutsideGrammar:
            return False
        return True

    def state_dict(self) -> dict[str, Any]:
        return stats_state(self.stats)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_stats(self.stats, state)
