"""CookingWorld-v0: valid commands against the true state, the oracle goals, seeding, splits, bad input."""

from __future__ import annotations

import copy
import random
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import selfgym  # noqa: F401  (registers the ids)
from selfgym.envs.cooking.env import CookingWorldEnv
from selfgym.envs.cooking.game import CANT, Game
from selfgym.envs.cooking.goals import atoms, grammar_goals, oracle_judge, oracle_relabel, oracle_reward, parse_goal
from selfgym.envs.cooking.world import DEVICE_STATE, DIRECTIONS, FOOD_KINDS, Layout, draw_layout

REPO = Path(__file__).resolve().parents[1]
INFO_VERBS = ("look", "inventory", "examine")


def _candidates(game: Game) -> list[str]:
    """Every command of the game's vocabulary, valid now or not."""
    things = list(game.things.values()) + list(game.doors.values())
    portable = [t for t in things if t.kind in ("food", "knife")]
    receptacles = [t for t in things if t.kind in ("container", "surface")]
    devices = [t for t in things if t.kind == "device"]
    out = ["look", "inventory"] + ["go " + d for d in DIRECTIONS]
    for t in things:
        out += [f"{verb} {t.name}" for verb in ("open", "close", "examine")]
    for t in portable:
        out += [f"{verb} {t.name}" for verb in ("take", "drop", "eat", "slice", "dice", "chop")]
        out += [f"put {t.name} {prep} {r.name}" for r in receptacles for prep in ("in", "on")]
        out += [f"cook {t.name} with {d.name}" for d in devices]
    return out


def _rollout(seed: int, steps: int, **kwargs) -> tuple[CookingWorldEnv, list[str], list[dict]]:
    env = CookingWorldEnv(**kwargs)
    _, info = env.reset(seed=seed)
    rng = random.Random(seed)
    commands, states = [], [env.true_state()]
    for _ in range(steps):
        command = rng.choice(info["valid_commands"])
        _, _, _, _, info = env.step(command)
        commands.append(command)
        states.append(env.true_state())
    return env, commands, states


ALL_VERBS = {"go", "take", "drop", "put", "open", "close", "slice", "dice", "chop", "cook", "eat", "look",
             "inventory", "examine"}


def _expected_valid(state: dict) -> set[str]:
    """The commands the rules allow, read off the true state dict alone (independent of game.py)."""
    here, objects = state["player"], state["objects"]
    out = {"look", "inventory"}
    for direction, other in state["rooms"][here]["exits"].items():
        door = next((d for d in state["doors"].values() if set(d["rooms"]) == {here, other}), None)
        if door is None or door["open"]:
            out.add(f"go {direction}")
    for name, door in state["doors"].items():
        if here in door["rooms"]:
            out |= {f"examine {name}", ("close " if door["open"] else "open ") + name}
    furniture = {n: e for n, e in objects.items() if e["kind"] in ("container", "surface", "device") and e["room"] == here}
    for name, entry in furniture.items():
        out.add(f"examine {name}")
        if entry["kind"] == "container":
            out.add(("close " if entry["open"] else "open ") + name)
    reachable = {n for n, e in furniture.items() if e["kind"] == "surface" or e.get("open")}
    carried = [n for n, e in objects.items() if e["location"] == "inventory"]
    for name, entry in objects.items():
        if entry["kind"] in ("food", "knife") and (entry["location"] == here or entry["location"] in reachable):
            out |= {f"take {name}", f"examine {name}"}
    for name in carried:
        out |= {f"drop {name}", f"examine {name}"}
        out |= {f"put {name} {'in' if objects[r]['kind'] == 'container' else 'on'} {r}" for r in reachable}
        if objects[name]["kind"] != "food":
            continue
        entry, kind = objects[name], FOOD_KINDS[name]
        if "knife" in carried and kind.cuttable and entry["cut"] is None:
            out |= {f"{verb} {name}" for verb in ("slice", "dice", "chop")}
        if kind.cookable and entry["cooked"] != "burned":
            out |= {f"cook {name} with {d}" for d, e in furniture.items() if e["kind"] == "device"}
        if kind.edible_raw and entry["cooked"] is None or entry["cooked"] in ("fried", "roasted", "grilled"):
            out.add(f"eat {name}")
    return out


def _check_commands_against_the_state(game: Game, valid: set[str], seen_verbs: set[str]) -> None:
    assert valid == _expected_valid(game.state())
    for command in _candidates(game):
        before = game.state()
        if command in valid:
            twin = copy.deepcopy(game)
            feedback, verb = twin.execute(command)
            seen_verbs.add(verb)
            assert feedback != CANT and feedback, command
            assert (twin.state() != before) == (verb not in INFO_VERBS), (command, feedback)
        else:
            feedback, verb = game.execute(command)
            assert (feedback, verb) == (CANT, "") and game.state() == before, command
            assert set(game.commands()) == valid, command


