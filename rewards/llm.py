"""Self-generated rewards for LLM policies.

Each class is a ``RewardModule`` (``module(batch)`` over a ``TransitionBatch`` whose ``obs`` are
prompts and ``actions`` completions) AND a TRL-style reward callable
``module(prompts=..., completions=..., **columns) -> list[float]`` (strings or chat-message
lists), so one object serves selfgym's trainers and TRL's ``GRPOTrainer`` alike.

* ``majority_vote`` (TTRL): 1 if a completion's answer equals its group's most common answer.
* ``self_judge``: the policy judges its own answer: P("yes") to "is it correct?", or a 0-5
  additive rubric score (Yuan et al. 2024) divided by 5.
* ``likelihood``: the frozen base model's (length-normalised) log-likelihood of the completion,
  the sharpening reward (Huang et al. 2025).
* ``verifier``: the task's exact verifier (needs the reference answer; the ceiling).

Modules that need a model get the agent's policy through ``bind_policy`` (the trainers call it);
used alone (with TRL) they load ``model`` (default: the offline SmolLM2) on first use.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from typing import Any

import numpy as np
import torch

from selfgym.envs.text.extract import NUMBER, extract_answer, parse_number
from selfgym.envs.text.spaces import as_text
from selfgym.envs.text.tasks import Task, normalise_answer, score, stated_answer
from selfgym.llm.policy import LLMPolicy
from selfgym.rewards.base import RewardModule, TransitionBatch
from selfgym.rewards.consensus_guard import ConsensusGuard


def _text(x: Any) -> str:
    """A completion/prompt as text: strings as is, chat messages -> the last message's content."""
    x = as_text(x)
    if isinstance(x, str):
        return x
    if isinstance(x, (list, tuple)) and x and isinstance(x[-1], dict):
        return str(x[-1].get("content", ""))
    if isinstance(x, dict):
        return str(x.get("content", ""))
    return "" if x is None else str(x)


def _column(kwargs: dict[str, Any], name: str, n: int) -> list[Any]:
    value = kwargs.get(name)
    if value is None:
        return [None] * n
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != n:
            raise ValueError(f"reward column {name!r} has {len(value)} rows for {n} completions")
        return list(value)
    return [value] * n


class TextReward(RewardModule):
    """Shared plumbing: ``score(prompts, completions, infos, groups, **columns) -> list[float]``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last_metrics: dict[str, float] = {}
        self.policy: Any = None

    def score(self, prompts: list[str], completions: list[str], infos: list[dict[str, Any]], groups: list[Any], **columns: Any) -> list[float]:
        raise NotImplementedError

    def bind_policy(self, policy: Any) -> None:
        """Give the module the agent's LLMPolicy (judge / base model)."""
        self.policy = policy

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        n = len(batch)
        prompts = [_text(o) for o in np.asarray(batch.obs, dtype=object).reshape(-1)]
        completions = [_text(a) for a in np.asarray(batch.actions, dtype=object).reshape(-1)]
        infos = list(batch.infos) if batch.infos is not None else [{} for _ in range(n)]
        groups = list(batch.extras.get("group", prompts))
        return np.asarray(self.score(prompts, completions, infos, groups), dtype=np.float32)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], TransitionBatch):
            return super().__call__(args[0])
        prompts = list(kwargs.pop("prompts", args[0] if args else []))
        completions = list(kwargs.pop("completions", args[1] if len(args) > 1 else []))
        if len(prompts) != len(completions):
            raise ValueError(f"{self.name}: {len(prompts)} prompts for {len(completions)} completions")
        n = len(completions)
        texts_p, texts_c = [_text(p) for p in prompts], [_text(c) for c in completions]
        infos = [{"family": f} if f is not None else {} for f in _column(kwargs, "family", n)]
        for info, task in zip(infos, _column(kwargs, "task", n)):
            if task is not None:
                info["task"] = task
        groups = [repr(p) for p in prompts]
        return [float(x) for x in self.score(texts_p, texts_c, infos, groups, **kwargs)]


