"""CookingWorld's rules: the state of one game, its valid commands, their effects and the text.

A command is valid exactly when it changes the state (go, take, drop, put, open, close, slice,
dice, chop, cook, eat) or gives information (look, inventory, examine of something in sight).
``commands()`` lists the valid ones as canonical strings; ``execute(text)`` runs one of them,
or answers "You can't do that." and changes nothing for anything else. Text is normalised
first (case, articles, a few synonyms: "pick up the carrot", "take carrot from fridge",
"slice carrot with knife", "x fridge", "n").

Speed: the valid list is cached in two parts, the room's (exits, doors, furniture, what lies
in sight) and the inventory's (what can be done with each carried item), each rebuilt only
when a command touched it; the room and inventory texts are cached the same way.
"""

from __future__ import annotations

import re
from typing import Any

from selfgym.envs.cooking.world import DEVICE_STATE, FOOD_KINDS, KNIFE, ROOMS, Layout

CANT = "You can't do that."
CUT_STATE = {"slice": "sliced", "dice": "diced", "chop": "chopped"}
_ARTICLES = re.compile(r"\b(the|a|an|some)\b")
_SPACES = re.compile(r"\s+")
_SHORT = {"l": "look", "look around": "look", "i": "inventory", "inv": "inventory", "n": "go north",
          "s": "go south", "e": "go east", "w": "go west", "north": "go north", "south": "go south",
          "east": "go east", "west": "go west"}
_PREFIX = (("pick up ", "take "), ("get ", "take "), ("x ", "examine "), ("look at ", "examine "),
           ("insert ", "put "), ("move ", "go "))


class Thing:
    """One object; ``holder`` is a room, a receptacle, "inventory" or "eaten"."""

    __slots__ = ("name", "kind", "holder", "is_open", "cut", "cooked")

    def __init__(self, name: str, kind: str, holder: str = "", is_open: bool = False) -> None:
        self.name, self.kind, self.holder, self.is_open = name, kind, holder, is_open
        self.cut: str | None = None
        self.cooked: str | None = None

    def label(self) -> str:
        """The name with its state: "sliced fried carrot"."""
        return " ".join(x for x in (self.cut, self.cooked, self.name) if x)

    def edible(self) -> bool:
        if self.kind != "food":
            return False
        if self.cooked == "burned":
            return False
        return FOOD_KINDS[self.name].edible_raw or self.cooked is not None