def test_valid_commands_are_exactly_those_that_change_the_state_or_inform() -> None:
    seen_verbs: set[str] = set()
    for seed in range(3):
        env = CookingWorldEnv(num_rooms=3, num_foods=4)
        _, info = env.reset(seed=seed)
        rng = random.Random(seed)
        for _ in range(30):
            valid = info["valid_commands"]
            assert valid == sorted(set(valid)) and np.array_equal(info["action_mask"], np.arange(env.max_commands) < len(valid))
            _check_commands_against_the_state(env.game, set(valid), seen_verbs)
            acting = [c for c in valid if c.split()[0] not in INFO_VERBS]  # mostly act, so that cooking happens
            _, _, _, _, info = env.step(rng.choice(acting if acting and rng.random() < 0.9 else valid))
    assert seen_verbs == ALL_VERBS


def _expected_goals(commands: list[str], states: list[dict]) -> set[str]:
    """The atomic goals each command must make true, derived from the commands alone."""
    out = set()
    for command, before, after in zip(commands, states, states[1:]):
        verb, _, rest = command.partition(" ")
        if verb == "go":
            out.add(f"go to the {after['player']}")
        elif verb in ("take", "drop", "open", "close"):
            out.add(f"{verb} the {rest}")
        elif verb == "put":
            item, prep, holder = rest.partition(" in ") if " in " in rest else rest.partition(" on ")
            out.add(f"put the {item}{prep}the {holder}")
        elif verb in ("slice", "dice", "chop"):
            out.add(f"{verb} the {rest}")
        elif verb == "cook":
            item, _, device = rest.partition(" with ")
            burned = before["objects"][item]["cooked"] is not None
            out.add(("burn" if burned else {"fried": "fry", "roasted": "roast", "grilled": "grill"}[
                DEVICE_STATE[device]]) + f" the {rest.partition(' with ')[0]}")
        elif verb == "eat":
            entry = before["objects"][rest]
            out.add(f"eat the {rest}")
            described = " ".join(x for x in (entry["cut"], entry["cooked"]) if x)
            if described:
                out.add(f"eat the {described} {rest}")
    return out


@pytest.mark.parametrize("seed", range(6))
def test_relabeler_reports_what_the_commands_did_and_nothing_else(seed: int) -> None:
    _, commands, states = _rollout(seed, 120, num_rooms=3, num_foods=3)
    relabelled = oracle_relabel(states)
    assert set(relabelled) == _expected_goals(commands, states)
    space = grammar_goals(states[0])  # the hand-coded goal space holds every atom (not the adjective forms)
    assert {g for g in relabelled if not (g.startswith("eat ") and len(parse_goal(g)[0].adjectives))} <= set(space)
    assert all(parse_goal(g) for g in space)
    for goal in relabelled:
        assert oracle_judge(goal, states).status == "achieved", goal
    for goal in atoms(states[0]) - set(relabelled):  # true from the start, never turned true
        assert oracle_judge(goal, states).status == "not_achieved", goal


def _kitchen(placement: dict[str, str]) -> Game:
    return Game(Layout(["kitchen"], {"kitchen": {}}, {}, {}, "kitchen", placement, [k for k in placement if k != "knife"]))


def test_relabeler_finds_the_slicing_and_nothing_that_did_not_happen() -> None:
    game = _kitchen({"carrot": "counter", "potato": "counter", "knife": "counter"})
    states = [game.state()]
    for command in ("take knife", "take carrot", "slice carrot with knife", "look", "examine carrot"):
        feedback, _ = game.execute(command)
        assert feedback != CANT, command
        states.append(game.state())
    assert set(oracle_relabel(states)) == {"take the knife", "take the carrot", "slice the carrot"}
    assert oracle_reward("slice the carrot", states) and oracle_reward("Slice the carrot and take the knife.", states)
    for goal in ("dice the carrot", "slice the potato", "eat the carrot", "fry the carrot", "go to the kitchen",
                 "slice the carrot and eat the sliced carrot"):
        assert not oracle_reward(goal, states), goal


def test_cooking_burning_eating_and_adjectives() -> None:
    game = _kitchen({"potato": "fridge", "knife": "counter"})
    states = [game.state()]
    assert game.execute("eat potato")[0] == CANT  # not in hand, and raw potato is inedible
    for command in ("open fridge", "take potato", "cook potato with stove"):
        assert game.execute(command)[0] != CANT
        states.append(game.state())
    assert "eat potato" in game.commands() and oracle_reward("fry the potato", states)
    assert oracle_reward("cook the potato", states) and not oracle_reward("roast the potato", states)
    game.execute("eat potato")
    states.append(game.state())
    assert oracle_reward("eat the fried potato", states) and not oracle_reward("eat the raw potato", states)
    game2 = _kitchen({"potato": "counter"})
    for command in ("take potato", "cook potato with oven", "cook potato with stove"):
        game2.execute(command)
    assert game2.things["potato"].cooked == "burned" and "eat potato" not in game2.commands()
    assert not any(c.startswith("cook potato") for c in game2.commands())


