"""CalendarConflict generator: determinism, unique winners, Cases A/B, disjoint splits, JSONL."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selfgym.envs.calendar import generate as gen
from selfgym.envs.calendar.schema import N_FEATURES, ROLES, predicates


def test_same_seed_same_data_and_order_independent():
    a = gen.make_user_data(3, 5, n_rounds=12)
    gen.make_user_data(3, 4, n_rounds=12)  # generating another user first changes nothing
    b = gen.make_user_data(3, 5, n_rounds=12)
    assert json.dumps(a.to_json()) == json.dumps(b.to_json())
    np.testing.assert_array_equal(a.feats, b.feats)
    c = gen.make_user_data(4, 5, n_rounds=12)
    assert json.dumps(a.to_json()) != json.dumps(c.to_json())


@pytest.mark.parametrize("user_id", [0, 1, 3, 7, 14, 17])  # PI, postdoc, PhD, undergrad, CEO/HR/engineer
def test_every_conflict_has_a_unique_winner_that_overlaps(user_id):
    margin = 0.1
    data = gen.make_user_data(0, user_id, n_rounds=40, n_events=5, margin=margin)
    assert data.feats.shape == (40, 5, N_FEATURES)
    for r in data.rounds:
        scores = np.array([predicates(e, data.user) @ data.user.weights for e in r.events])
        np.testing.assert_allclose(scores, r.scores)
        others = np.delete(scores, r.winner)
        assert scores[r.winner] >= others.max() + margin - 1e-9
        start = max(e.start for e in r.events)
        end = min(e.end for e in r.events)
        assert end > start, "all events of a conflict overlap a common interval"
    assert {r.case for r in data.rounds} == {"A", "B"}
    assert 0 < np.mean(data.winners == 0) < 0.6  # the winner's position is shuffled


def test_users_cover_roles_and_have_hidden_principles():
    users = [gen.make_user(0, u) for u in range(20)]
    assert {u.role for u in users} == set(ROLES)
    for u in users:
        assert (u.weights > 0).sum() >= 3 and u.weights.max() == pytest.approx(1.0)
        assert all(p["weight"] > 0 for p in u.principles())
    assert gen.make_user(0, 0).org_kind == "lab" and gen.make_user(0, 10).org_kind == "company"


def test_year_calendar_spans_52_weeks():
    data = gen.make_user_data(0, 2, n_rounds=8)
    weeks = {e.start // gen.WEEK for e in data.calendar}
    assert weeks == set(range(52))
    assert any(e.recurring for e in data.calendar) and any(not e.recurring for e in data.calendar)


def test_splits_are_disjoint_and_complete():
    s = gen.split_users(100, 0)
    ids = s["train"] + s["validation"] + s["test"]
    assert sorted(ids) == list(range(100))
    assert len(s["train"]) == 70 and len(s["validation"]) == 15 and len(s["test"]) == 15
    assert s == gen.split_users(100, 0) and s != gen.split_users(100, 1)
    with pytest.raises(ValueError, match="at least 3 users"):
        gen.split_users(2, 0)


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="n_events"):
        gen.make_user_data(0, 0, n_events=1)
    with pytest.raises(ValueError, match="n_rounds"):
        gen.make_user_data(0, 0, n_rounds=0)


def test_jsonl_cli(tmp_path):
    out = tmp_path / "data.jsonl"
    gen.main(["--users", "4", "--rounds", "6", "--events", "4", "--out", str(out), "--no-calendar"])
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 4
    assert {x["split"] for x in lines} <= {"train", "validation", "test"}
    first = lines[0]
    assert len(first["rounds"]) == 6 and len(first["rounds"][0]["events"]) == 4
    assert "calendar" not in first and first["principles"]
    r = first["rounds"][0]
    assert r["winner"] == int(np.argmax(r["scores"]))
