"""LMA3's goal library (per-goal statistics, mastery, learning-progress sampling) and its
goal-conditioned policy over valid commands.

Policy choice: goal-conditioned behaviour cloning on relabelled successes, with a linear
softmax over the valid commands on hashed text features, not a Q-learner over LM embeddings.
Why: (1) hindsight makes every trajectory a demonstration of each goal it achieved, so BC has
dense supervision where a Q-learner on the binary reward has one sparse signal per episode;
(2) scoring 20-60 valid commands with a 135M LM at every step costs about 0.2 s per forward
pass on 2 CPU cores, i.e. minutes per episode before any learning, while the linear model
scores a step in well under a millisecond; (3) features that pair goal words with command
words ("slice the carrot" with "slice carrot") carry over to objects and layouts never seen
with that goal. Its limit: it imitates, it does not plan; a goal needing steps that were
never demonstrated together is reached only by exploration (``epsilon``).
"""

from __future__ import annotations

import math
import random
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_STOP = frozenset(("the", "a", "an", "some", "to", "in", "on", "with", "and", "of"))


# -- goal library -------------------------------------------------------------------------------
@dataclass
class GoalStats:
    source: str  # "relabelled" (seen achieved) or "generated" (proposed by the goal generator)
    discovered: int  # episode it entered the library
    subgoals: list[str] = field(default_factory=list)
    attempts: int = 0
    successes: int = 0
    recent: list[int] = field(default_factory=list)  # outcomes of the last attempts, oldest first
    mastered_at: int = -1  # episode it was first mastered, -1 never
    achieved_seen: int = 0  # times the relabeler found it