def _a(text: str) -> str:
    return ("an " if text[0] in "aeiou" else "a ") + text


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class Game:
    """One CookingWorld game, built from a ``Layout``."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.room = layout.start_room
        self.things: dict[str, Thing] = {}
        self.fixed: dict[str, list[Thing]] = {}  # room -> its furniture, in catalogue order
        for room in layout.rooms:
            self.fixed[room] = []
            for name, kind in ROOMS[room]:
                thing = Thing(name, kind, room)
                self.things[name] = thing
                self.fixed[room].append(thing)
        self.doors: dict[str, Thing] = {n: Thing(n, "door", "", layout.door_open[n]) for n in layout.doors}
        self.door_between = {frozenset(rs): n for n, rs in layout.doors.items()}
        self.contents: dict[str, list[Thing]] = {h: [] for h in (*layout.rooms, *self.things, "inventory", "eaten")}
        for name, holder in layout.placement.items():
            thing = Thing(name, "knife" if name == KNIFE else "food", holder)
            self.things[name] = thing
            self.contents[holder].append(thing)
        self._room_cache: dict[str, tuple[str, Any]] | None = None
        self._inv_cache: dict[str, tuple[str, Any]] | None = None
        self._valid: list[str] | None = None
        self._table: dict[str, tuple[str, Any]] = {}
        self._room_text: str | None = None  # describe_room / describe_inventory, cached like the commands
        self._inventory_text: str | None = None

    # -- what is in sight ----------------------------------------------------------------
    def room_of(self, thing: Thing) -> str | None:
        holder = thing.holder
        if holder in self.contents and holder in self.fixed:
            return holder
        if holder in ("inventory", "eaten"):
            return None
        return self.things[holder].holder

    def _in_sight(self) -> list[Thing]:
        """Portable things the player can see and take: on the floor, on surfaces, in open containers."""
        out = list(self.contents[self.room])
        for furniture in self.fixed[self.room]:
            if furniture.kind == "surface" or (furniture.kind == "container" and furniture.is_open):
                out += self.contents[furniture.name]
        return out

    def _door(self, other: str) -> Thing | None:
        name = self.door_between.get(frozenset((self.room, other)))
        return self.doors[name] if name else None

    # -- valid commands ------------------------------------------------------------------
    def _room_commands(self) -> dict[str, tuple[str, Any]]:
        table: dict[str, tuple[str, Any]] = {"look": ("look", None), "inventory": ("inventory", None)}
        for direction, other in self.layout.exits[self.room].items():
            door = self._door(other)
            if door is None or door.is_open:
                table["go " + direction] = ("go", other)
            if door is not None:
                table[("close " if door.is_open else "open ") + door.name] = ("close" if door.is_open else "open", door)
                table["examine " + door.name] = ("examine", door)
        for furniture in self.fixed[self.room]:
            table["examine " + furniture.name] = ("examine", furniture)
            if furniture.kind == "container":
                verb = "close" if furniture.is_open else "open"
                table[f"{verb} {furniture.name}"] = (verb, furniture)
        for thing in self._in_sight():
            table["take " + thing.name] = ("take", thing)
            table["examine " + thing.name] = ("examine", thing)
        return table

    def _inventory_commands(self) -> dict[str, tuple[str, Any]]:
        table: dict[str, tuple[str, Any]] = {}
        carried = self.contents["inventory"]
        has_knife = self.things.get(KNIFE) in carried
        receptacles = [f for f in self.fixed[self.room]
                       if f.kind == "surface" or (f.kind == "container" and f.is_open)]
        devices = [f for f in self.fixed[self.room] if f.kind == "device"]
        for thing in carried:
            name = thing.name
            table["drop " + name] = ("drop", thing)
            table["examine " + name] = ("examine", thing)
            for rec in receptacles:
                table[f"put {name} {'in' if rec.kind == 'container' else 'on'} {rec.name}"] = ("put", (thing, rec))
            if thing.kind != "food":
                continue
            kind = FOOD_KINDS[name]
            if has_knife and kind.cuttable and thing.cut is None:
                for verb in CUT_STATE:
                    table[f"{verb} {name}"] = (verb, thing)
            if kind.cookable and thing.cooked != "burned":
                for device in devices:
                    table[f"cook {name} with {device.name}"] = ("cook", (thing, device))
            if thing.edible():
                table["eat " + name] = ("eat", thing)
        return table

    def commands(self) -> list[str]:
        """The valid commands now, sorted."""
        if self._valid is None:
            if self._room_cache is None:
                self._room_cache = self._room_commands()
            if self._inv_cache is None:
                self._inv_cache = self._inventory_commands()
            self._table = {**self._room_cache, **self._inv_cache}
            self._valid = sorted(self._table)
        return self._valid

    def _touched(self, room: bool = True, inventory: bool = True) -> None:
        self._valid = None
        if room:
            self._room_cache = self._room_text = None
        if inventory:
            self._inv_cache = self._inventory_text = None

    # -- effects -------------------------------------------------------------------------
    def _move(self, thing: Thing, holder: str) -> None:
        self.contents[thing.holder].remove(thing)
        thing.holder = holder
        self.contents[holder].append(thing)

    def execute(self, command: str) -> tuple[str, str]:
        """(feedback, verb) of a text command; an invalid one changes nothing and gives CANT."""
        self.commands()
        entry = self._table.get(command)
        if entry is None:
            entry = self._table.get(normalise(command, self))
        if entry is None:
            return CANT, ""
        verb, arg = entry
        return getattr(self, "_do_" + verb, self._do_cut)(arg, verb), verb

    def _do_look(self, _: Any, __: str) -> str:
        return self.describe_room()

    def _do_inventory(self, _: Any, __: str) -> str:
        return self.describe_inventory()

    def _do_examine(self, thing: Thing, _: str) -> str:
        if thing.kind == "door":
            return f"The {thing.name} is {'open' if thing.is_open else 'closed'}."
        if thing.kind in ("container", "surface"):
            inside = [_a(t.label()) for t in self.contents[thing.name]]
            if thing.kind == "container" and not thing.is_open:
                return f"The {thing.name} is closed."
            where = "In" if thing.kind == "container" else "On"
            return f"{where} the {thing.name}: {_listing(inside)}." if inside else f"The {thing.name} is empty."
        if thing.kind == "device":
            return f"{_a(thing.name).capitalize()}: cook food with it to make it {DEVICE_STATE[thing.name]}."
        if thing.kind == "knife":
            return "A sharp knife: hold it to slice, dice or chop food."
        kind = FOOD_KINDS[thing.name]
        facts = [f"The {thing.label()} is {'edible' if thing.edible() else 'not edible'}"]
        if kind.cuttable and thing.cut is None:
            facts.append("it can be cut")
        if kind.cookable and thing.cooked is None:
            facts.append("it can be cooked")
        return ", ".join(facts) + "."

    def _do_go(self, other: str, _: str) -> str:
        self.room = other
        self._touched()  # the inventory's put / cook commands depend on the room too
        return f"You go to the {other}."

    def _do_open(self, thing: Thing, _: str) -> str:
        thing.is_open = True
        self._touched()
        if thing.kind == "container":
            inside = [_a(t.label()) for t in self.contents[thing.name]]
            return f"You open the {thing.name}." + (f" It contains {_listing(inside)}." if inside else " It is empty.")
        return f"You open the {thing.name}."

    def _do_close(self, thing: Thing, _: str) -> str:
        thing.is_open = False
        self._touched()
        return f"You close the {thing.name}."

    def _do_take(self, thing: Thing, _: str) -> str:
        self._move(thing, "inventory")
        self._touched()
        return f"You take the {thing.label()}."

    def _do_drop(self, thing: Thing, _: str) -> str:
        self._move(thing, self.room)
        self._touched()
        return f"You drop the {thing.label()} on the floor."

    def _do_put(self, arg: tuple[Thing, Thing], _: str) -> str:
        thing, rec = arg
        self._move(thing, rec.name)
        self._touched()
        return f"You put the {thing.label()} {'in' if rec.kind == 'container' else 'on'} the {rec.name}."

    def _do_cut(self, thing: Thing, verb: str) -> str:
        thing.cut = CUT_STATE[verb]
        self._touched(room=False)
        return f"You {verb} the {thing.name}."

    def _do_cook(self, arg: tuple[Thing, Thing], _: str) -> str:
        thing, device = arg
        before = thing.label()
        thing.cooked = "burned" if thing.cooked else DEVICE_STATE[device.name]
        self._touched(room=False)
        if thing.cooked == "burned":
            return f"You cook the {before} with the {device.name} again: it burns."
        return f"You cook the {before} with the {device.name}: it is {thing.cooked} now."

    def _do_eat(self, thing: Thing, _: str) -> str:
        label = thing.label()
        self._move(thing, "eaten")
        self._touched(room=False)
        return f"You eat the {label}. Delicious."

    # -- text ----------------------------------------------------------------------------
    def describe_room(self) -> str:
        if self._room_text is None:
            self._room_text = self._describe_room()
        return self._room_text

    def _describe_room(self) -> str:
        parts = []
        for furniture in self.fixed[self.room]:
            if furniture.kind == "container":
                inside = [_a(t.label()) for t in self.contents[furniture.name]]
                if not furniture.is_open:
                    parts.append(f"{_a(furniture.name)} (closed)")
                else:
                    parts.append(f"{_a(furniture.name)} (open, {'holding ' + _listing(inside) if inside else 'empty'})")
            elif furniture.kind == "surface":
                on = [_a(t.label()) for t in self.contents[furniture.name]]
                parts.append(_a(furniture.name) + (f" (with {_listing(on)} on it)" if on else ""))
            else:
                parts.append(_a(furniture.name))
        lines = [f"-= {self.room.title()} =-"]
        lines.append(f"You see {_listing(parts)}." if parts else "The room is bare.")
        floor = [_a(t.label()) for t in self.contents[self.room]]
        if floor:
            lines.append(f"On the floor: {_listing(floor)}.")
        exits = []
        for direction, other in self.layout.exits[self.room].items():
            door = self._door(other)
            through = f", through the {'open' if door.is_open else 'closed'} {door.name}" if door else ""
            exits.append(f"{direction} to the {other}{through}")
        lines.append("Exits: " + ("; ".join(exits) if exits else "none") + ".")
        return "\n".join(lines)

    def describe_inventory(self) -> str:
        if self._inventory_text is None:
            carried = [_a(t.label()) for t in self.contents["inventory"]]
            self._inventory_text = f"You are carrying {_listing(carried)}." if carried else "You are carrying nothing."
        return self._inventory_text

    def observation(self, feedback: str, verb: str) -> str:
        blocks = [feedback]
        if verb != "look":
            blocks.append(self.describe_room())
        if verb != "inventory":
            blocks.append(self.describe_inventory())
        return "\n\n".join(blocks)

    # -- the true state --------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The structured true state (plain data): what oracle goal checks and evaluation read."""
        objects: dict[str, dict[str, Any]] = {}
        for name, thing in self.things.items():
            entry: dict[str, Any] = {"kind": thing.kind, "location": thing.holder, "room": self.room_of(thing)}
            if thing.kind == "container":
                entry["open"] = thing.is_open
            if thing.kind == "food":
                entry.update(cut=thing.cut, cooked=thing.cooked, edible=thing.edible(), eaten=thing.holder == "eaten")
            objects[name] = entry
        return {
            "player": self.room,
            "inventory": [t.name for t in self.contents["inventory"]],
            "objects": objects,
            "doors": {n: {"rooms": list(self.layout.doors[n]), "open": d.is_open} for n, d in self.doors.items()},
            "rooms": {r: {"exits": dict(self.layout.exits[r])} for r in self.layout.rooms},
        }


def normalise(command: str, game: Game | None = None) -> str:
    """Lower case, no articles or extra spaces, common synonyms mapped to the canonical verbs."""
    text = _SPACES.sub(" ", _ARTICLES.sub(" ", command.lower().strip().rstrip(".!"))).strip()
    text = _SHORT.get(text, text)
    for prefix, canonical in _PREFIX:
        if text.startswith(prefix):
            text = canonical + text[len(prefix):]
    if text.startswith("take ") and " from " in text and game is not None:
        item, _, holder = text[5:].partition(" from ")
        thing = game.things.get(item)
        text = "take " + item if thing is not None and thing.holder == holder else text
    for verb in CUT_STATE:
        if text.startswith(verb + " ") and text.endswith(" with knife"):
            text = text[: -len(" with knife")]
    if text.startswith("put ") and " into " in text:
        text = text.replace(" into ", " in ", 1)
    return text
