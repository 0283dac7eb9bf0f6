"""CalConflict-style synthetic data: users, a year of regular events, and conflict rounds.

Follows PEARL's construction (papers.md section 3): role-based users with hidden weighted
principles, 52 weeks of events from recurring meeting templates, then per round M mutually
overlapping events with exactly one ground-truth winner:

* Case A: an accepted anchor from the calendar plus M-1 competitors it dominates;
* Case B: a declined anchor, one principle-justified accepted competitor, M-2 extra declined.

"Unique" means the winner's hidden score beats every other event by at least ``margin``.
Every user is generated from ``default_rng([seed, user_id])`` alone, so a user is the same
whoever asks for it and in whatever order. Run ``python -m envs.calendar.generate --help``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfgym.envs.calendar import operators as ops
from selfgym.envs.calendar.schema import (EXTERNAL_PEOPLE, FIRST_NAMES, MINUTES_PER_DAY, N_FEATURES, ORG_TEMPLATES, PRINCIPLES,
                                  ROLES, Event, MeetingTemplate, User, features, predicates)

WEEK = 7 * MINUTES_PER_DAY
SPLITS = ("train", "validation", "test")

# role -> {principle: (probability the principle is active for a user, base weight)}
_DEFAULT_PRIOR = (0.25, 0.4)
ROLE_PRIORS: dict[str, dict[str, tuple[float, float]]] = {
    "PI": {"external": (0.8, 0.9), "mentee": (0.7, 0.6), "deadline": (0.6, 0.7), "own": (0.5, 0.5), "large": (0.4, 0.4)},
    "postdoc": {"deadline": (0.8, 0.9), "manager": (0.7, 0.7), "mentee": (0.5, 0.4), "external": (0.5, 0.6)},
    "PhD": {"deadline": (0.8, 1.0), "manager": (0.8, 0.8), "one_on_one": (0.5, 0.5), "senior": (0.5, 0.5)},
    "undergrad": {"senior": (0.8, 0.8), "manager": (0.6, 0.7), "personal": (0.5, 0.6), "short": (0.4, 0.3)},
    "CEO": {"external": (0.9, 1.0), "one_off": (0.6, 0.5), "own": (0.5, 0.6), "large": (0.5, 0.5)},
    "HR": {"one_on_one": (0.8, 0.8), "mentee": (0.5, 0.5), "personal": (0.5, 0.6), "in_person": (0.6, 0.4)},
    "engineer": {"deadline": (0.8, 0.9), "manager": (0.6, 0.7), "short": (0.5, 0.4), "in_person": (0.4, 0.3)},
}


@dataclass
class Round:
    """One conflict: M overlapping events, the ground-truth winner and how it was built."""

    events: list[Event]
    winner: int
    scores: np.ndarray
    case: str  # "A" or "B"


@dataclass
class UserData:
    """Everything about one user; ``feats`` (N, M, F) and ``winners`` (N,) feed the env fast."""

    user: User
    calendar: list[Event]
    rounds: list[Round]
    feats: np.ndarray
    winners: np.ndarray

    def to_json(self, with_calendar: bool = True) -> dict:
        u = self.user
        out = {
            "user_id": u.user_id, "name": u.name, "role": u.role, "org": u.org, "org_kind": u.org_kind,
            "manager": u.manager, "reports": list(u.reports), "split": u.split,
            "principles": u.principles(),
            "templates": [{"topic": t.topic, "kind": t.kind, "every_weeks": t.every_weeks, "duration": t.duration,
                           "attendees": list(t.attendees)} for t in u.templates],
            "rounds": [{"round": i, "case": r.case, "winner": r.winner, "scores": [round(float(s), 4) for s in r.scores],
                        "events": [e.to_dict() for e in r.events]} for i, r in enumerate(self.rounds)],
        }
        if with_calendar:
            out["calendar"] = [e.to_dict() for e in self.calendar]
        return out


# --- organisations and users ----------------------------------------------------------------------
def org_members(seed: int, org_index: int) -> tuple[str, str, list[tuple[str, str, str | None]]]:
    """(org name, kind, [(name, role, manager name)]) for one organisation of 10 people."""
    kind = "lab" if org_index % 2 == 0 else "company"
    rng = np.random.default_rng([seed, 1_000_000 + org_index])
    names = [f"{n} {chr(65 + org_index % 26)}." for n in rng.permutation(FIRST_NAMES)[:10]]
    roles = ORG_TEMPLATES[kind]
    members: list[tuple[str, str, str | None]] = []
    for i, role in enumerate(roles):
        if i == 0:
            manager = None
        elif kind == "lab" and role == "undergrad":  # undergrads are mentored by a postdoc
            manager = names[1 + int(rng.integers(2))]
        else:
            manager = names[0]
        members.append((names[i], role, manager))
    org = f"{'Lab' if kind == 'lab' else 'Corp'}-{org_index}"
    return org, kind, members


def _templates(user: User, members: list[tuple[str, str, str | None]], rng: np.random.Generator) -> list[MeetingTemplate]:
    me, head = user.name, members[0][0]
    everyone = tuple(m[0] for m in members)
    t: list[MeetingTemplate] = []

    def add(topic: str, kind: str, every: int, dur: int, att: tuple[str, ...], org: str, loc: str = "office",
            ext: bool = False) -> None:
        t.append(MeetingTemplate(topic, kind, every, dur, tuple(dict.fromkeys((me,) + att)), org,
                                 int(rng.integers(5)), float(rng.choice([9, 10, 11, 13, 14, 15, 16])), loc, ext))

    if user.org_kind == "lab":
        add("Lab meeting", "sync", 1, 60, everyone, head)
        add("Reading group", "seminar", 2, 60, tuple(m[0] for m in members if m[1] in ("postdoc", "PhD")), members[1][0])
        add("Department seminar", "seminar", 1, 60, everyone + ("Prof. Alvarez (MIT)",), head, "offsite")
        if user.role == "PI":
            add("Grant sync", "external", 2, 60, ("Dr. Rossi (collaborator)",), me, "online", True)
            add("Faculty meeting", "sync", 4, 90, ("Prof. Alvarez (MIT)",), "Prof. Alvarez (MIT)", "office")
    else:
        add("All hands", "sync", 2, 60, everyone, head)
        add("Team standup", "sync", 1, 15, tuple(m[0] for m in members if m[1] == "engineer"), members[3][0], "online")
        if user.role == "CEO":
            add("Board meeting", "external", 4, 120, ("Mr. Berg (investor)",), "Mr. Berg (investor)", "offsite", True)
            add("Client check-in", "external", 2, 45, ("Ms. Okafor (client)",), me, "online", True)
        if user.role == "HR":
            add("Candidate interview", "interview", 1, 45, ("Ms. Tanaka (vendor)",), me, "online", True)
            add("Policy review", "review", 4, 60, (head,), head)
    if user.manager is not None:
        add(f"1:1 with {user.manager}", "one_on_one", 1 if user.role in ("PhD", "undergrad") else 2, 30,
            (user.manager,), user.manager)
    for r in user.reports[:3]:
        add(f"1:1 with {r}", "one_on_one", 2, 30, (r,), me)
    add("Gym", "personal", 1, 60, (), me, "offsite")
    return t


def make_user(seed: int, user_id: int, split: str = "train") -> User:
    """User ``user_id``: member ``user_id % 10`` of organisation ``user_id // 10``."""
    org, kind, members = org_members(seed, user_id // 10)
    name, role, manager = members[user_id % 10]
    rng = np.random.default_rng([seed, user_id])
    seniority = {m[0]: ROLES[m[1]][0] for m in members} | {n: s for n, s in EXTERNAL_PEOPLE}
    reports = tuple(m[0] for m in members if m[2] == name)
    user = User(user_id, name, role, org, kind, manager, reports, seniority, split=split)
    user.templates = _templates(user, members, rng)
    prior = ROLE_PRIORS[role]
    p = np.array([prior.get(k, _DEFAULT_PRIOR)[0] for k in PRINCIPLES])
    base = np.array([prior.get(k, _DEFAULT_PRIOR)[1] for k in PRINCIPLES])
    active = rng.random(len(PRINCIPLES)) < p
    for k in np.argsort(-p + 1e-3 * rng.random(len(PRINCIPLES))):  # at least 3 principles
        if active.sum() >= 3:
            break
        active[k] = True
    w = base * np.exp(rng.normal(0.0, 0.5, len(PRINCIPLES))) * active
    w = np.where(active, np.maximum(w / w.max(), 0.15), 0.0)
    user.weights = w.astype(np.float64)
    return user


# --- a year of events ----------------------------------------------------------------------------
def year_calendar(user: User, rng: np.random.Generator, weeks: int = 52) -> list[Event]:
    """Regular events from the user's templates plus 1-3 one-off events a week."""
    events = []
    for tpl in user.templates:
        offset = int(rng.integers(tpl.every_weeks))
        created = -int(rng.integers(1, 60)) * MINUTES_PER_DAY
        for w in range(offset, weeks, tpl.every_weeks):
            start = w * WEEK + tpl.weekday * MINUTES_PER_DAY + int(tpl.hour * 60)
            events.append(Event(tpl.topic, tpl.kind, start, tpl.duration, tpl.attendees, tpl.organizer, True,
                                False, tpl.external, tpl.location, created))
    for w in range(weeks):
        for _ in range(int(rng.integers(1, 4))):
            start = w * WEEK + int(rng.integers(5)) * MINUTES_PER_DAY + int(rng.integers(9 * 4, 17 * 4)) * 15
            events.append(ops.random_event(user, rng, start))
    events.sort(key=lambda e: e.start)
    return events


# --- conflicts ------------------------------------------------------------------------------------
def score(ev: Event, user: User) -> float:
    return float(predicates(ev, user) @ user.weights)


def _place(ev: Event, anchor: Event, rng: np.random.Generator) -> Event:
    """Move ``ev`` so it covers the anchor's first 15 minutes: all events of a round then share
    that interval (placement changes no principle, so no score)."""
    lo = -((ev.duration - 15) // 15)
    return ev.moved(start=anchor.start + 15 * int(rng.integers(lo, 1)))


def _overlapping(anchor: Event, user: User, rng: np.random.Generator) -> Event:
    return _place(ops.random_event(user, rng, anchor.start), anchor, rng)


def make_round(user: User, anchor: Event, case: str, m: int, rng: np.random.Generator, margin: float) -> Round:
    """M overlapping events whose hidden-score winner beats every other by ``margin``."""
    if score(anchor, user) > user.weights.sum() - margin:
        case = "A"  # nothing can beat this anchor, so it is the accepted one
    for attempt in range(200):
        if attempt == 100:
            case = "B" if case == "A" else "A"
        if case == "A":  # accepted anchor; competitors must be dominated
            winner = anchor
            while score(winner, user) < margin + 0.3 * user.weights.max():
                boosted = ops.boost(winner, user, rng)
                if boosted is None:
                    break
                winner = boosted
            losers = []
            for _slot in range(m - 1):
                for _try in range(40):
                    ev = _place(ops.mutate(_overlapping(winner, user, rng), user, rng), winner, rng)
                    if score(ev, user) <= score(winner, user) - margin:
                        losers.append(ev)
                        break
            if len(losers) < m - 1:  # the anchor is too weak: make it more attractive and retry
                anchor = ops.boost(winner, user, rng) or _overlapping(anchor, user, rng)
                continue
        else:  # declined anchor; one principle-justified competitor beats it and the extras
            losers = [anchor] + [_place(ops.mutate(_overlapping(anchor, user, rng), user, rng), anchor, rng)
                                for _ in range(m - 2)]
            best = max(score(e, user) for e in losers)
            winner = _overlapping(anchor, user, rng)
            while winner is not None and score(winner, user) < best + margin:
                winner = ops.boost(winner, user, rng)
            if winner is None:
                continue
            winner = _place(winner, anchor, rng)
        events = [winner] + losers
        order = rng.permutation(m)
        events = [events[i] for i in order]
        scores = np.array([score(e, user) for e in events])
        return Round(events, int(np.flatnonzero(order == 0)[0]), scores, case)
    raise RuntimeError(f"could not build a conflict with a unique winner for user {user.user_id} ({user.role})")


def make_user_data(seed: int, user_id: int, n_rounds: int = 104, n_events: int = 5, margin: float = 0.1,
                   split: str = "train") -> UserData:
    """One user's profile, year calendar and ``n_rounds`` conflicts of ``n_events`` events."""
    if n_events < 2:
        raise ValueError(f"n_events (M) must be at least 2, got {n_events}")
    if n_rounds < 1:
        raise ValueError(f"n_rounds (N) must be at least 1, got {n_rounds}")
    user = make_user(seed, user_id, split)
    rng = np.random.default_rng([seed, user_id, 1])
    calendar = year_calendar(user, rng)
    weeks = np.array([e.start // WEEK for e in calendar])
    rounds = []
    for t in range(n_rounds):
        week = t * 52 // n_rounds
        pool = np.flatnonzero(weeks == week)
        anchor = calendar[int(rng.choice(pool))] if len(pool) else calendar[int(rng.integers(len(calendar)))]
        case = "A" if rng.random() < 0.5 else "B"
        rounds.append(make_round(user, anchor, case, n_events, rng, margin))
    feats = np.stack([np.stack([features(e, user) for e in r.events]) for r in rounds]).astype(np.float32)
    assert feats.shape == (n_rounds, n_events, N_FEATURES)
    return UserData(user, calendar, rounds, feats, np.array([r.winner for r in rounds], dtype=np.int64))


def split_users(n_users: int, seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> dict[str, list[int]]:
    """Disjoint train/validation/test user ids (a seeded permutation of 0..n_users-1)."""
    if n_users < 3:
        raise ValueError(f"need at least 3 users for train/validation/test splits, got {n_users}")
    perm = np.random.default_rng([seed, 7]).permutation(n_users)
    n_val = max(1, int(round(fractions[1] * n_users)))
    n_test = max(1, int(round(fractions[2] * n_users)))
    n_train = n_users - n_val - n_test
    return {"train": sorted(perm[:n_train].tolist()), "validation": sorted(perm[n_train:n_train + n_val].tolist()),
            "test": sorted(perm[n_train + n_val:].tolist())}


def export_jsonl(path: str | Path, n_users: int, seed: int = 0, n_rounds: int = 104, n_events: int = 5,
                 with_calendar: bool = True) -> int:
    """Write one JSON line per user (profile, hidden principles, calendar, rounds); returns lines."""
    splits = split_users(n_users, seed)
    split_of = {u: s for s, ids in splits.items() for u in ids}
    with open(path, "w") as f:
        for u in range(n_users):
            data = make_user_data(seed, u, n_rounds, n_events, split=split_of[u])
            f.write(json.dumps(data.to_json(with_calendar)) + "\n")
    return n_users


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Generate CalendarConflict users and conflict rounds as JSONL.")
    p.add_argument("--users", type=int, default=100, help="number of users (10 per organisation)")
    p.add_argument("--rounds", type=int, default=104, help="conflict rounds per user (N)")
    p.add_argument("--events", type=int, default=5, help="events per conflict (M)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-calendar", action="store_true", help="leave out the year of regular events")
    p.add_argument("--out", required=True, help="output .jsonl path")
    a = p.parse_args(argv)
    n = export_jsonl(a.out, a.users, a.seed, a.rounds, a.events, not a.no_calendar)
    print(f"wrote {n} users x {a.rounds} rounds (M={a.events}) to {a.out}")


if __name__ == "__main__":
    main()
