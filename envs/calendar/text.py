"""Text form of CalendarConflict: the prompt an LLM policy sees and the parsing of its answer.

The answer follows PEARL's JSON format::

    {"priority_ranking": [2, 0, 4, 1, 3], "reasoning": "...", "selected_event_to_accept": 2}

or is a StrategyHub call (``{"action": "list"}`` / ``{"action": "update", "strategies": [...]}``).
Parsing never raises: a malformed answer is a ``Decision`` with ``valid=False`` and a message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from selfgym.envs.calendar.schema import Event, User, format_time

INSTRUCTIONS = (
    "You are {name}'s calendar assistant. Several events overlap and {name} can attend only one. "
    "{name} has hidden priorities; learn them from the feedback on past rounds. "
    "Answer with one JSON object: {{\"priority_ranking\": [all event ids, best first], "
    "\"reasoning\": \"...\", \"selected_event_to_accept\": id}}. "
    "Before deciding you may call the StrategyHub (your memory across rounds) up to {turns} times per round "
    "with {{\"action\": \"list\"}} or {{\"action\": \"update\", \"strategies\": [\"...\"]}} "
    "(at most 10 strategies, 350 characters each)."
)


@dataclass
class Decision:
    valid: bool
    accept: int = -1
    ranking: list[int] | None = None
    message: str = ""


def describe_event(i: int, ev: Event, user: User) -> str:
    others = [a for a in ev.attendees if a != user.name]
    flags = [f for f, on in (("recurring", ev.recurring), ("deadline", ev.deadline), ("external", ev.external)) if on]
    return (f"[{i}] {ev.title} ({ev.kind}) | {format_time(ev.start)}, {ev.duration} min | {ev.location} | "
            f"organizer: {'me' if ev.organizer == user.name else ev.organizer} | "
            f"with: {', '.join(others) if others else 'nobody'}"
            f"{' | ' + ', '.join(flags) if flags else ''} | scheduled {format_time(ev.created)}")


def render_context(user: User) -> str:
    reports = ", ".join(user.reports) or "none"
    return (f"User: {user.name}, {user.role} at {user.org} ({user.org_kind}). Manager: {user.manager or 'none'}. "
            f"Supervises: {reports}.")


def render(user: User, round_idx: int, n_rounds: int, events: Sequence[Event] | None,
           history: Sequence[tuple[Sequence[Event], int, int]], upcoming: Sequence[Event], hub_text: str,
           hub_turns_left: int, tool_result: str = "") -> str:
    """The whole prompt: instructions, context, recent calendar, last W rounds, the conflict."""
    lines = [INSTRUCTIONS.format(name=user.name, turns=hub_turns_left), "", render_context(user), ""]
    if upcoming:
        lines.append("Calendar this week:")
        lines += [f"- {format_time(e.start)} {e.title} ({e.duration} min)" for e in upcoming]
        lines.append("")
    if history:
        lines.append(f"Last {len(history)} rounds (most recent last):")
        for events_h, chosen, winner in history:
            names = {i: e.title for i, e in enumerate(events_h)}
            got = "invalid answer" if chosen < 0 else f"you accepted [{chosen}] {names[chosen]}"
            verdict = "correct" if chosen == winner else f"wrong; the user wanted [{winner}] {names[winner]}"
            lines.append(f"- options: {'; '.join(f'[{i}] {t}' for i, t in names.items())} -> {got} ({verdict})")
        lines.append("")
    lines.append(hub_text)
    if tool_result:
        lines += ["", f"Tool result: {tool_result}"]
    if events is not None:
        lines += ["", f"Round {round_idx + 1} of {n_rounds}. Conflicting events:"]
        lines += [describe_event(i, e, user) for i, e in enumerate(events)]
        lines.append(f"StrategyHub calls left this round: {hub_turns_left}. Your answer (JSON):")
    text = "\n".join(lines)
    return text.encode("ascii", "replace").decode("ascii")


#: Text styles of the prompt: "verbose" (full sentences, PEARL-like) or "compact" (for small models).
TEXT_STYLES = ("verbose", "compact")

COMPACT_INSTRUCTIONS = (
    "{name}'s calendar assistant: events overlap; pick the one {name} attends. Learn hidden priorities from past rounds.\n"
    "Reply with JSON only: {{\"priority_ranking\":[ids, best first],\"selected_event_to_accept\":id}}\n"
    "Memory tool ({turns} calls left this round): {{\"action\":\"list\"}} or "
    "{{\"action\":\"update\",\"strategies\":[\"...\"]}} (<=10, <=350 chars each)"
)


def _short_time(minutes: int) -> str:
    """'Tue 03-04 14:30': ``format_time`` without the year (always the same)."""
    full = format_time(minutes)  # '2025-03-04 Tue 14:30'
    return f"{full[11:14]} {full[5:10]} {full[15:]}"


def compact_event(i: int, ev: Event, user: User, day: str = "") -> str:
    """One short line with every attribute ``describe_event`` shows (the date left out when it is ``day``)."""
    others = [a for a in ev.attendees if a != user.name]
    flags = [f for f, on in (("recurring", ev.recurring), ("deadline", ev.deadline), ("external", ev.external)) if on]
    lead_days = max(0, (ev.start - ev.created) // (24 * 60))
    when = _short_time(ev.start)
    parts = [f"{i} {ev.title}", ev.kind, f"{when[10:] if when[:9] == day else when} {ev.duration}m", ev.location,
             f"by {'me' if ev.organizer == user.name else ev.organizer}", f"w {','.join(others) if others else '-'}"]
    parts += flags
    parts.append(f"booked {lead_days}d ahead")
    return "|".join(parts)


def _compact_week(events: Sequence[Event]) -> str:
    """'Mon 04-21: 14:00 Reading group 60m | Tue 04-22: 10:00 ..., 12:15 ...' (each day named once)."""
    days: dict[str, list[str]] = {}
    for e in events:
        when = _short_time(e.start)
        days.setdefault(when[:9], []).append(f"{when[10:]} {e.title} {e.duration}m")
    return " | ".join(f"{day}: {', '.join(items)}" for day, items in days.items())


def render_compact(user: User, round_idx: int, n_rounds: int, events: Sequence[Event] | None,
                   history: Sequence[tuple[Sequence[Event], int, int]], upcoming: Sequence[Event], hub_text: str,
                   hub_turns_left: int, tool_result: str = "") -> str:
    """The prompt of ``render`` in as few tokens as possible: short lines, ids, no repeated words."""
    lines = [COMPACT_INSTRUCTIONS.format(name=user.name, turns=hub_turns_left),
             f"{user.name}: {user.role}, {user.org} ({user.org_kind}); manager {user.manager or '-'}; "
             f"supervises {','.join(user.reports) or '-'}"]
    if upcoming:
        lines.append("Week: " + _compact_week(upcoming))
    if history:
        lines.append("Past rounds (you>wanted):")
        for events_h, chosen, winner in history:
            options = ";".join(f"{i} {e.title}" for i, e in enumerate(events_h))
            lines.append(f"{options} | {'invalid' if chosen < 0 else chosen}>{winner} {'ok' if chosen == winner else 'x'}")
    lines.append("Memory: " + ("empty" if hub_text == "StrategyHub is empty." else hub_text.split("\n", 1)[-1].replace("\n", " ")))
    if tool_result:
        lines.append(f"Tool: {tool_result}")
    if events is not None:
        day = _short_time(events[0].start)[:9]
        lines.append(f"Round {round_idx + 1}/{n_rounds}, {day}:")
        lines += [compact_event(i, e, user, day) for i, e in enumerate(events)]
    text = "\n".join(lines)
    return text.encode("ascii", "replace").decode("ascii")


#: Longest answer parsed: the action space's max_length. Longer text is a format failure.
MAX_ANSWER_CHARS = 8000
_DECODER = json.JSONDecoder()
_FENCE = "```"
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


def _decode_whole(text: str) -> dict[str, Any] | None:
    """``text`` (already stripped) if it is exactly one JSON object and nothing else, or None."""
    if not text.startswith("{"):
        return None
    try:
        obj, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):  # malformed, a number past int's digit limit, too deep
        return None
    return obj if isinstance(obj, dict) and end == len(text) else None


def _unfence(text: str) -> str | None:
    """The body of a text that is one markdown code block (```json ... ``` or ``` ... ```), else None."""
    if not (text.startswith(_FENCE) and text.endswith(_FENCE) and len(text) >= 2 * len(_FENCE)):
        return None
    body = text[len(_FENCE):-len(_FENCE)]
    if body.startswith("json"):
        body = body[4:]
    if not body[:1].isspace() and not body.startswith("{"):
        return None  # another language tag (```python) or text glued to the fence
    return body.strip()


def extract_json(text: str) -> dict[str, Any] | None:
    """The answer object if ``text`` is exactly one JSON object, else None (never raises).

    Accepted, after stripping whitespace: the object alone, or the object as the only content
    of one markdown code block (```json / ```); either may follow one closed ``<think>...</think>``
    block (the reasoning section Qwen3-style models, as PEARL trains, emit first). Nothing else:
    an object buried in prose, two objects, or text after the object is not an answer, so the
    format reward pays only for the format the prompt asks for. PEARL's own parser is unreleased
    (papers.md section 3); this is its JSON answer format read strictly. One decode pass: linear.
    """
    body = text.strip()
    if body.startswith(_THINK_OPEN):
        close = body.find(_THINK_CLOSE)
        if close < 0:
            return None
        body = body[close + len(_THINK_CLOSE):].strip()
    fenced = _unfence(body)
    return _decode_whole(fenced if fenced is not None else body)


def _small_int(text: str) -> int | None:
    """``text`` as an int if it is a short run of ASCII digits ("²".isdigit() is True, int("²") fails)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def _as_id(x: Any, m: int) -> int | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, np.integer)):
        return int(x) if 0 <= int(x) < m else None
    if isinstance(x, float) and x.is_integer():
        return _as_id(int(x), m)
    if isinstance(x, str):
        value = _small_int(x.strip().lstrip("[Ee").rstrip("]").strip())
        return None if value is None else _as_id(value, m)
    return None


