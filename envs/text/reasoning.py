"""TextReasoning-v0: one question per episode; the action is the model's answer text.

Observation: the question text (a ``spaces.Text``, returned as a one-element numpy object array
holding the str, see envs/text/spaces.py; the policy wraps it in its chat template).
Action: the completion text. Reward: the family's exact verifier, 1.0 correct / 0.0 otherwise
(a malformed or missing answer scores 0, never raises; an answer longer than ``max_length``
characters, or one that is not text, is not read and ``info["format_error"]`` says why).
``info`` holds ``is_success``, the normalised extracted ``answer`` (None if unparsable), the
reference ``target`` (for the verifier reward and for monitoring only: self-rewarding modules
never read it), ``task_index`` and ``reward_components`` (``correct``, ``format``).

Splits: ``split="test"`` serves a fixed held-out set (``test_size`` tasks from ``test_seed``),
in order, starting again at item 0 on every ``reset(seed=...)``; ``split="train"`` draws fresh
tasks from the episode RNG and never serves a held-out question. ``reset(options={"task_index":
k})`` serves the k-th task of the split deterministically, and ``options={"split": "train"}``
overrides the split for one episode. selfgym's LLM trainers make the env with ``split="test"``
(so its own stream, which evaluate.py rolls out, is the held-out set) and ask for every
training question explicitly with ``{"split": "train", "task_index": k}``, giving the same
question to each sub-env of a group.

Two-turn self-correction (``two_turn=True``, SCoRe-style): after the first answer y1 the next
observation is the question, y1 and "find your mistakes and improve"; the second answer y2 ends
the episode. Rewards: r(y1) at turn 1, r(y2) + correction_bonus * (r(y2) - r(y1)) at turn 2.

``task="rg:<name>"`` serves a reasoning-gym dataset (``pip install reasoning-gym``), scored by
the dataset's own ``score_answer`` after the same answer extraction.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from selfgym.envs.text.extract import extract_answer
from selfgym.envs.text.spaces import BatchableText, as_text, text_obs, to_charset
from selfgym.envs.text.tasks import ANSWER_FORMAT, FAMILIES, Task, score

CORRECTION_PROMPT = (
    "{question}\n\nYour previous answer was:\n{previous}\n\n"
    "There might be mistakes in your previous answer. Find your mistakes and improve it. {format}"
)


class _ReasoningGymSource:
    """A reasoning-gym dataset as a task source (optional dependency)."""

    def __init__(self, name: str, size: int, seed: int, config: dict[str, Any], split: str) -> None:
        try:
            import reasoning_gym
        except ImportError as exc:
            raise ImportError(f"task 'rg:{name}' needs reasoning-gym: pip install reasoning-gym ({exc})") from exc
        self.dataset = reasoning_gym.create_dataset(name, size=size, seed=seed, **config)
        self.name, self.split = name, split

    def task(self, index: int) -> Task:
        entry = self.dataset[index % len(self.dataset)]
        question = entry["question"] + "\n" + ANSWER_FORMAT
        return Task(f"rg:{self.name}", 0, question, str(entry["answer"]), {"index": index % len(self.dataset), "split": self.split})

    def score(self, task: Task, completion: str) -> tuple[float, str | None]:
        answer = extract_answer(completion)
        if answer is None:
            return 0.0, None
        try:
            value = float(self.dataset.score_answer(answer, self.dataset[task.data["index"]]))
        except Exception:  # a third-party scorer must not crash an episode on odd text
            value = 0.0
        return value, answer


class TextReasoningEnv(gym.Env):
    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 1}  # one turn a second in videos

    def __init__(
        self,
        task: str = "arithmetic",
        level: int = 1,
        split: str = "train",
        test_size: int = 100,
        test_seed: int = 1_000_003,
        train_seed: int = 0,
        two_turn: bool = False,
        correction_bonus: float = 0.0,
        max_length: int = 8192,
        rg_config: dict[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.families = [t.strip() for t in task.split(",")] if not task.startswith("rg:") else [task]
        for fam in self.families:
            if fam not in FAMILIES and not fam.startswith("rg:"):
                raise ValueError(f"unknown task family {fam!r}; choose from {sorted(FAMILIES)} or 'rg:<reasoning-gym name>'")
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if int(level) < 1:
            raise ValueError(f"level must be >= 1, got {level}")
        if render_mode not in (None, "ansi", "rgb_array"):
            raise ValueError(f"render_mode must be None, 'ansi' or 'rgb_array', got {render_mode!r}")
        self.level, self.split, self.test_size = int(level), split, int(test_size)
        self.test_seed, self.train_seed = int(test_seed), int(train_seed)
        self.two_turn, self.correction_bonus = bool(two_turn), float(correction_bonus)
        self.render_mode = render_mode
        self.observation_space = BatchableText(max_length, shape=(1,))
        self.action_space = BatchableText(max_length)
        self._charset = frozenset(self.observation_space.character_set)
        self._rg = None
        if task.startswith("rg:"):
            self._rg = {
                "train": _ReasoningGymSource(task[3:], 10_000, train_seed, rg_config or {}, "train"),
                "test": _ReasoningGymSource(task[3:], test_size, test_seed, rg_config or {}, "test"),
            }
        self._test = [self._make(self.test_seed, i) for i in range(self.test_size)]
        self._test_questions = {t.question for t in self._test}
        self._cursor = 0
        self._task: Task | None = None
        self._turn = 0
        self._first_reward = 0.0
        self._last_text = ""

    # -- tasks ---------------------------------------------------------------------------
    def _make(self, seed: int, index: int) -> Task:
        if self._rg is not None:
            return self._rg["test" if seed == self.test_seed else "train"].task(index)
        rng = np.random.default_rng([seed, index, self.level])
        family = self.families[index % len(self.families)]
        return FAMILIES[family][0](rng, self.level)

    def train_task(self, index: int) -> Task:
        """The k-th training task: deterministic, never a held-out question."""
        for attempt in range(100):
            task = self._make(self.train_seed, index + attempt * 1_000_003)
            if task.question not in self._test_questions:
                return task
        raise RuntimeError("could not draw a training task outside the held-out set; lower test_size or raise level")

    def heldout_tasks(self) -> list[dict[str, Any]]:
        """The fixed held-out set as plain dicts (question, target, ...)."""
        return [t.to_dict() for t in self._test]

    def score_task(self, task: Task | dict[str, Any], completion: str) -> tuple[float, str | None]:
        """Verifier reward and normalised answer of ``completion`` for ``task``."""
        if isinstance(task, dict):
            task = Task(**task)
        return self._score(task, completion)

    def score_heldout(self, completions: list[str]) -> list[float]:
        """Verifier rewards of one completion per held-out task, in order."""
        if len(completions) != len(self._test):
            raise ValueError(f"score_heldout expects {len(self._test)} completions, got {len(completions)}")
        return [self._score(t, c)[0] for t, c in zip(self._test, completions)]

    def _score(self, task: Task, completion: Any) -> tuple[float, str | None]:
        if not isinstance(completion, str):
            return 0.0, None
        if self._rg is not None:
            return self._rg[task.data["split"]].score(task, completion)
        return score(task, completion)

    # -- gym API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._cursor = 0
        options = options or {}
        index, split = options.get("task_index"), options.get("split", self.split)
        if split not in ("train", "test"):
            raise ValueError(f"reset option split must be 'train' or 'test', got {split!r}")
        if split == "test":
            index = self._cursor if index is None else int(index)
            self._task = self._test[index % self.test_size]
            self._cursor = (index + 1) % self.test_size
        else:
            index = int(self.np_random.integers(0, 2**31 - 1)) if index is None else int(index)
            self._task = self.train_task(index)
        self._task_index = index
        self._turn = 0
        self._last_text = self._obs(self._task.question)
        return text_obs(self._last_text), {"task_index": index, "target": self._task.target, "family": self._task.family}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._task is None:
            raise RuntimeError("TextReasoningEnv: call reset() before step()")
        completion, format_error = self._completion(as_text(action))
        correct, answer = self._score(self._task, completion) if completion is not None else (0.0, None)
        info: dict[str, Any] = {
            "is_success": bool(correct >= 1.0), "answer": answer, "target": self._task.target,
            "family": self._task.family, "reward_components": {"correct": float(correct), "format": float(answer is not None)},
        }
        if format_error:
            info["format_error"] = format_error
        if self.two_turn:
            info["turn"] = self._turn
        reward = float(correct)
        if self.two_turn and self._turn == 0:
            self._turn, self._first_reward = 1, reward
            fmt = ANSWER_FORMAT if ANSWER_FORMAT in self._task.question else ""
            self._last_text = self._obs(CORRECTION_PROMPT.format(question=self._task.question, previous=completion or "", format=fmt))
            return text_obs(self._last_text), reward, False, False, info
        if self.two_turn:
            reward = reward + self.correction_bonus * (reward - self._first_reward)
            info["first_turn_correct"] = self._first_reward
        self._turn += 1
        return text_obs(self._last_text), reward, True, False, info

    def _completion(self, action: Any) -> tuple[str | None, str]:
        """(the answer text to score, or None; why it is not scored). Text past max_length is
        never read: scoring 400 KB of ``<answer>`` tags took minutes."""
        if not isinstance(action, str):
            return None, f"the action must be text, got {type(action).__name__}"
        limit = self.action_space.max_length
        if len(action) > limit:
            return None, f"the answer is {len(action)} characters; the action space's max_length is {limit}"
        return action, ""

    def _obs(self, text: str) -> str:
        return to_charset(text, self._charset)[: self.observation_space.max_length]

    def render(self) -> Any:
        text = self._last_text
        if self.render_mode == "ansi":
            return text
        if self.render_mode == "rgb_array":
            return _text_image(text)
        return None


def _text_image(text: str, width: int = 480, height: int = 160) -> np.ndarray:
    """The current observation drawn as an image (OpenCV, headless)."""
    import cv2

    img = np.full((height, width, 3), 255, dtype=np.uint8)
    lines: list[str] = []
    for para in text.splitlines() or [""]:
        while para:
            lines.append(para[:70])
            para = para[70:]
    for i, line in enumerate(lines[: height // 16]):
        cv2.putText(img, line.encode("ascii", "replace").decode(), (4, 14 + 16 * i), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 1)
    return img
