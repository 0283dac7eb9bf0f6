"""StrategyHub: the assistant's external memory of natural-language strategies (PEARL).

At most ``max_strategies`` strategies of at most ``max_chars`` characters. Two operations,
called by text agents as tools: ``{"action": "list"}`` and
``{"action": "update", "strategies": [...]}`` (replaces the whole list). A bad call never
raises: it returns ``ok=False`` and a message saying what was wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TOOL_SPECS: list[dict[str, Any]] = [
    {"name": "list", "description": "Show the strategies currently stored in the StrategyHub.",
     "call": {"action": "list"}},
    {"name": "update", "description": "Replace the stored strategies (at most 10, each at most 350 characters).",
     "call": {"action": "update", "strategies": ["<strategy 1>", "<strategy 2>"]}},
]


@dataclass
class HubResult:
    ok: bool
    message: str
    strategies: list[str] = field(default_factory=list)


class StrategyHub:
    def __init__(self, max_strategies: int = 10, max_chars: int = 350) -> None:
        self.max_strategies, self.max_chars = int(max_strategies), int(max_chars)
        self.strategies: list[str] = []

    def reset(self) -> None:
        self.strategies = []

    def list(self) -> HubResult:
        return HubResult(True, self.render(), list(self.strategies))

    def update(self, strategies: Any) -> HubResult:
        if not isinstance(strategies, list) or not all(isinstance(s, str) for s in strategies):
            return HubResult(False, "update needs 'strategies': a list of strings", list(self.strategies))
        if len(strategies) > self.max_strategies:
            return HubResult(False, f"update has {len(strategies)} strategies; the hub holds at most {self.max_strategies}",
                             list(self.strategies))
        too_long = [i for i, s in enumerate(strategies) if len(s) > self.max_chars]
        if too_long:
            return HubResult(False, f"strategy {too_long[0]} has {len(strategies[too_long[0]])} characters; "
                             f"at most {self.max_chars} are allowed", list(self.strategies))
        self.strategies = [s.strip() for s in strategies if s.strip()]
        return HubResult(True, f"stored {len(self.strategies)} strategies", list(self.strategies))

    def call(self, request: str | dict[str, Any]) -> HubResult:
        """Run one tool call given as a dict or a JSON string."""
        if isinstance(request, str):
            try:
                request = json.loads(request)
            except json.JSONDecodeError as exc:
                return HubResult(False, f"hub call is not valid JSON ({exc.msg})", list(self.strategies))
        if not isinstance(request, dict):
            return HubResult(False, "hub call must be a JSON object with an 'action'", list(self.strategies))
        action = request.get("action")
        if action == "list":
            return self.list()
        if action == "update":
            return self.update(request.get("strategies"))
        return HubResult(False, f"unknown hub action {action!r}; use 'list' or 'update'", list(self.strategies))

    def render(self) -> str:
        if not self.strategies:
            return "StrategyHub is empty."
        return "StrategyHub:\n" + "\n".join(f"{i + 1}. {s}" for i, s in enumerate(self.strategies))

    def state_dict(self) -> dict[str, Any]:
        return {"strategies": list(self.strategies)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.strategies = list(state.get("strategies", []))