def check_ranking(ranking: Any, m: int) -> tuple[list[int] | None, str]:
    """A ranking must list every event id 0..M-1 exactly once."""
    if not isinstance(ranking, (list, tuple, np.ndarray)):
        return None, f"priority_ranking must be a list of the {m} event ids, got {type(ranking).__name__}"
    ids = [_as_id(x, m) for x in list(ranking)]
    if len(ids) != m or None in ids or sorted(ids) != list(range(m)):  # type: ignore[type-var]
        return None, f"priority_ranking {list(ranking)!r} is not a permutation of the event ids 0..{m - 1}"
    return ids, ""  # type: ignore[return-value]


def parse_decision(action: Any, m: int) -> Decision:
    """Any accepted action form -> Decision: an index, a ranking, a dict, or the JSON text."""
    if isinstance(action, str):
        if len(action) > MAX_ANSWER_CHARS:
            return Decision(False, message=f"answer is {len(action)} characters; at most {MAX_ANSWER_CHARS} are read")
        obj = extract_json(action)
        if obj is None:
            return Decision(False, message="unparsable answer: the answer must be one JSON object and nothing else "
                                           f"(optionally in a ```json block); got {action[:80]!r}")
        return parse_decision(obj, m)
    if isinstance(action, dict):
        ranking, accept = None, None
        rank_raw = action.get("priority_ranking", action.get("ranking"))
        acc_raw = action.get("selected_event_to_accept", action.get("accept"))
        if rank_raw is None and acc_raw is None:
            return Decision(False, message="answer has neither 'selected_event_to_accept' nor 'priority_ranking'")
        if rank_raw is not None:
            ranking, msg = check_ranking(rank_raw, m)
            if ranking is None:
                return Decision(False, message=msg)
        if acc_raw is not None:
            accept = _as_id(acc_raw, m)
            if accept is None:
                return Decision(False, message=f"selected_event_to_accept {acc_raw!r} is not an event id in 0..{m - 1}")
        if ranking is not None and accept is not None and ranking[0] != accept:
            return Decision(False, message=f"selected_event_to_accept {accept} is not first in priority_ranking {ranking}")
        return Decision(True, accept if accept is not None else ranking[0], ranking)  # type: ignore[index]
    arr = np.asarray(action) if isinstance(action, (list, tuple, np.ndarray)) else None
    if arr is not None and arr.ndim == 1 and arr.size > 1:
        ranking, msg = check_ranking(arr.tolist(), m)
        return Decision(True, ranking[0], ranking) if ranking else Decision(False, message=msg)
    if arr is not None and arr.size == 1:
        action = arr.reshape(()).item()
    if isinstance(action, (float, np.floating)) and not np.isfinite(action):
        return Decision(False, message=f"action {action} is not a finite event id")
    accept = _as_id(action, m)
    if accept is None:
        return Decision(False, message=f"action {action!r} is not an event id in 0..{m - 1}")
    return Decision(True, accept, None)


def is_hub_call(action: Any) -> dict[str, Any] | None:
    """The hub request if ``action`` is one (a dict or JSON text with an 'action' key)."""
    if isinstance(action, str) and len(action) > MAX_ANSWER_CHARS:
        return None  # parse_decision then reports the length
    obj = extract_json(action) if isinstance(action, str) else action if isinstance(action, dict) else None
    if isinstance(obj, dict) and "action" in obj and "selected_event_to_accept" not in obj:
        return obj
    return None
