"""The oracle goal grammar of CookingWorld, and the oracle relabeler and reward that read the true state.

These are the deterministic counterparts of LMA3's language-model roles (named ``oracle_*``):
they understand the goals below and nothing else, and say so ("outside the grammar") instead of
scoring an unknown goal as a failure.

Grammar (case and articles "the / a / an / some" are free; clauses are joined by "and", a
comma, or ", and"; every clause must be achieved, in any order)::

    go to ROOM                         go to the garden
    take NP | pick up NP | get NP      take the knife
    drop NP                            drop the apple          (put on the floor)
    put NP in|on|into RECEPTACLE       put the apple in the fridge
    open THING | close THING           open the fridge, close the wooden door
    slice | dice | chop NP             slice the carrot
    fry | roast | grill | burn NP      fry the potato          (cook NP: any of fried/roasted/grilled)
    eat NP                             eat the grilled carrot

    NP := ADJECTIVE* OBJECT, ADJECTIVE in sliced diced chopped fried roasted grilled burned cooked raw uncut

An adjective is a condition on the object's state at that moment ("eat the grilled carrot": the
carrot was grilled when eaten). Names come from world.py's catalogue; a well-formed goal naming
something absent from the layout is ``unknown_in_layout``.

When is a goal achieved by a trajectory of states s_0..s_T? A clause is achieved when its
predicate turns true: false in s_{t-1} and true in s_t for some t >= 1 (an apple that starts in
the fridge does not achieve "put the apple in the fridge"). A conjunction is achieved when each
of its clauses is. ``oracle_relabel`` lists exactly the atomic goals whose predicate turned true.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from selfgym.envs.cooking.world import DEVICE_STATE, DOOR_NAMES, FOOD_KINDS, KNIFE, ROOMS

State = dict[str, Any]
CUTS = ("sliced", "diced", "chopped")
COOKED = ("fried", "roasted", "grilled")
ADJECTIVES = (*CUTS, *COOKED, "burned", "cooked", "raw", "uncut")
CUT_VERBS = {"slice": "sliced", "dice": "diced", "chop": "chopped"}
COOK_VERBS = {"fry": "fried", "roast": "roasted", "grill": "grilled", "burn": "burned", "cook": "cooked"}
PORTABLE = frozenset((*FOOD_KINDS, KNIFE))
RECEPTACLES = frozenset(n for f in ROOMS.values() for n, k in f if k != "device")
OPENABLE = frozenset((*(n for f in ROOMS.values() for n, k in f if k == "container"), *DOOR_NAMES))
_JOIN = re.compile(r"\s*(?:,\s*and\s+|,\s*|\s+and\s+)\s*")
_ARTICLES = re.compile(r"\b(the|a|an|some)\b")
_SPACES = re.compile(r"\s+")
STATUSES = ("achieved", "not_achieved", "outside_grammar", "unknown_in_layout")


class OutsideGrammar(ValueError):
    """A goal the oracle does not understand; the message says which part and why."""


@dataclass(frozen=True)
class Clause:
    """One atomic goal: ``verb`` (go, take, drop, put, open, close, cut, cook, eat), its object,
    the adjectives on the object, and ``target`` (room, receptacle, cut or cook state)."""

    verb: str
    obj: str
    adjectives: tuple[str, ...] = ()
    target: str = ""


@dataclass(frozen=True)
class Verdict:
    """What the oracle makes of a goal on a trajectory; ``status`` is one of STATUSES."""

    goal: str
    status: str
    reason: str = ""

    @property
    def success(self) -> bool:
        return self.status == "achieved"


def _clean(text: str) -> str:
    return _SPACES.sub(" ", _ARTICLES.sub(" ", text.lower().replace(".", " ").replace("!", " "))).strip()


def _noun_phrase(text: str, allowed: frozenset[str], what: str) -> tuple[str, tuple[str, ...]]:
    words = text.split()
    adjectives = []
    while words and words[0] in ADJECTIVES and " ".join(words) not in allowed:
        adjectives.append(words.pop(0))
    name = " ".join(words)
    if name not in allowed:
        raise OutsideGrammar(f"{name!r} is not a {what} the grammar knows")
    return name, tuple(adjectives)


def parse_clause(text: str) -> Clause:
    words = _clean(text)
    if words.startswith("go to "):
        room = words[6:]
        if room not in ROOMS:
            raise OutsideGrammar(f"{room!r} is not a room; rooms: {sorted(ROOMS)}")
        return Clause("go", room)
    for prefix in ("pick up ", "take ", "get "):
        if words.startswith(prefix):
            return Clause("take", *_noun_phrase(words[len(prefix):], PORTABLE, "portable object"))
    if words.startswith("drop "):
        return Clause("drop", *_noun_phrase(words[5:], PORTABLE, "portable object"))
    if words.startswith("put "):
        match = re.fullmatch(r"put (.+) (?:in|on|into|inside) (.+)", words)
        if match is None:
            raise OutsideGrammar(f"{text!r}: 'put' needs 'put X in/on Y'")
        name, adjectives = _noun_phrase(match.group(1), PORTABLE, "portable object")
        if match.group(2) not in RECEPTACLES:
            raise OutsideGrammar(f"{match.group(2)!r} is not a container or surface the grammar knows")
        return Clause("put", name, adjectives, match.group(2))
    for verb in ("open", "close"):
        if words.startswith(verb + " "):
            name = words[len(verb) + 1:]
            if name not in OPENABLE:
                raise OutsideGrammar(f"{name!r} is not something that opens and closes")
            return Clause(verb, name)
    first, _, rest = words.partition(" ")
    if first in CUT_VERBS:
        return Clause("cut", *_noun_phrase(rest, frozenset(FOOD_KINDS), "food"), CUT_VERBS[first])
    if first in COOK_VERBS:
        return Clause("cook", *_noun_phrase(rest, frozenset(FOOD_KINDS), "food"), COOK_VERBS[first])
    if first == "eat":
        return Clause("eat", *_noun_phrase(rest, frozenset(FOOD_KINDS), "food"))
    raise OutsideGrammar(f"{text!r} starts with no verb of the grammar (go to, take, drop, put, open, close, "
                         f"slice, dice, chop, fry, roast, grill, burn, cook, eat)")


def parse_goal(goal: str) -> list[Clause]:
    """The clauses of a goal; raises ``OutsideGrammar`` naming the part it cannot read."""
    if not isinstance(goal, str) or not goal.strip():
        raise OutsideGrammar(f"a goal must be non-empty text, got {goal!r}")
    return [parse_clause(part) for part in _JOIN.split(goal.strip().rstrip(".!")) if part]


def _adjectives_hold(entry: dict[str, Any], adjectives: tuple[str, ...]) -> bool:
    for adj in adjectives:
        cut, cooked = entry.get("cut"), entry.get("cooked")
        ok = {"cooked": cooked in COOKED, "raw": cooked is None, "uncut": cut is None}.get(adj)
        if ok is None:
            ok = cut == adj if adj in CUTS else cooked == adj
        if not ok:
            return False
    return True


def holds(clause: Clause, state: State) -> bool:
    """Whether ``clause``'s predicate is true in ``state`` (the object must exist: see ``missing``)."""
    if clause.verb == "go":
        return state["player"] == clause.obj
    if clause.verb in ("open", "close"):
        entry = state["doors"].get(clause.obj) or state["objects"][clause.obj]
        return bool(entry["open"]) == (clause.verb == "open")
    entry = state["objects"][clause.obj]
    if not _adjectives_hold(entry, clause.adjectives):
        return False
    location = entry["location"]
    if clause.verb == "take":
        return location == "inventory"
    if clause.verb == "drop":
        return location in state["rooms"]
    if clause.verb == "put":
        return location == clause.target
    if clause.verb == "cut":
        return entry["cut"] == clause.target
    if clause.verb == "cook":
        return entry["cooked"] in COOKED if clause.target == "cooked" else entry["cooked"] == clause.target
    return location == "eaten"  # eat


