"""CookingWorld-v0: a task-agnostic cooking text world for autotelic agents (LMA3).

No recipe, no score, no failure: reward is always 0.0 and an episode only ends by the time
limit (``max_episode_steps`` of the registration). What to do is for the agent to choose;
``true_state()`` and the oracle goal checks in goals.py say what it did.

Observation: text (a ``BatchableText``, returned as a (1,) object array, see
envs/text/spaces.py): the feedback of the last command, the room (furniture, what is on or in
it, the floor, exits and doors) and the inventory.
Action: an index into ``info["valid_commands"]`` (the ``Discrete(max_commands)`` space;
``info["action_mask"]`` marks the valid indices) or a text command. An index past the valid
list, an unknown or impossible command, or text longer than ``max_command_length``, gets
"You can't do that." and changes nothing; never an exception.

Arguments:
    num_rooms: rooms in a layout (1..10; the kitchen always, a garden or backyard second).
    num_foods: foods in a layout (1..17).
    doors: whether connections may have doors (each one with probability 1/2, most closed).
    split: "train" or "test"; the two serve disjoint layouts (see world.py).
    test_fraction: the share of all layouts that belongs to the test split.
    num_layouts: 0 draws a fresh layout at every reset; N > 0 cycles at random through the split's
        first N layouts (layout seeds 0..N-1), a fixed set of games as in TextWorld's benchmarks.
    max_command_length: longest text command read.
    state_in_info: also put ``true_state()`` in ``info["state"]`` every step (about 20 us a step):
        for agents behind a VecEnv, whose auto-reset hides the last state of an episode.
    render_mode: None, "ansi" (the observation text).

``info`` also holds ``feedback`` (the command's answer) and ``command`` (the canonical command
run, "" when none ran). ``reset(options={"layout_seed": k})`` serves the split's k-th layout
(the same k gives the same layout); by default the layout comes from the episode RNG.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from selfgym.envs.cooking.game import CANT, Game
from selfgym.envs.cooking.world import FOODS, ROOMS, SPLITS, draw_layout
from selfgym.envs.text.spaces import BatchableText, as_text, text_obs

MAX_OBSERVATION_CHARS = 4096


def max_valid_commands(num_rooms: int, num_foods: int) -> int:
    """An upper bound on the valid commands in any state of any layout of this size."""
    furniture = max(len(f) for f in ROOMS.values())
    receptacles = max(sum(k != "device" for _, k in f) for f in ROOMS.values())
    devices = max(sum(k == "device" for _, k in f) for f in ROOMS.values())
    portable = num_foods + 1  # foods and the knife
    per_item = 3 + receptacles + 3 + devices + 1  # take/drop/examine, put, cut verbs, cook, eat
    return 2 + 4 * 3 + furniture * 2 + portable * per_item


class CookingWorldEnv(gym.Env):
    metadata = {"render_modes": ["ansi"], "render_fps": 2}

    def __init__(self, num_rooms: int = 4, num_foods: int = 5, doors: bool = True, split: str = "train",
                 test_fraction: float = 0.2, num_layouts: int = 0, max_command_length: int = 200,
                 state_in_info: bool = False,
                 render_mode: str | None = None) -> None:
        if not 1 <= int(num_rooms) <= len(ROOMS):
            raise ValueError(f"num_rooms must be in 1..{len(ROOMS)}, got {num_rooms}")
        if not 1 <= int(num_foods) <= len(FOODS):
            raise ValueError(f"num_foods must be in 1..{len(FOODS)}, got {num_foods}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not 0.0 < float(test_fraction) < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        if int(num_layouts) < 0:
            raise ValueError(f"num_layouts must be >= 0 (0: a fresh layout every reset), got {num_layouts}")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.num_rooms, self.num_foods, self.doors = int(num_rooms), int(num_foods), bool(doors)
        self.split, self.test_fraction, self.num_layouts = split, float(test_fraction), int(num_layouts)
        self.max_command_length, self.render_mode = int(max_command_length), render_mode
        self.state_in_info = bool(state_in_info)
        self.max_commands = max_valid_commands(self.num_rooms, self.num_foods)
        self.action_space = gym.spaces.Discrete(self.max_commands)
        self.observation_space = BatchableText(MAX_OBSERVATION_CHARS, shape=(1,))
        self.game: Game | None = None
        self._text = ""
        self._mask = np.zeros(self.max_commands, dtype=np.int8)

    # -- gym API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"layout_seed"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; valid: ['layout_seed']")
        if "layout_seed" in options:
            layout_seed = int(options["layout_seed"])
        else:
            layout_seed = int(self.np_random.integers(0, self.num_layouts or 2**31 - 1))
        layout = draw_layout(layout_seed, self.split, self.num_rooms, self.num_foods, self.doors, self.test_fraction)
        self.game = Game(layout)
        self.layout_seed = layout_seed
        intro = "You are hungry! Let's cook something, or not: it is up to you."
        obs, _, _, _, info = self._result(intro, "", "")
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.game is None:
            raise RuntimeError("CookingWorldEnv: call reset() before step()")
        command = self.command_of(action)
        if command is None:
            return self._result(CANT, "", "")
        feedback, verb = self.game.execute(command)
        return self._result(feedback, verb, command if verb else "")

    def command_of(self, action: Any) -> str | None:
        """The text of an action: a valid-list index, a numpy int, or a text command (None: unreadable)."""
        action = as_text(action)
        if isinstance(action, str):
            return action if len(action) <= self.max_command_length else None
        if isinstance(action, np.ndarray) and action.size == 1:
            action = action.reshape(-1)[0]
        if isinstance(action, (int, np.integer)) and not isinstance(action, bool):
            valid = self.game.commands()
            return valid[int(action)] if 0 <= int(action) < len(valid) else None
        return None

    def _result(self, feedback: str, verb: str, command: str) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        game = self.game
        valid = game.commands()
        mask = self._mask.copy()
        mask[: len(valid)] = 1
        self._text = game.observation(feedback, verb)[:MAX_OBSERVATION_CHARS]
        info = {"valid_commands": valid, "action_mask": mask, "feedback": feedback, "command": command}
        if self.state_in_info:
            info["state"] = game.state()
        return text_obs(self._text), 0.0, False, False, info

    # -- for oracles, evaluation and agents --------------------------------------------------
    def true_state(self) -> dict[str, Any]:
        """The structured true state (see ``Game.state``)."""
        if self.game is None:
            raise RuntimeError("CookingWorldEnv: call reset() before true_state()")
        return self.game.state()

    def valid_commands(self) -> list[str]:
        if self.game is None:
            raise RuntimeError("CookingWorldEnv: call reset() before valid_commands()")
        return list(self.game.commands())

    def render(self) -> str | None:
        return self._text if self.render_mode == "ansi" else None
