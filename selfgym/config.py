"""Hyperparameter files, ``key:value`` flags and the safe evaluation of their values.

Configuration stays plain data (numbers, strings, lists, dicts) everywhere it is stored;
strings with meaning (``"lin_0.001"``, ``"dict(net_arch=[64, 64])"``, ``"nn.Tanh"``) are
turned into objects only when an agent is built, so a saved ``config.yaml`` never needs
pickled code to be read back.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

import selfgym.hyperparams

#: The tuned hyperparameter files, shipped inside the package (repository folder hyperparams/).
HYPERPARAMS_DIR = Path(selfgym.hyperparams.__file__).resolve().parent

# Keys the trainer consumes itself; everything else goes to the agent's constructor.
TRAINER_KEYS = ("n_timesteps", "n_envs", "normalize", "env_wrapper", "env_kwargs", "eval_freq", "eval_episodes")


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets and quotes: ``"a=[1,2],b=3"`` -> ``["a=[1,2]", "b=3"]``."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0 and not quote:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in (s.strip() for s in parts) if p]


def parse_value(text: str) -> Any:
    """Python literal if it is one (``1e-3``, ``[64, 64]``, ``True``), else the string itself."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if lowered in ("nan", "inf", "+inf", "-inf"):
        return float(lowered)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_key_values(items: Iterable[str], flag: str) -> dict[str, Any]:
    """Parse ``["lr:0.001", "net:[64,64]"]`` (rl-zoo3's ``-params`` form) into a dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise ValueError(f"{flag} expects key:value pairs, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


_SPEC = re.compile(r"^(?P<name>.+?)(?::(?P<kwargs>[A-Za-z_]\w*\s*=.*))?$")


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Parse ``"rnd:coef=0.01,hidden=[64,64]"`` into ``("rnd", {"coef": 0.01, "hidden": [64, 64]})``.

    The name may itself hold a colon (``"my_mod:my_reward"``, ``"component:reach"``); the
    keyword part starts at the first colon that is followed by ``identifier=``.
    """
    match = _SPEC.match(spec.strip())
    if not match:
        raise ValueError(f"cannot parse {spec!r}; expected NAME or NAME:key=value,...")
    kwargs: dict[str, Any] = {}
    for item in _split_top_level(match.group("kwargs") or "", ","):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"in {spec!r}: {item!r} is not key=value")
        kwargs[key.strip()] = parse_value(value)
    return match.group("name"), kwargs


def find_nan(value: Any, path: str) -> str | None:
    """The dotted key of the first NaN inside ``value`` (dicts and lists walked), else None."""
    if isinstance(value, float) and value != value:
        return path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        if (found := find_nan(item, f"{path}.{key}" if path else str(key))) is not None:
            return found
    return None


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hyperparameter file not found: {path.resolve()}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        # ValueError, so the CLIs report it as a usage error naming the file, not a traceback
        raise ValueError(f"{path}: not a readable YAML file: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"{path}: a hyperparameter file is a mapping (env id -> settings), got {type(data).__name__}")
    return data or {}


def load_hyperparams(agent: str, env_id: str, directory: Path = HYPERPARAMS_DIR) -> dict[str, Any]:
    """``hyperparams/<agent>.yml``: the entry for ``env_id``, over the ``default`` entry.

    The shipped files are in rl-zoo3's format (they load unchanged with its ``-conf``): each
    entry takes the shared defaults with the YAML merge key ``<<: *default``, and ``default``
    is used for an env without an entry, as rl-zoo3 does. Merging ``default`` here as well
    changes nothing for such files and keeps older files (without merge keys) reading the same.

    An agent without a file (a plug-in, or an algorithm we have not tuned) gets its own
    defaults; a hyperparameter folder missing from the install is an error, never silent defaults.
    """
    if not any(directory.glob("*.yml")):
        raise FileNotFoundError(f"no hyperparameter files in {directory}: this selfgym install is missing its package data")
    path = directory / f"{agent}.yml"
    if not path.exists():
        return {}
    table = load_yaml(path)
    merged = dict(table.get("default") or {})
    merged.update(table.get(env_id) or {})
    return merged


def load_conf_file(path: str | Path, env_id: str) -> dict[str, Any]:
    """A ``-conf`` file: either keyed by env id (like hyperparams/) or a flat mapping."""
    table = load_yaml(path)
    if env_id in table or "default" in table:
        merged = dict(table.get("default") or {})
        merged.update(table.get(env_id) or {})
        return merged
    return table


# --- turning config strings into objects, at agent-construction time only -----------------


def linear_schedule(initial: float) -> Callable[[float], float]:
    """SB3 passes progress_remaining (1 -> 0); rl-zoo3 writes this as ``lin_<initial>``."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


def _torch_names() -> dict[str, Any]:
    import torch.nn as nn

    acts = ("ReLU", "Tanh", "ELU", "GELU", "SiLU", "LeakyReLU", "Sigmoid", "Identity")
    names: dict[str, Any] = {f"nn.{a}": getattr(nn, a) for a in acts}
    names.update({a: getattr(nn, a) for a in acts})
    from stable_baselines3 import HerReplayBuffer

    names["HerReplayBuffer"] = HerReplayBuffer
    return names


def safe_eval(expr: str) -> Any:
    """Evaluate ``dict(...)``/literal/``nn.X`` expressions without ``eval`` of arbitrary code."""
    allowed = _torch_names()

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [ev(e) for e in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.Dict):
            return {ev(k): ev(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = ast.unparse(node)
            if name in allowed:
                return allowed[name]
            raise ValueError(f"name {name!r} is not allowed in a config value (allowed: {sorted(allowed)})")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("dict", "list", "tuple"):
            if node.func.id == "dict":
                return {kw.arg: ev(kw.value) for kw in node.keywords}
            return {"list": list, "tuple": tuple}[node.func.id](ev(node.args[0]) if node.args else [])
        raise ValueError(f"unsupported expression in config value: {ast.unparse(node)!r}")

    return ev(ast.parse(expr, mode="eval"))


def resolve_value(key: str, value: Any) -> Any:
    """Turn one plain config value into the object an agent constructor expects."""
    if isinstance(value, str):
        if re.fullmatch(r"lin_[-+0-9.eE]+", value):
            return linear_schedule(float(value[4:]))
        if value.startswith(("dict(", "nn.")) or value in ("HerReplayBuffer",):
            return safe_eval(value)
    if isinstance(value, dict):
        return {k: resolve_value(k, v) for k, v in value.items()}
    return value