def missing(clause: Clause, state: State) -> str:
    """What the clause names that this layout lacks ("" when nothing)."""
    if clause.verb == "go":
        return "" if clause.obj in state["rooms"] else f"room {clause.obj!r}"
    if clause.verb in ("open", "close"):
        present = clause.obj in state["doors"] or clause.obj in state["objects"]
        return "" if present else f"{clause.obj!r}"
    if clause.obj not in state["objects"]:
        return f"{clause.obj!r}"
    if clause.verb == "put" and clause.target not in state["objects"]:
        return f"{clause.target!r}"
    return ""


def achieved(clause: Clause, states: Sequence[State]) -> bool:
    """The predicate turned true at some step t >= 1."""
    before = holds(clause, states[0])
    for state in states[1:]:
        now = holds(clause, state)
        if now and not before:
            return True
        before = now
    return False


def oracle_judge(goal: str, states: Sequence[State]) -> Verdict:
    """The oracle's verdict on ``goal`` for a trajectory of true states; never raises."""
    try:
        clauses = parse_goal(goal)
    except OutsideGrammar as exc:
        return Verdict(goal, "outside_grammar", str(exc))
    if not states:
        return Verdict(goal, "not_achieved", "empty trajectory")
    for clause in clauses:
        if absent := missing(clause, states[0]):
            return Verdict(goal, "unknown_in_layout", f"this layout has no {absent}")
    if all(achieved(c, states) for c in clauses):
        return Verdict(goal, "achieved")
    return Verdict(goal, "not_achieved")


