"""``TextTaskEnv``: what the LLM trainers (selfgym.agents.llm) call on a text env.

The trainers drive a VecEnv of these: groups of sub-envs are reset on one training question
with ``reset(options={"split": "train", "task_index": k})`` (the same k gives the same
question), held-out accuracy reads ``heldout_tasks()`` and scores completions with
``score_task``. Declared here, in the envs layer, so an env author sees the contract without
reading the trainer; ``TextReasoningEnv`` follows it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

#: Reset options every TextTaskEnv honours: ``split`` ("train"/"test") and ``task_index`` (int).
RESET_OPTIONS = ("split", "task_index")


@runtime_checkable
class TextTaskEnv(Protocol):
    """A Gymnasium env whose observations are text questions and actions text completions."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """``options={"split": "train", "task_index": k}``: the k-th training question, deterministically."""
        ...

    def heldout_tasks(self) -> list[dict[str, Any]]:
        """The fixed held-out set, as plain dicts with at least a ``"question"`` key."""
        ...

    def score_task(self, task: dict[str, Any], completion: str) -> tuple[float, Any]:
        """(verifier reward, parsed answer) of ``completion`` for ``task``; 1.0 means correct."""
        ...


def missing_methods(env: Any) -> list[str]:
    """The TextTaskEnv methods a VecEnv's sub-envs lack (``VecEnv.has_attr`` looks through wrappers)."""
    return [name for name in ("heldout_tasks", "score_task") if not env.has_attr(name)]
