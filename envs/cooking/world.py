"""CookingWorld's catalogue and its seeded layout generator (no game rules here: see game.py).

The design follows TextWorld's cooking games and TextWorldExpress's CookingWorld, without the
recipe: a kitchen (fridge, cupboard, counter, stove, oven), a garden or backyard (barbecue),
and other rooms drawn from a fixed list, joined as a random tree on a compass grid, with
optional named doors between them. Foods carry three properties that decide what can be done
with them: ``edible_raw`` (eatable before cooking), ``cuttable`` (slice / dice / chop) and
``cookable`` (stove -> fried, oven -> roasted, barbecue -> grilled; a second cooking burns).

Train and test layouts are disjoint by construction: a layout's split is a fixed function of
its content (a SHA-256 of its signature: rooms, exits, doors, and where every object starts),
and a split draws layouts until one of its own comes up. No layout can be served in both.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

#: room -> its fixed furniture: (name, kind) with kind "container" (openable), "surface" or
#: "device" (device names the cooking verb it gives, see DEVICE_STATE)
ROOMS: dict[str, tuple[tuple[str, str], ...]] = {
    "kitchen": (("fridge", "container"), ("kitchen cupboard", "container"), ("counter", "surface"),
                ("dining table", "surface"), ("stove", "device"), ("oven", "device")),
    "pantry": (("shelf", "surface"), ("pantry cupboard", "container")),
    "garden": (("garden bench", "surface"),),
    "backyard": (("barbecue", "device"), ("patio table", "surface")),
    "living room": (("sofa", "surface"), ("coffee table", "surface")),
    "corridor": (("shoe cabinet", "container"),),
    "bedroom": (("bed", "surface"), ("wardrobe", "container")),
    "bathroom": (("bathroom cabinet", "container"),),
    "driveway": (),
    "supermarket": (("showcase", "surface"), ("freezer", "container")),
}
#: the outdoor rooms, one of which comes second in every layout of two rooms or more
OUTDOOR = ("garden", "backyard")
#: device -> the cook state it gives to a raw food
DEVICE_STATE = {"stove": "fried", "oven": "roasted", "barbecue": "grilled"}
CUT_VERBS = {"slice": "sliced", "dice": "diced", "chop": "chopped"}
COOK_VERBS = {"fry": "fried", "roast": "roasted", "grill": "grilled"}


@dataclass(frozen=True)
class FoodKind:
    name: str
    edible_raw: bool
    cuttable: bool
    cookable: bool
    homes: tuple[str, ...]  # receptacles or rooms it may start in, first available wins as fallback


FOODS: tuple[FoodKind, ...] = (
    FoodKind("carrot", True, True, True, ("fridge", "garden", "counter")),
    FoodKind("potato", False, True, True, ("shelf", "garden", "kitchen cupboard")),
    FoodKind("apple", True, True, True, ("fridge", "counter", "garden")),
    FoodKind("tomato", True, True, True, ("fridge", "garden", "counter")),
    FoodKind("red onion", True, True, True, ("shelf", "garden", "kitchen cupboard")),
    FoodKind("yellow bell pepper", True, True, True, ("fridge", "garden", "showcase")),
    FoodKind("cucumber", True, True, True, ("fridge", "garden", "showcase")),
    FoodKind("chicken breast", False, True, True, ("fridge", "freezer")),
    FoodKind("chicken wing", False, True, True, ("fridge", "freezer")),
    FoodKind("pork chop", False, True, True, ("fridge", "freezer")),
    FoodKind("white tuna", False, True, True, ("fridge", "freezer", "showcase")),
    FoodKind("block of cheese", True, True, True, ("fridge", "showcase")),
    FoodKind("banana", True, True, True, ("counter", "dining table", "showcase")),
    FoodKind("egg", False, False, True, ("fridge", "showcase")),
    FoodKind("bread", True, True, True, ("kitchen cupboard", "counter", "shelf")),
    FoodKind("milk", True, False, False, ("fridge", "showcase")),
    FoodKind("flour", False, False, False, ("shelf", "kitchen cupboard")),
)
FOOD_KINDS = {f.name: f for f in FOODS}
KNIFE = "knife"
KNIFE_HOMES = ("counter", "kitchen cupboard", "dining table")
DOOR_NAMES = ("wooden door", "screen door", "sliding patio door", "frosted-glass door", "fiberglass door",
              "barn door", "plain door", "commercial glass door", "front door", "rectangular gate")
DIRECTIONS = {"north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0)}
OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}
SPLITS = ("train", "test")


@dataclass
class Layout:
    """Everything a game starts from; plain data, hashed for the split."""

    rooms: list[str]
    exits: dict[str, dict[str, str]]  # room -> direction -> room
    doors: dict[str, tuple[str, str]]  # door name -> the two rooms it joins
    door_open: dict[str, bool]
    start_room: str
    placement: dict[str, str]  # portable object (foods, knife) -> receptacle or room
    foods: list[str] = field(default_factory=list)

    def signature(self) -> str:
        exits = sorted((r, d, o) for r, ex in self.exits.items() for d, o in ex.items())
        doors = sorted((n, *sorted(rs), self.door_open[n]) for n, rs in self.doors.items())
        return repr((sorted(self.rooms), exits, doors, self.start_room, sorted(self.placement.items())))

    def split(self, test_fraction: float) -> str:
        """'test' for a fixed ``test_fraction`` of all layouts, decided by their content alone."""
        digest = hashlib.sha256(self.signature().encode()).digest()
        return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def _rooms(rng: random.Random, num_rooms: int) -> list[str]:
    rooms = ["kitchen"]
    if num_rooms >= 2:
        rooms.append(rng.choice(OUTDOOR))
    rest = [r for r in ROOMS if r not in rooms]
    rooms += rng.sample(rest, num_rooms - len(rooms))
    return rooms


def _map(rng: random.Random, rooms: list[str]) -> dict[str, dict[str, str]]:
    """A random tree on the compass grid: each room hangs off a placed room, on a free cell."""
    cells = {(0, 0): rooms[0]}
    where = {rooms[0]: (0, 0)}
    exits: dict[str, dict[str, str]] = {r: {} for r in rooms}
    for room in rooms[1:]:
        options = [(other, d) for other in where for d, (dx, dy) in DIRECTIONS.items()
                   if (where[other][0] + dx, where[other][1] + dy) not in cells]
        other, d = rng.choice(sorted(options))
        dx, dy = DIRECTIONS[d]
        cell = (where[other][0] + dx, where[other][1] + dy)
        cells[cell], where[room] = room, cell
        exits[other][d], exits[room][OPPOSITE[d]] = room, other
    return exits


def generate_layout(rng: random.Random, num_rooms: int, num_foods: int, doors: bool) -> Layout:
    """One layout drawn from ``rng`` (split not checked here: see ``draw_layout``)."""
    rooms = _rooms(rng, num_rooms)
    exits = _map(rng, rooms)
    door_rooms: dict[str, tuple[str, str]] = {}
    door_open: dict[str, bool] = {}
    if doors:
        pairs = sorted({tuple(sorted((a, b))) for a, ex in exits.items() for b in ex.values()})
        names = rng.sample(DOOR_NAMES, len(pairs))
        for (a, b), name in zip(pairs, names):
            if rng.random() < 0.5:
                door_rooms[name] = (a, b)
                door_open[name] = rng.random() < 0.3
    receptacles = {name for r in rooms for name, kind in ROOMS[r] if kind != "device"}
    places = receptacles | set(rooms)
    foods = rng.sample([f.name for f in FOODS], num_foods)
    placement: dict[str, str] = {}
    for food in foods:
        homes = [h for h in FOOD_KINDS[food].homes if h in places] or ["counter"]
        placement[food] = rng.choice(homes)
    placement[KNIFE] = rng.choice(KNIFE_HOMES)
    start = rng.choice(rooms)
    return Layout(rooms, exits, door_rooms, door_open, start, placement, foods)


def draw_layout(seed: int, split: str, num_rooms: int, num_foods: int, doors: bool,
                test_fraction: float) -> Layout:
    """The first layout of ``split`` drawn from ``seed``: deterministic, never one of the other split."""
    rng = random.Random(seed)
    for _ in range(10_000):
        layout = generate_layout(rng, num_rooms, num_foods, doors)
        if layout.split(test_fraction) == split:
            return layout
    raise RuntimeError(f"no {split!r} layout in 10,000 draws (test_fraction={test_fraction})")