def vote_key(answer: str | None) -> str | None:
    """What an answer votes as: a lone number in one canonical form (exact: ``"12.0"`` -> ``"12"``,
    ``"0.50"`` -> ``"1/2"``, ``"1,200"`` -> ``"1200"``, as the env writes targets), else the answer."""
    if answer is None or not NUMBER.fullmatch(answer.strip()):
        return answer
    value = parse_number(answer)
    if value is None:
        return answer
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


class MajorityVoteReward(TextReward):
    """TTRL: the pseudo-label of a group is its most common parsable answer.

    Args:
        family: task family used to normalise answers when infos carry none (e.g. with TRL).
        tie_break: when several answers share the top count: ``"none"`` (no pseudo-label, all 0:
            no consensus, no signal), ``"first"`` (the one seen first, like ``Counter.most_common``)
            or ``"all"`` (every tied answer counts as the label).
        min_ratio: no pseudo-label unless the top answer holds at least this fraction of the group.
            Default 0.5, the value every reported TTRL result used (benchmarks/README.md): with 0 a
            single stated answer among unparsable ones became the label.
        stated: only answers a completion states count as votes (``tasks.stated_answer``: answer
            tags, boxed, "answer is", "= N"), not the verifier's last-number fallback. Why: with
            the fallback, SmolLM2 learned within 8 GRPO steps to echo the question ("4 + 8"),
            whose last number every sample "agrees" on: full reward, held-out accuracy 0.49 -> 0.01
            (benchmarks/results/llm_ttrl_heldout200.md, seed 11). ``stated=false`` restores the
            lenient reading (the env's parsed answer).
        guard: ``"none"`` (default), ``"temperature"`` or ``"pause"``: the label-free guard against
            consensus on wrong answers (rewards/consensus_guard.py argues it): an entropy floor on
            the groups' answers at ``guard_floor`` x the mean of the first ``guard_warmup`` iterations'; below it the trainer's
            sampling temperature rises by ``guard_step`` per iteration up to ``guard_max_scale``
            ("temperature", B-STaR), or the vote withholds its labels ("pause"). Its statistics
            (agreement, entropy, floor, active, temperature scale) are logged every iteration.
    Unparsable answers never vote and always get 0. An answer that is one number votes as that
    number ("12.0" and "12" vote together), also without a ``family`` column.
    """

    def __init__(self, family: str | None = None, tie_break: str = "none", min_ratio: float = 0.5,
                 stated: bool = True, guard: str = "none", guard_floor: float = 0.5, guard_step: float = 1.25,
                 guard_max_scale: float = 2.0, guard_warmup: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guard = (ConsensusGuard(guard, guard_floor, guard_step, guard_max_scale, warmup=guard_warmup)
                      if guard != "none" else None)
        if tie_break not in ("none", "first", "all"):
            raise ValueError(f"majority_vote: tie_break must be 'none', 'first' or 'all', got {tie_break!r}")
        if not isinstance(stated, (bool, np.bool_)):
            raise ValueError(f"majority_vote: stated must be true or false, got {stated!r}")
        self.family, self.tie_break, self.min_ratio, self.stated = family, tie_break, float(min_ratio), bool(stated)

    def _answer(self, completion: str, info: dict[str, Any]) -> str | None:
        if self.stated:
            return stated_answer(info.get("family") or self.family, completion)
        if "answer" in info:
            return info["answer"]
        family = info.get("family") or self.family
        if family is not None and not str(family).startswith("rg:"):
            return normalise_answer(family, completion)
        return extract_answer(completion, numeric=True)

    def labels(self, answers: list[str | None], groups: list[Any]) -> dict[Any, set[str]]:
        """The pseudo-label set of each group (empty: no label)."""
        members: dict[Any, list[str]] = {}
        for a, g in zip(answers, groups):
            members.setdefault(g, [])
            if a is not None:
                members[g].append(a)
        out: dict[Any, set[str]] = {}
        sizes = Counter(groups)
        for g, votes in members.items():
            if not votes:
                out[g] = set()
                continue
            ranked = Counter(votes).most_common()
            top = ranked[0][1]
            tied = [a for a, c in ranked if c == top]
            if top / sizes[g] < self.min_ratio or (len(tied) > 1 and self.tie_break == "none"):
                out[g] = set()
            else:
                out[g] = set(tied) if self.tie_break == "all" else {tied[0]}
        return out

    def score(self, prompts, completions, infos, groups, **columns):  # type: ignore[override]
        answers = [vote_key(self._answer(c, i)) for c, i in zip(completions, infos)]
        labels = self.labels(answers, groups)
        guard = self.guard.observe(answers, groups) if self.guard is not None and answers else {}
        if self.guard is not None and self.guard.withhold_labels:
            labels = {g: set() for g in labels}
        rewards = [float(a is not None and a in labels[g]) for a, g in zip(answers, groups)]
        targets = [vote_key(i.get("target")) for i in infos]
        labelled = [g for g in labels if labels[g]]
        self.last_metrics = {"label_rate": len(labelled) / max(len(labels), 1), **guard}
        if all(t is not None for t in targets) and labelled:  # monitoring only: never used as reward
            first = {g: t for g, t in zip(groups, targets)}
            self.last_metrics["label_accuracy"] = float(np.mean([first[g] in labels[g] for g in labelled]))
        return rewards

    @property
    def sampling_temperature_scale(self) -> float:
        """What the trainer multiplies its sampling temperature by (the guard's, else 1)."""
        return self.guard.temperature_scale if self.guard is not None else 1.0

    def extra_state(self) -> dict[str, Any]:
        """The guard's floor, smoothed entropy and temperature: saved with the run, so a resumed
        run neither repeats the warm-up nor drops back to the training temperature."""
        return {"guard": self.guard.state_dict()} if self.guard is not None else {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "guard" in state and self.guard is None:
            raise ValueError("majority_vote: the saved state holds a consensus guard's, but this module has guard=none; "
                             "resume with the run's own reward spec (guard=temperature or guard=pause)")
        if "guard" in state:
            self.guard.load_state_dict(state["guard"])
        elif self.guard is not None:
            warnings.warn("majority_vote: the saved state has no consensus guard state (a run saved before it was "
                          "checkpointed); the guard starts its warm-up again", stacklevel=2)


class VerifierReward(TextReward):
    """The task's exact verifier: the reference reward (needs ground truth, for comparison)."""

    def score(self, prompts, completions, infos, groups, **columns):  # type: ignore[override]
        out = []
        for c, info in zip(completions, infos):
            if "reward_components" in info:
                out.append(float(info["reward_components"]["correct"]))
            elif "task" in info:
                task = info["task"] if isinstance(info["task"], Task) else Task(**info["task"])
                out.append(score(task, c)[0])
            else:
                raise KeyError("verifier reward needs env infos with 'reward_components' or a 'task' column (Task dicts)")
        return out

    def compute(self, batch: TransitionBatch) -> np.ndarray:
        if batch.infos is None:
            return np.asarray(batch.rewards, dtype=np.float32).reshape(-1)
        return super().compute(batch)


class _ModelReward(TextReward):
    def __init__(self, model: str = "default", batch_size: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name, self.batch_size = model, int(batch_size)

    def _policy(self) -> Any:
        if self.policy is None:
            self.policy = LLMPolicy(self.model_name)
        return self.policy


JUDGE_YES_NO = "Question: {question}\n\nProposed answer: {answer}\n\nIs the proposed answer correct? Reply with yes or no."
JUDGE_RUBRIC = (
    "Review the user's question and the response below using this additive 5-point scale:\n"
    "- Add 1 point if the response is relevant to the question.\n"
    "- Add a second point if it addresses a substantial part of the question.\n"
    "- Add a third point if it answers the basic question usefully.\n"
    "- Add a fourth point if it is clearly written and well organised.\n"
    "- Add a fifth point if it is correct and impeccable.\n\n"
    "Question: {question}\n\nResponse: {answer}\n\n"
    "Briefly justify your total, then conclude with the line \"Score: <total points>\"."
)
_SCORE = re.compile(r"Score:\s*([0-5])")


class SelfJudgeReward(_ModelReward):
    """The policy as its own judge.

    ``mode="yes_prob"``: P(yes) / (P(yes) + P(no)) for the next token after the yes/no judge
    prompt (one forward pass, no sampling). ``mode="rubric"``: greedy judgement with the
    additive 0-5 prompt, parsed "Score: k" -> k / 5 (unparsable -> 0).
    """

    def __init__(self, mode: str = "yes_prob", judge_tokens: int = 96, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("yes_prob", "rubric"):
            raise ValueError(f"self_judge: mode must be 'yes_prob' or 'rubric', got {mode!r}")
        self.mode, self.judge_tokens = mode, int(judge_tokens)

    def score(self, prompts, completions, infos, groups, **columns):  # type: ignore[override]
        policy = self._policy()
        template = JUDGE_YES_NO if self.mode == "yes_prob" else JUDGE_RUBRIC
        judge_prompts = [template.format(question=p, answer=c.strip() or "(empty)") for p, c in zip(prompts, completions)]
        if self.mode == "rubric":
            texts = policy.generate(judge_prompts, greedy=True, batch_size=self.batch_size, max_new_tokens=self.judge_tokens)
            found = [_SCORE.findall(t) for t in texts]
            out = [int(f[-1]) / 5.0 if f else 0.0 for f in found]
            self.last_metrics = {"judge_parse_rate": float(np.mean([bool(f) for f in found]))}
            return out
        out = []
        for i in range(0, len(judge_prompts), self.batch_size):
            out += yes_probability(policy, judge_prompts[i : i + self.batch_size])
        return out


def yes_probability(policy: Any, prompts: list[str]) -> list[float]:
    """P(yes) / (P(yes) + P(no)) of the first answer token, summed over case/space variants."""
    tok = policy.tokenizer

    def ids(words: list[str]) -> list[int]:
        found = {tok.encode(w, add_special_tokens=False)[0] for w in words if tok.encode(w, add_special_tokens=False)}
        return sorted(found)

    yes, no = ids(["yes", "Yes", " yes", " Yes", "YES"]), ids(["no", "No", " no", " No", "NO"])
    input_ids, mask = policy.encode(prompts, 1)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = policy.model(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits[:, -1].float()
    probs = torch.softmax(logits, -1)
    p_yes, p_no = probs[:, yes].sum(1), probs[:, no].sum(1)
    return (p_yes / (p_yes + p_no).clamp(min=1e-12)).tolist()


class LikelihoodReward(_ModelReward):
    """Sharpening: log pi_base(completion | prompt) under the frozen initial model.

    ``normalize_length=True`` (default) averages over the completion's tokens, so long answers
    are not penalised for their length alone. An empty completion gets ``empty_reward`` (a very
    unlikely per-token log-prob), so saying nothing is never the most "likely" answer.
    """

    def __init__(self, normalize_length: bool = True, empty_reward: float = -10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.normalize_length, self.empty_reward = bool(normalize_length), float(empty_reward)

    def score(self, prompts, completions, infos, groups, **columns):  # type: ignore[override]
        policy = self._policy()
        out: list[float] = []
        for i in range(0, len(prompts), self.batch_size):
            total, count = policy.text_logprobs(prompts[i : i + self.batch_size], completions[i : i + self.batch_size], reference=True)
            values = total / count.clamp(min=1) if self.normalize_length else total
            out += [v if c > 0 else self.empty_reward for v, c in zip(values.tolist(), count.tolist())]
        return out