def oracle_reward(goal: str, states: Sequence[State]) -> bool:
    """True when the trajectory achieved ``goal``; raises ``OutsideGrammar`` for a goal it cannot read."""
    verdict = oracle_judge(goal, states)
    if verdict.status == "outside_grammar":
        raise OutsideGrammar(verdict.reason)
    return verdict.success


def atoms(state: State) -> set[str]:
    """Every atomic goal (in canonical words) whose predicate is true in ``state``."""
    out = {f"go to the {state['player']}"}
    for name, entry in state["objects"].items():
        if "open" in entry:
            out.add(("open the " if entry["open"] else "close the ") + name)
        if entry["kind"] not in ("food", "knife"):
            continue
        location = entry["location"]
        if location == "inventory":
            out.add(f"take the {name}")
        elif location == "eaten":
            out.add(f"eat the {name}")
            described = " ".join(x for x in (entry.get("cut"), entry.get("cooked")) if x)
            if described:
                out.add(f"eat the {described} {name}")
        elif location in state["rooms"]:
            out.add(f"drop the {name}")
        else:
            kind = state["objects"][location]["kind"]
            out.add(f"put the {name} {'in' if kind == 'container' else 'on'} the {location}")
        if entry.get("cut"):
            out.add(f"{_VERB_OF[entry['cut']]} the {name}")
        if entry.get("cooked"):
            out.add(f"{_VERB_OF[entry['cooked']]} the {name}")
    for name, door in state["doors"].items():
        out.add(("open the " if door["open"] else "close the ") + name)
    return out


_VERB_OF = {**{v: k for k, v in CUT_VERBS.items()}, **{v: k for k, v in COOK_VERBS.items() if k != "cook"}}


def grammar_goals(state: State) -> list[str]:
    """Every atomic goal of the grammar that this layout allows (a hand-coded goal space)."""
    objects, rooms = state["objects"], state["rooms"]
    goals = [f"go to the {r}" for r in rooms]
    openable = [n for n, e in objects.items() if e["kind"] == "container"] + list(state["doors"])
    goals += [f"{verb} the {n}" for n in openable for verb in ("open", "close")]
    receptacles = [(n, "in" if e["kind"] == "container" else "on") for n, e in objects.items()
                   if e["kind"] in ("container", "surface")]
    cook_verbs = [_VERB_OF[DEVICE_STATE[n]] for n, e in objects.items() if e["kind"] == "device"]
    for name, entry in objects.items():
        if entry["kind"] not in ("food", "knife"):
            continue
        goals += [f"take the {name}", f"drop the {name}"] + [f"put the {name} {p} the {r}" for r, p in receptacles]
        if entry["kind"] == "food":
            kind = FOOD_KINDS[name]
            goals += [f"{v} the {name}" for v in CUT_VERBS if kind.cuttable]
            if kind.cookable and cook_verbs:  # cooking twice burns
                goals += [f"{v} the {name}" for v in (*cook_verbs, "burn")]
            if kind.edible_raw or (kind.cookable and cook_verbs):
                goals.append(f"eat the {name}")
    return goals


def oracle_relabel(states: Sequence[State]) -> list[str]:
    """The atomic goals the trajectory achieved (their predicate turned true), in order of achievement."""
    found: dict[str, None] = {}
    before = atoms(states[0]) if states else set()
    for state in states[1:]:
        now = atoms(state)
        for goal in sorted(now - before):
            found.setdefault(goal, None)
        before = now
    return list(found)


__all__ = ["Clause", "OutsideGrammar", "Verdict", "STATUSES", "atoms", "achieved", "holds",
           "missing", "grammar_goals", "oracle_judge", "oracle_relabel", "oracle_reward", "parse_goal"]