def test_goals_outside_the_grammar_or_the_layout_are_reported_as_such() -> None:
    _, _, states = _rollout(0, 10, num_rooms=2, num_foods=2)
    assert oracle_judge("juggle three apples", states).status == "outside_grammar"
    assert "verb" in oracle_judge("juggle three apples", states).reason
    assert oracle_judge("put the apple in the moon", states).status == "outside_grammar"
    absent = next(r for r in ("garden", "backyard", "pantry") if r not in states[0]["rooms"])
    verdict = oracle_judge(f"go to the {absent}", states)
    assert verdict.status == "unknown_in_layout" and absent in verdict.reason
    assert [c.verb for c in parse_goal("slice the carrot, fry the potato and go to the garden")] == ["cut", "cook", "go"]


def test_reset_seed_makes_the_episode_reproducible() -> None:
    def run(seed: int) -> list:
        env = CookingWorldEnv()
        obs, info = env.reset(seed=seed)
        out = [obs[0]]
        rng = np.random.default_rng(0)
        for _ in range(30):
            obs, _, _, _, info = env.step(int(rng.integers(len(info["valid_commands"]))))
            out += [obs[0], info["valid_commands"], env.true_state()]
        return out

    assert run(7) == run(7)
    assert run(7)[0:2] != run(8)[0:2] or run(7) != run(8)


def test_train_and_test_layouts_are_disjoint() -> None:
    for rooms, foods in ((1, 1), (4, 5)):  # (1, 1): a small layout space, where draws collide often
        train = {draw_layout(s, "train", rooms, foods, True, 0.2).signature() for s in range(300)}
        test = {draw_layout(s, "test", rooms, foods, True, 0.2).signature() for s in range(300)}
        assert train and test and not train & test
    env = CookingWorldEnv(split="test")
    env.reset(seed=0)
    assert env.game.layout.split(env.test_fraction) == "test"


def test_env_checker_passes_for_other_settings() -> None:
    env = gym.make("selfgym/CookingWorld-v0", num_rooms=1, num_foods=2, doors=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


@pytest.mark.parametrize("action", ["fly away", "", "take unicorn", "x" * 5000, 10_000, -1, 2.5, None,
                                    np.array([3.0]), "open fridge and eat everything"])
def test_bad_commands_get_feedback_and_change_nothing(action) -> None:
    env = CookingWorldEnv()
    env.reset(seed=0)
    before, valid = env.true_state(), env.valid_commands()
    obs, reward, terminated, truncated, info = env.step(action)
    assert info["feedback"] == CANT and info["command"] == "" and obs[0].startswith(CANT)
    assert env.true_state() == before and info["valid_commands"] == valid
    assert (reward, terminated, truncated) == (0.0, False, False)


def test_text_aliases_and_index_actions_reach_the_same_command() -> None:
    game = _kitchen({"carrot": "fridge", "knife": "counter"})
    assert game.execute("Pick up the knife.")[1] == "take"
    game.execute("open the fridge")
    assert game.execute("take the carrot from the fridge")[1] == "take"
    assert game.execute("slice the carrot with the knife")[1] == "slice"
    env = CookingWorldEnv()
    _, info = env.reset(seed=3)
    index = info["valid_commands"].index("look")
    _, _, _, _, info = env.step(np.int64(index))
    assert info["command"] == "look"
    with pytest.raises(ValueError, match="split must be one of"):
        CookingWorldEnv(split="valid")
    with pytest.raises(ValueError, match="num_rooms must be in 1..10, got 0"):
        CookingWorldEnv(num_rooms=0)


def test_textworld_express_side_of_the_benchmark_runs() -> None:
    if shutil.which("java") is None:
        pytest.skip("no `java` on PATH: TextWorldExpress needs a Java runtime (Debian: default-jre-headless)")
    pytest.importorskip("textworld_express", reason="textworld-express is not installed (pip install 'selfgym[textworld]')")
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cooking_speed.py"), "--rounds", "1",
                             "--steps", "300", "--no-save"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "textworld_express" in result.stdout and "selfgym" in result.stdout


def test_num_layouts_cycles_through_a_fixed_set_of_games() -> None:
    env = CookingWorldEnv(num_layouts=2)
    env.reset(seed=0)
    signatures = set()
    for _ in range(20):
        env.reset()
        signatures.add(env.game.layout.signature())
    assert len(signatures) == 2
    assert signatures == {draw_layout(k, "train", 4, 5, True, 0.2).signature() for k in (0, 1)}
    with pytest.raises(ValueError, match="num_layouts must be >= 0"):
        CookingWorldEnv(num_layouts=-1)