class GoalLibrary:
    """Goals with their statistics. Mastered: success rate >= ``threshold`` over the last
    ``window`` attempts (and at least ``window`` attempts)."""

    def __init__(self, window: int = 5, threshold: float = 0.6, seed: int = 0) -> None:
        if window < 2 or not 0.0 < threshold <= 1.0:
            raise ValueError(f"mastery needs window >= 2 and threshold in (0, 1], got {window}, {threshold}")
        self.window, self.threshold = int(window), float(threshold)
        self.goals: dict[str, GoalStats] = {}
        self.rng = random.Random(seed)

    def add(self, goal: str, source: str, episode: int, subgoals: Sequence[str] = ()) -> bool:
        """Add a goal if new; True when it was."""
        if goal in self.goals:
            if source == "relabelled":
                self.goals[goal].achieved_seen += 1
            return False
        self.goals[goal] = GoalStats(source, episode, list(subgoals), achieved_seen=int(source == "relabelled"))
        return True

    def record(self, goal: str, success: bool, episode: int) -> None:
        stats = self.goals[goal]
        stats.attempts += 1
        stats.successes += int(success)
        stats.recent = (stats.recent + [int(success)])[-2 * self.window:]
        if stats.mastered_at < 0 and self.is_mastered(goal):
            stats.mastered_at = episode

    def is_mastered(self, goal: str) -> bool:
        recent = self.goals[goal].recent[-self.window:]
        return len(recent) >= self.window and sum(recent) / len(recent) >= self.threshold

    def mastered(self) -> list[str]:
        return [g for g in self.goals if self.is_mastered(g)]

    def learning_progress(self, goal: str) -> float:
        """|success rate over the last window - over the window before|; 1 while too few attempts."""
        recent = self.goals[goal].recent
        if len(recent) < 4:
            return 1.0
        half = len(recent) // 2
        return abs(sum(recent[half:]) / (len(recent) - half) - sum(recent[:half]) / half)

    def sample(self, epsilon: float = 0.2, p_new: float = 0.2) -> str | None:
        """A goal to pursue: with probability ``p_new`` (or when none was tried) one never tried,
        uniformly; else a tried one in proportion to learning progress + ``epsilon`` (mastered
        goals at a fifth of epsilon). Focusing on tried goals lets attempts add up to mastery
        instead of spreading over every goal the relabeler ever named."""
        if not self.goals:
            return None
        tried = [g for g, s in self.goals.items() if s.attempts]
        untried = [g for g, s in self.goals.items() if not s.attempts]
        if untried and (not tried or self.rng.random() < p_new):
            return self.rng.choice(untried)
        weights = [self.learning_progress(g) + epsilon * (0.2 if self.is_mastered(g) else 1.0) for g in tried]
        return self.rng.choices(tried, weights=weights)[0]

    def state_dict(self) -> dict[str, Any]:
        return {"window": self.window, "threshold": self.threshold,
                "goals": {g: vars(s).copy() for g, s in self.goals.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.goals = {g: GoalStats(**s) for g, s in state["goals"].items()}


# -- goal-conditioned policy ----------------------------------------------------------------------
def words(text: str) -> list[str]:
    return [w for w in text.lower().replace(",", " ").replace(".", " ").split() if w not in _STOP]


def context(observation: str) -> tuple[str, list[str], dict[str, str]]:
    """(room, carried words, direction -> the room it leads to) read from CookingWorld's observation text."""
    room, carried, exits = "", [], {}
    for line in observation.splitlines():
        if line.startswith("-= ") and line.endswith(" =-"):
            room = line[3:-3].lower()
        elif line.startswith("You are carrying ") and not line.startswith("You are carrying nothing"):
            carried = words(line[len("You are carrying "):])
        elif line.startswith("Exits: "):
            for part in line[len("Exits: "):].rstrip(".").split("; "):
                direction, _, rest = part.partition(" to the ")
                exits[direction] = rest.split(",")[0]
    return room, carried, exits


class GoalPolicy:
    """Linear softmax over valid commands on hashed (goal, context, command) features."""

    def __init__(self, n_features: int = 2**18, learning_rate: float = 0.5, epsilon: float = 0.2,
                 buffer_size: int = 20_000, seed: int = 0) -> None:
        self.n_features, self.learning_rate, self.epsilon = int(n_features), float(learning_rate), float(epsilon)
        self.weights = np.zeros(self.n_features, dtype=np.float32)
        self.buffer: deque[tuple[str, str, list[str], int]] = deque(maxlen=int(buffer_size))
        self.rng = random.Random(seed)
        self._hash_cache: dict[str, int] = {}

    def _index(self, key: str) -> int:
        index = self._hash_cache.get(key)
        if index is None:
            index = zlib.crc32(key.encode()) % self.n_features
            if len(self._hash_cache) < 500_000:
                self._hash_cache[key] = index
        return index

    def features(self, goal: str, observation: str, command: str) -> list[int]:
        goal_words, command_words = words(goal), words(command)
        room, carried, exits = context(observation)
        verb = command_words[0] if command_words else ""
        keys = [f"c|{command}", f"gc|{goal}|{command}", f"grc|{goal}|{room}|{command}"]
        if verb == "go" and len(command_words) == 2:  # where the exit leads, against the goal's words
            leads = exits.get(command_words[1], "")
            keys += [f"gx|{g}|{w}" for g in goal_words for w in leads.split()]
            keys.append(f"gxr|{goal}|{leads}")
        keys += [f"gw|{g}|{c}" for g in goal_words for c in command_words]
        keys += [f"hv|{verb}|{c in carried}|{c in goal_words}" for c in command_words[1:2]]
        keys += [f"gv|{goal_words[0] if goal_words else ''}|{verb}|{w in carried}" for w in goal_words[1:2]]
        return [self._index(k) for k in keys]

    def probabilities(self, goal: str, observation: str, commands: Sequence[str]) -> np.ndarray:
        scores = np.array([self.weights[self.features(goal, observation, c)].sum() for c in commands], dtype=np.float64)
        scores = np.exp(scores - scores.max())
        return scores / scores.sum()

    def act(self, goal: str, observation: str, commands: Sequence[str], deterministic: bool = False) -> int:
        if not deterministic and self.rng.random() < self.epsilon:
            return self.rng.randrange(len(commands))
        probs = self.probabilities(goal, observation, commands)
        if deterministic:
            return int(np.argmax(probs))
        return int(self.rng.choices(range(len(commands)), weights=probs.tolist())[0])

    def add(self, goal: str, observation: str, commands: Sequence[str], taken: int) -> None:
        self.buffer.append((goal, observation, list(commands), int(taken)))

    def train(self, new: int, replay: int) -> float:
        """One SGD pass on the ``new`` last examples and ``replay`` older ones; mean cross-entropy."""
        items = list(self.buffer)
        batch = items[-new:] if new else []
        old = items[: len(items) - len(batch)]
        batch += self.rng.sample(old, min(replay, len(old)))
        losses = []
        for goal, observation, commands, taken in batch:
            feats = [self.features(goal, observation, c) for c in commands]
            scores = np.array([self.weights[f].sum() for f in feats], dtype=np.float64)
            probs = np.exp(scores - scores.max())
            probs /= probs.sum()
            losses.append(-math.log(max(probs[taken], 1e-12)))
            for j, f in enumerate(feats):
                grad = probs[j] - (1.0 if j == taken else 0.0)
                if abs(grad) > 1e-4:
                    np.add.at(self.weights, f, -self.learning_rate * grad / len(f))
        return float(np.mean(losses)) if losses else 0.0
