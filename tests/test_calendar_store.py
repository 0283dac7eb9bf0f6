"""The on-disk cache of generated CalendarConflict users (envs/calendar/store.py): users read back
are exactly the generator's, the generator's output is pinned by hashes, bad files are rebuilt."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from selfgym.envs.calendar import store
from selfgym.envs.calendar.env import CalendarConflictEnv
from selfgym.envs.calendar.generate import UserData, make_user_data

#: SHA-256 of users made by the generator of commit 4b540d9 (before the cache): (seed, user, N) -> hash.
GOLDEN = {
    (0, 0, 104): "4626a7b0cd9958a01d016568a5062cbe4f5dada1433bb4c2784c9f6429d2539e",
    (3, 57, 12): "04a597aa117c3601f622af79c66524da27863144a5b11426c6931d8b9162810f",
}


def digest(d: UserData) -> str:
    h = hashlib.sha256(json.dumps(d.to_json(), sort_keys=True).encode())
    for arr in [d.feats, d.winners, d.user.weights] + [r.scores for r in d.rounds]:
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFGYM_CACHE", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_generated_users_are_unchanged(key):
    seed, uid, n = key
    assert digest(make_user_data(seed, uid, n)) == GOLDEN[key]


def test_cached_user_is_exactly_the_generated_one_and_is_read_without_generating(cache, monkeypatch):
    fresh = make_user_data(3, 57, 12, split="test")
    first = store.load_user_data(3, 57, 12, split="test")  # generates and writes
    path = store.cache_file(3, 57, 12, 5, 0.1)
    assert path.is_file() and path.is_relative_to(cache / "calendar" / store.generator_fingerprint())
    monkeypatch.setattr(store, "make_user_data", lambda *a, **k: pytest.fail("generated again"))
    again = store.load_user_data(3, 57, 12, split="test")
    assert digest(first) == digest(again) == digest(fresh) and again.user.split == "test"
    assert again.user.seniority == fresh.user.seniority and again.user.templates == fresh.user.templates
    assert again.calendar == fresh.calendar and [r.events for r in again.rounds] == [r.events for r in fresh.rounds]


@pytest.mark.parametrize("damage", ["truncate", "other_key"])
def test_a_bad_cache_file_is_regenerated(cache, damage):
    good = digest(store.load_user_data(3, 57, 12))
    path = store.cache_file(3, 57, 12, 5, 0.1)
    if damage == "truncate":
        path.write_text(path.read_text()[:1000])
    else:
        obj = json.loads(path.read_text())
        obj["key"]["user_id"] = 56
        path.write_text(json.dumps(obj))
    assert digest(store.load_user_data(3, 57, 12)) == good
    assert json.loads(path.read_text())["key"]["user_id"] == 57  # rewritten


def test_unwritable_cache_still_gives_the_user(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SELFGYM_CACHE", str(blocker))
    assert digest(store.load_user_data(3, 57, 12)) == digest(make_user_data(3, 57, 12))


def test_env_with_and_without_disk_cache_plays_the_same_users(cache):
    a = CalendarConflictEnv(n_users=20, n_rounds=6)
    b = CalendarConflictEnv(n_users=20, n_rounds=6, disk_cache=False)
    oa, _ = a.reset(seed=4)
    ob, _ = b.reset(seed=4)
    assert np.array_equal(oa, ob) and np.array_equal(a.data.winners, b.data.winners)
    assert any((cache / "calendar").rglob("user_*.json"))
