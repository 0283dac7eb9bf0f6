"""Random events and the event-mutating operators that build conflicts (PEARL's C(r)).

``ENABLE[k]`` turns principle k's predicate on ("attach deadline", "add senior attendee", ...);
``boost`` applies one that raises the user's hidden score, which is how a winner becomes
principle-justified. ``mutate`` applies random operators, either way, to vary competitors.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from selfgym.envs.calendar.schema import EXTERNAL_PEOPLE, MINUTES_PER_DAY, Event, User, predicates

TOPICS = {
    "sync": ["Project sync", "Planning meeting", "Status update", "Roadmap discussion", "Sprint planning"],
    "one_on_one": ["Quick chat", "Career check-in", "Feedback session", "Coffee chat"],
    "deadline_work": ["Paper draft due", "Grant report due", "Release freeze", "Quarterly report due", "Demo prep"],
    "external": ["Collaboration call", "Client meeting", "Partner pitch", "Vendor negotiation", "Advisory call"],
    "seminar": ["Invited talk", "Tech talk", "Workshop", "Journal club", "Training session"],
    "social": ["Team lunch", "Birthday cake", "Happy hour", "Offsite social"],
    "personal": ["Dentist", "Doctor appointment", "Kid's school play", "Gym class", "Therapy"],
    "review": ["Code review", "Draft review", "Design review", "Budget review"],
    "interview": ["Candidate interview", "Intern interview", "Hiring debrief"],
}
KIND_LIST = list(TOPICS)
DURATIONS = [15, 30, 45, 60, 90, 120]


_EXTERNAL_NAMES = {n for n, _ in EXTERNAL_PEOPLE}


def _colleagues(user: User) -> list[str]:
    cached = user.__dict__.get("_colleagues")
    if cached is None:
        cached = user.__dict__["_colleagues"] = [n for n in user.seniority if n != user.name and n not in _EXTERNAL_NAMES]
    return cached


def _pick(rng: np.random.Generator, items: list[str], k: int) -> tuple[str, ...]:
    k = min(k, len(items))
    return tuple(items[i] for i in rng.choice(len(items), size=k, replace=False)) if k else ()


def random_event(user: User, rng: np.random.Generator, start: int) -> Event:
    """A plausible one-off (sometimes recurring) event for ``user`` starting at ``start``."""
    kind = KIND_LIST[int(rng.integers(len(KIND_LIST)))]
    col = _colleagues(user)
    me = user.name
    external = False
    if kind == "one_on_one":
        att = (me,) + _pick(rng, col, 1)
    elif kind == "deadline_work":
        att = (me,) + _pick(rng, col, int(rng.integers(0, 3)))
    elif kind in ("external", "interview"):
        ext = EXTERNAL_PEOPLE[int(rng.integers(len(EXTERNAL_PEOPLE)))][0]
        att = (me, ext) + _pick(rng, col, int(rng.integers(0, 2)))
        external = True
    elif kind == "personal":
        att = (me,)
    elif kind in ("seminar", "social"):
        att = (me,) + _pick(rng, col, int(rng.integers(4, 10)))
    else:
        att = (me,) + _pick(rng, col, int(rng.integers(1, 6)))
    organizer = me if kind == "personal" else att[int(rng.integers(len(att)))]
    duration = int(rng.choice(DURATIONS[:3] if kind in ("one_on_one", "review") else DURATIONS))
    created = start - int(rng.integers(1, 45)) * MINUTES_PER_DAY - int(rng.integers(0, 600))
    topic = TOPICS[kind][int(rng.integers(len(TOPICS[kind])))]
    return Event(topic, kind, int(start), duration, att, organizer, recurring=bool(kind == "sync" and rng.random() < 0.5),
                 deadline=kind == "deadline_work", external=external,
                 location=("online", "office", "offsite")[int(rng.integers(3))], created=created)


# --- operators that switch one principle on ---------------------------------------------------------
def _add(ev: Event, *people: str) -> Event:
    return ev.moved(attendees=tuple(dict.fromkeys(ev.attendees + people)))


def _senior(ev: Event, user: User, rng: np.random.Generator) -> Event | None:
    seniors = [n for n, s in user.seniority.items() if s > user.my_seniority]
    return _add(ev, seniors[int(rng.integers(len(seniors)))]) if seniors else None


def _external(ev: Event, user: User, rng: np.random.Generator) -> Event:
    ext = EXTERNAL_PEOPLE[int(rng.integers(len(EXTERNAL_PEOPLE)))][0]
    return _add(ev, ext).moved(external=True, title=ev.title + " (external)")


def _one_on_one(ev: Event, user: User, rng: np.random.Generator) -> Event | None:
    others = [a for a in ev.attendees if a != user.name] or _colleagues(user)
    other = others[int(rng.integers(len(others)))]
    if other in _EXTERNAL_NAMES:
        return ev.moved(attendees=(user.name, other), external=True)
    return ev.moved(attendees=(user.name, other), external=False, kind="one_on_one")


def _large(ev: Event, user: User, rng: np.random.Generator) -> Event:
    need = max(0, 6 - len(ev.attendees))
    extra = [c for c in _colleagues(user) if c not in ev.attendees]
    return _add(ev, *_pick(rng, extra, need + int(rng.integers(0, 3))))


def _mentee(ev: Event, user: User, rng: np.random.Generator) -> Event | None:
    return _add(ev, user.reports[int(rng.integers(len(user.reports)))]) if user.reports else None


def _personal(ev: Event, user: User, rng: np.random.Generator) -> Event:
    topic = TOPICS["personal"][int(rng.integers(len(TOPICS["personal"])))]
    return ev.moved(kind="personal", title=topic, attendees=(user.name,), organizer=user.name, external=False,
                    deadline=False, recurring=False)


Op = Callable[[Event, User, np.random.Generator], "Event | None"]
ENABLE: dict[str, Op] = {
    "manager": lambda ev, u, rng: _add(ev, u.manager) if u.manager else None,
    "senior": _senior,
    "deadline": lambda ev, u, rng: ev.moved(deadline=True, title=ev.title + " (deadline)"),
    "external": _external,
    "one_on_one": _one_on_one,
    "own": lambda ev, u, rng: ev.moved(organizer=u.name),
    "one_off": lambda ev, u, rng: ev.moved(recurring=False),
    "large": _large,
    "personal": _personal,
    "in_person": lambda ev, u, rng: ev.moved(location="office" if rng.random() < 0.7 else "offsite"),
    "mentee": _mentee,
    "short": lambda ev, u, rng: ev.moved(duration=int(rng.choice([15, 30]))),
}
DISABLE: list[Op] = [
    lambda ev, u, rng: ev.moved(recurring=True),
    lambda ev, u, rng: ev.moved(location="online"),
    lambda ev, u, rng: ev.moved(duration=int(rng.choice([60, 90, 120]))),
    lambda ev, u, rng: ev.moved(deadline=False),
    lambda ev, u, rng: ev.moved(organizer=ev.attendees[-1]) if len(ev.attendees) > 1 else None,
]


def boost(ev: Event, user: User, rng: np.random.Generator) -> Event | None:
    """Switch on one of the user's inactive principles so the hidden score rises; None if none can."""
    g, w = predicates(ev, user), user.weights
    base = float(g @ w)
    options, gains = [], []
    for k in np.flatnonzero((w > 0) & (g == 0)):
        new = ENABLE[list(ENABLE)[k]](ev, user, rng)
        if new is not None:
            gain = float(predicates(new, user) @ w) - base
            if gain > 1e-9:
                options.append(new)
                gains.append(gain)
    if not options:
        return None
    return options[int(rng.choice(len(options), p=np.array(gains) / sum(gains)))]


def can_boost(ev: Event, user: User) -> bool:
    """Cheap necessary check: some weighted principle is off for this event."""
    return bool(np.any((user.weights > 0) & (predicates(ev, user) == 0)))


def mutate(ev: Event, user: User, rng: np.random.Generator) -> Event:
    """0-2 random operators, switching principles on or off, for variety among competitors."""
    ops = list(ENABLE.values()) + DISABLE
    for _ in range(int(rng.integers(0, 3))):
        new = ops[int(rng.integers(len(ops)))](ev, user, rng)
        ev = new if new is not None else ev
    return ev
