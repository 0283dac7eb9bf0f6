"""An on-disk cache of generated CalendarConflict users, shared by every process.

Generating a user-year takes 0.2-0.4 s (about 5,000 Python-level random events, each drawn from
the user's own seeded stream, so it cannot be vectorised without changing every user); reading
it back from a JSON file takes a few milliseconds. The first process that needs a user writes
``$SELFGYM_CACHE/calendar/<generator fingerprint>/<settings>/user_<id>.json`` atomically; every
later process (parallel envs, evaluation, benchmarks) reads it. The fingerprint hashes the
generator's source files, so editing the generator can never serve stale users. A file that does
not read back (truncated, edited) is regenerated and rewritten.

Fill the cache ahead of time with ``python -m selfgym.envs.calendar.store --users 100``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from selfgym.cache import cache_root
from selfgym.envs.calendar import generate, operators, schema
from selfgym.envs.calendar.generate import Round, UserData, make_user_data, split_users
from selfgym.envs.calendar.schema import Event, MeetingTemplate, User
from selfgym.runs import atomic_write

FORMAT_VERSION = 1
_EVENT_FIELDS = ("title", "kind", "start", "duration", "attendees", "organizer", "recurring", "deadline", "external",
                 "location", "created", "description")
_TEMPLATE_FIELDS = ("topic", "kind", "every_weeks", "duration", "attendees", "organizer", "weekday", "hour", "location",
                    "external")


@functools.cache
def generator_fingerprint() -> str:
    """First 16 hex digits of the SHA-256 of the generator's source files (generate, operators, schema)."""
    h = hashlib.sha256(f"format {FORMAT_VERSION}".encode())
    for module in (generate, operators, schema):
        h.update(Path(module.__file__).read_bytes())  # type: ignore[arg-type]
    return h.hexdigest()[:16]


def cache_file(seed: int, user_id: int, n_rounds: int, n_events: int, margin: float, root: Path | None = None) -> Path:
    folder = (root or cache_root()) / "calendar" / generator_fingerprint() / f"seed{seed}_n{n_rounds}_m{n_events}_margin{margin!r}"
    return folder / f"user_{user_id}.json"


# -- plain-data round trip ----------------------------------------------------------------------------
def _event_row(ev: Event) -> list[Any]:
    return [list(v) if isinstance(v, tuple) else v for v in (getattr(ev, f) for f in _EVENT_FIELDS)]


def _event(row: list[Any]) -> Event:
    return Event(row[0], row[1], row[2], row[3], tuple(row[4]), *row[5:])


def to_plain(data: UserData, key: dict[str, Any]) -> dict[str, Any]:
    """Everything in ``data`` as JSON-able lists (floats round-trip exactly through ``repr``)."""
    u = data.user
    return {
        "key": key,
        "user": {"user_id": u.user_id, "name": u.name, "role": u.role, "org": u.org, "org_kind": u.org_kind,
                 "manager": u.manager, "reports": list(u.reports), "seniority": u.seniority,
                 "weights": u.weights.tolist(),
                 "templates": [[list(v) if isinstance(v, tuple) else v for v in (getattr(t, f) for f in _TEMPLATE_FIELDS)]
                               for t in u.templates]},
        "calendar": [_event_row(e) for e in data.calendar],
        "rounds": [{"events": [_event_row(e) for e in r.events], "winner": r.winner, "scores": r.scores.tolist(),
                    "case": r.case} for r in data.rounds],
        "feats": data.feats.tolist(),
    }


def from_plain(obj: dict[str, Any], split: str) -> UserData:
    u = obj["user"]
    user = User(u["user_id"], u["name"], u["role"], u["org"], u["org_kind"], u["manager"], tuple(u["reports"]),
                dict(u["seniority"]), split=split)
    user.templates = [MeetingTemplate(t[0], t[1], t[2], t[3], tuple(t[4]), *t[5:]) for t in u["templates"]]
    user.weights = np.asarray(u["weights"], dtype=np.float64)
    rounds = [Round([_event(e) for e in r["events"]], int(r["winner"]), np.asarray(r["scores"], dtype=np.float64), r["case"])
              for r in obj["rounds"]]
    feats = np.asarray(obj["feats"], dtype=np.float32)
    return UserData(user, [_event(e) for e in obj["calendar"]], rounds, feats,
                    np.array([r.winner for r in rounds], dtype=np.int64))


# -- the cache ------------------------------------------------------------------------------------------
def load_user_data(seed: int, user_id: int, n_rounds: int = 104, n_events: int = 5, margin: float = 0.1,
                   split: str = "train", root: Path | None = None) -> UserData:
    """``make_user_data``'s result, read from the cache, or generated and then stored there."""
    key = {"seed": int(seed), "user_id": int(user_id), "n_rounds": int(n_rounds), "n_events": int(n_events),
           "margin": float(margin), "fingerprint": generator_fingerprint()}
    path = cache_file(seed, user_id, n_rounds, n_events, margin, root)
    try:
        obj = json.loads(path.read_text())
        if obj.get("key") == key:
            return from_plain(obj, split)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        pass  # missing, truncated or not ours: regenerate below
    data = make_user_data(seed, user_id, n_rounds, n_events, margin, split)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(to_plain(data, key), separators=(",", ":")))
    except OSError:
        pass  # a read-only or full cache costs speed, never correctness
    return data


def fill(n_users: int, seed: int = 0, n_rounds: int = 104, n_events: int = 5, margin: float = 0.1) -> int:
    """Generate (or check) every user of ``split_users(n_users, seed)`` into the cache; returns the count."""
    for uid in sorted(u for ids in split_users(n_users, seed).values() for u in ids):
        load_user_data(seed, uid, n_rounds, n_events, margin)
    return n_users


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Pre-generate CalendarConflict users into $SELFGYM_CACHE/calendar.")
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="the env's data_seed")
    p.add_argument("--rounds", type=int, default=104)
    p.add_argument("--events", type=int, default=5)
    p.add_argument("--margin", type=float, default=0.1)
    a = p.parse_args(argv)
    fill(a.users, a.seed, a.rounds, a.events, a.margin)
    print(f"cached {a.users} users in {cache_file(a.seed, 0, a.rounds, a.events, a.margin).parent}")


if __name__ == "__main__":
    main()
