"""The compact text observation of CalendarConflict-v0: the same information as the verbose
prompt in fewer characters, selected by ``text_style``; verbose stays the default."""

from __future__ import annotations

import pytest
from gymnasium.utils.env_checker import check_env

from selfgym.envs.calendar.env import CalendarConflictEnv
from selfgym.envs.text.spaces import as_text

SMALL = dict(n_users=20, n_rounds=8, obs_mode="text")


def play(env: CalendarConflictEnv, rounds: int) -> str:
    obs, _ = env.reset(seed=3)
    for _ in range(rounds):
        obs, *_ = env.step('{"selected_event_to_accept": 0}')
    obs, *_ = env.step('{"action": "update", "strategies": ["Deadlines beat syncs."]}')
    return as_text(obs)


def test_compact_shows_every_event_attribute_in_fewer_characters():
    verbose, compact = CalendarConflictEnv(**SMALL), CalendarConflictEnv(text_style="compact", **SMALL)
    v, c = play(verbose, 3), play(compact, 3)
    assert len(c) < 0.75 * len(v)
    events, user = compact.data.rounds[3].events, compact.data.user
    lines = [ln for ln in c.splitlines() if ln[:2] in {f"{i} " for i in range(5)} and "|" in ln and "booked" in ln]
    assert len(lines) == 5
    for i, (ev, line) in enumerate(zip(events, lines)):
        assert line.startswith(f"{i} {ev.title}|{ev.kind}|") and f"{ev.duration}m" in line and ev.location in line
        assert ("deadline" in line.split("|")) == ev.deadline and ("external" in line.split("|")) == ev.external
        for person in ev.attendees:
            assert person == user.name or person in line
    assert "Round 4/8" in c and "Deadlines beat syncs." in c and "Tool: stored 1 strategies" in c
    # the feedback of the 3 past rounds: what was chosen (0) and what the user wanted
    winners = [int(w) for w in compact.data.winners[:3]]
    for w in winners:
        assert f"0>{w} {'ok' if w == 0 else 'x'}" in c
    assert '"selected_event_to_accept":id' in c and '{"action":"list"}' in c


def test_compact_text_style_passes_the_env_checker_and_parses_like_verbose():
    env = CalendarConflictEnv(text_style="compact", **SMALL)
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    w = int(env.data.winners[0])
    _, reward, _, _, info = env.step('{"selected_event_to_accept": %d}' % w)
    assert info["is_success"] and reward == 1.0


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(obs_mode="text", text_style="short"), "text_style must be one of ('verbose', 'compact'), got 'short'"),
    (dict(obs_mode="structured", text_style="compact"), "needs obs_mode='text'"),
])
def test_bad_text_style_is_refused_naming_the_valid_ones(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        CalendarConflictEnv(n_users=20, **kwargs)
