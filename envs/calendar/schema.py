"""The world CalendarConflict users live in: organisations, roles, meeting templates, events
and the hidden preference principles (each a predicate over an event's attributes).

Everything here is plain data plus small pure functions, so the generator, the env and the
text renderer agree on one definition of every attribute and principle.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

# --- organisations and roles ----------------------------------------------------------------
# role -> (seniority 1..5, org kind). Seniority orders people within an organisation.
ROLES: dict[str, tuple[int, str]] = {
    "PI": (5, "lab"),
    "postdoc": (3, "lab"),
    "PhD": (2, "lab"),
    "undergrad": (1, "lab"),
    "CEO": (5, "company"),
    "HR": (3, "company"),
    "engineer": (2, "company"),
}
ROLE_NAMES: list[str] = list(ROLES)
# members of one organisation, in org-chart order (the first is the head)
ORG_TEMPLATES: dict[str, list[str]] = {
    "lab": ["PI", "postdoc", "postdoc", "PhD", "PhD", "PhD", "PhD", "undergrad", "undergrad", "undergrad"],
    "company": ["CEO", "HR", "HR", "engineer", "engineer", "engineer", "engineer", "engineer", "engineer", "engineer"],
}
EXTERNAL_PEOPLE = [("Prof. Alvarez (MIT)", 5), ("Dr. Chen (Google)", 4), ("Ms. Okafor (client)", 4),
                   ("Mr. Berg (investor)", 5), ("Dr. Rossi (collaborator)", 3), ("Ms. Tanaka (vendor)", 2)]
FIRST_NAMES = ["Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea", "Max", "Nia",
               "Omar", "Pia", "Quinn", "Raj", "Sara", "Tom", "Uma", "Vic", "Wen", "Xia", "Yara", "Zed"]

# --- events ---------------------------------------------------------------------------------
KINDS = ["sync", "one_on_one", "deadline_work", "external", "seminar", "social", "personal", "review", "interview"]
LOCATIONS = ["online", "office", "offsite"]
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class Event:
    """One calendar entry. Times are minutes since 2025-01-06 00:00 (a Monday)."""

    title: str
    kind: str
    start: int
    duration: int
    attendees: tuple[str, ...]  # includes the user
    organizer: str
    recurring: bool = False
    deadline: bool = False
    external: bool = False
    location: str = "office"
    created: int = 0  # when it was put on the calendar (minutes, may be negative)
    description: str = ""

    @property
    def end(self) -> int:
        return self.start + self.duration

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["attendees"] = list(self.attendees)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        return cls(**{**d, "attendees": tuple(d["attendees"])})

    def moved(self, **changes: Any) -> Event:
        return replace(self, **changes)


@dataclass(frozen=True)
class MeetingTemplate:
    """A recurring meeting: topic, frequency (weeks between instances), duration, attendees."""

    topic: str
    kind: str
    every_weeks: int
    duration: int
    attendees: tuple[str, ...]
    organizer: str
    weekday: int  # 0 = Monday
    hour: float
    location: str = "office"
    external: bool = False


@dataclass
class User:
    """One synthetic user: a member of an org with a role, templates and hidden principles."""

    user_id: int
    name: str
    role: str
    org: str
    org_kind: str
    manager: str | None
    reports: tuple[str, ...]
    seniority: dict[str, int]  # everyone the user meets -> seniority
    templates: list[MeetingTemplate] = field(default_factory=list)
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))  # hidden, one per principle
    split: str = "train"

    @property
    def my_seniority(self) -> int:
        return self.seniority[self.name]

    def principles(self) -> list[dict[str, Any]]:
        """The hidden ground truth, for export and inspection (never shown to the agent)."""
        return [{"key": k, "text": PRINCIPLE_TEXT[k], "weight": round(float(w), 4)}
                for k, w in zip(PRINCIPLES, self.weights) if w > 0]


# --- principles: predicates over event attributes ----------------------------------------------
PRINCIPLE_TEXT: dict[str, str] = {
    "manager": "Meetings that involve my manager beat meetings with peers.",
    "senior": "Events with someone more senior than me beat events without.",
    "deadline": "Work tied to a deadline beats routine meetings.",
    "external": "External meetings (clients, collaborators, investors) beat internal ones.",
    "one_on_one": "One-on-one meetings beat group meetings.",
    "own": "Events I organised myself beat events others organised.",
    "one_off": "One-off events beat recurring syncs.",
    "large": "Large gatherings (6+ people) beat small ones.",
    "personal": "Personal and health commitments beat work events.",
    "in_person": "In-person meetings beat online ones.",
    "mentee": "Meetings with the people I supervise beat other meetings.",
    "short": "Short events (30 minutes or less) beat long ones.",
}
PRINCIPLES: list[str] = list(PRINCIPLE_TEXT)
N_PRINCIPLES = len(PRINCIPLES)
# raw numeric attributes shown next to the principle predicates in the structured observation
NUMERIC_FEATURES = ["duration_h", "start_hour", "lead_weeks", "n_attendees", "max_seniority"]
FEATURE_NAMES = PRINCIPLES + NUMERIC_FEATURES
N_FEATURES = len(FEATURE_NAMES)


def predicates(ev: Event, user: User) -> np.ndarray:
    """g_k(event) in {0, 1} for every principle k (the user's point of view)."""
    others = [a for a in ev.attendees if a != user.name]
    seniors = [user.seniority.get(a, 3) for a in others]
    return np.array([
        user.manager is not None and (user.manager in ev.attendees or ev.organizer == user.manager),
        bool(seniors) and max(seniors) > user.my_seniority,
        ev.deadline,
        ev.external,
        len(ev.attendees) == 2,
        ev.organizer == user.name,
        not ev.recurring,
        len(ev.attendees) >= 6,
        ev.kind == "personal",
        ev.location != "online",
        any(a in user.reports for a in others),
        ev.duration <= 30,
    ], dtype=np.float32)


def features(ev: Event, user: User) -> np.ndarray:
    """Fixed-size numeric description of one event: predicates, then scaled raw attributes."""
    others = [a for a in ev.attendees if a != user.name]
    max_sen = max((user.seniority.get(a, 3) for a in others), default=0)
    numeric = np.array([
        ev.duration / 120.0,
        (ev.start % MINUTES_PER_DAY) / MINUTES_PER_DAY,
        min(max(ev.start - ev.created, 0) / (7 * MINUTES_PER_DAY), 8.0) / 8.0,
        min(len(ev.attendees), 20) / 20.0,
        max_sen / 5.0,
    ], dtype=np.float32)
    return np.concatenate([predicates(ev, user), numeric])


def max_attendee_seniority(ev: Event, user: User) -> int:
    return max((user.seniority.get(a, 3) for a in ev.attendees if a != user.name), default=0)


def format_time(minutes: int) -> str:
    """'2025-03-04 Tue 14:30' for minutes since 2025-01-06 00:00."""
    t = dt.datetime(2025, 1, 6) + dt.timedelta(minutes=int(minutes))
    return t.strftime("%Y-%m-%d %a %H:%M")
