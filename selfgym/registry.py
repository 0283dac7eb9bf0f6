"""The one name -> object registry class, used for agents and reward modules.

Three plug-in paths, none of which needs an edit of this repository:

* the ``register`` decorator, run when the user's module is imported;
* a dotted path ``"my_pkg.my_mod:Name"`` given wherever a name is accepted;
* an entry point in the group the registry was created with (``selfgym.agents``,
  ``selfgym.rewards``), loaded lazily the first time a name is looked up.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is neither registered nor importable; the message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain sentence.
        return str(self.args[0])


def import_dotted(path: str) -> object:
    """Import ``"pkg.mod:attr"`` (or ``"pkg.mod.attr"``) and return the attribute."""
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not a dotted path of the form 'pkg.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"cannot import module {module_name!r} from {path!r}: {exc}") from exc
    try:
        obj: object = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise ImportError(f"module {module_name!r} has no attribute {attr!r} (from {path!r})") from exc
    return obj


def did_you_mean(name: str, choices: list[str], n: int = 3) -> str:
    """The ' Did you mean ...?' suffix for an error message, or '' when nothing is close."""
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(lowered[c]) for c in close) + "?"


def reject_unknown(owner: str, given: Iterable[str], valid: list[str] | None, what: str = "") -> None:
    """TypeError naming the keyword arguments ``owner`` does not take, and the valid ones.

    ``valid`` None means the owner accepts anything (its constructor takes ``**kwargs``).
    """
    if valid is None:
        return
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise TypeError(f"{owner} does not take {what}{', '.join(map(repr, unknown))}. Valid: {', '.join(valid)}")


class Registry(Generic[T]):
    """Maps names to objects (classes or factories) of one kind.

    Entries are registered directly (``register``) or lazily as ``"module:attr"`` strings
    (``register_lazy``), which are imported on first lookup so that listing names or parsing
    flags stays cheap. ``on_register(name, obj)`` runs for every object that enters the table
    (reward modules use it to learn the name they were registered under).
    """

    def __init__(self, kind: str, entry_point_group: str,
                 on_register: Callable[[str, T], None] | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._on_register = on_register
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._entry_points_loaded = False

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""

        def add(item: T) -> T:
            if name in self._items and self._items[name] is not item and not overwrite:
                raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it")
            if self._on_register is not None:
                self._on_register(name, item)
            self._items[name] = item
            self._lazy.pop(name, None)
            return item

        return add if obj is None else add(obj)

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``"module:attr"`` under ``name``, imported the first time ``name`` is looked up."""
        if ":" not in target:
            raise ValueError(f"lazy {self.kind} {name!r}: target must be 'module:attr', got {target!r}")
        self._lazy[name] = target

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.entry_point_group):
            if ep.name not in self._items and ep.name not in self._lazy:  # built-ins win
                try:
                    self.register(ep.name, ep.load())
                except Exception as exc:  # a broken plug-in must not hide the others
                    raise ImportError(
                        f"{self.kind} plug-in {ep.name!r} (entry point {ep.value!r} in group "
                        f"{self.entry_point_group!r}) failed to load: {exc}"
                    ) from exc

    def _resolve_lazy(self, name: str) -> T:
        module_name, _, attr = self._lazy[name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(f"{self.kind} {name!r} needs {module_name!r}, which cannot be imported ({exc})") from exc
        obj: T = getattr(module, attr)
        self.register(name, obj, overwrite=True)
        return obj

    def names(self) -> list[str]:
        """Every name: registered, lazy and from entry points (nothing is imported but the entry points)."""
        self._load_entry_points()
        return sorted(set(self._items) | set(self._lazy))

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """Look ``name`` up: registered names, lazy built-ins, entry points, then a dotted path."""
        if name in self._items:
            return self._items[name]
        if name in self._lazy:
            return self._resolve_lazy(name)
        self._load_entry_points()
        if name in self._items:
            return self._items[name]
        if ":" in name:
            return import_dotted(name)  # type: ignore[return-value]
        names = self.names()
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}.{did_you_mean(name, names)} "
            f"Registered: {', '.join(names) or '(none)'}. A plug-in can also be given as 'pkg.module:Name'."
        )
