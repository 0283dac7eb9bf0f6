"""Procedural reasoning task families, each with an exact verifier.

A family is ``generate(rng, level) -> Task`` plus ``score(task, completion) -> (reward, answer)``,
where ``answer`` is the normalised extracted answer (None when nothing parsable was found; the
reward is then 0). Normalised answers of the same family compare equal exactly when they mean
the same answer, so majority votes can count them.

Levels (1 = easiest) grow the numbers, the list lengths and the number of steps.
"""

from __future__ import annotations

import ast
import re
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from selfgym.envs.text.extract import NUMBER, extract_answer, extract_stated_answer, parse_int_list, parse_number

#: Measured on SmolLM2-135M-Instruct (greedy, level 1): an example value in the instruction
#: ("e.g. <answer>42</answer>") makes the model copy it; this plain form parsed best.
ANSWER_FORMAT = "Give the final answer inside <answer></answer> tags."


@dataclass
class Task:
    family: str
    level: int
    question: str  # the problem text, with the answer-format instruction
    target: str  # the normalised reference answer
    data: dict[str, Any] = field(default_factory=dict)  # what the verifier needs beyond target

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt_number(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _score_number(task: Task, completion: str) -> tuple[float, str | None]:
    value = parse_number(extract_answer(completion, numeric=True))
    if value is None:
        return 0.0, None
    answer = _fmt_number(value)
    return float(answer == task.target), answer


# --- arithmetic ---------------------------------------------------------------------------

def gen_arithmetic(rng: np.random.Generator, level: int) -> Task:
    """Level 1: a+b, a-b with 1-digit operands; 2: 2-digit, with *; 3: 3-digit; 4+: three terms."""
    digits = min(level, 3)
    n_terms = 2 if level <= 3 else 3
    ops = ["+", "-"] if level == 1 else ["+", "-", "*"]
    nums = [int(rng.integers(1, 10**digits)) for _ in range(n_terms)]
    expr = str(nums[0])
    for n in nums[1:]:
        op = str(rng.choice(ops))
        if op == "*" and digits > 1:  # keep products readable: one factor has at most 2 digits
            n = int(rng.integers(2, 20))
        expr += f" {op} {n}"
    value = Fraction(_safe_eval(expr))
    question = f"What is {expr}? " + ANSWER_FORMAT.format(example=42)
    return Task("arithmetic", level, question, _fmt_number(value), {"expression": expr})


# --- countdown ----------------------------------------------------------------------------

_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}


def _safe_eval(expr: str, used: list[int] | None = None) -> Fraction:
    """Evaluate + - * / and parentheses over integers exactly; anything else raises ValueError."""

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            if used is not None:
                used.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ValueError("division by zero")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError(f"unsupported expression element {type(node).__name__}")

    if len(expr) > 200:
        raise ValueError("expression too long")
    try:
        tree = ast.parse(expr.replace("×", "*").replace("÷", "/").replace("x", "*"), mode="eval")
    except SyntaxError as exc:
        raise ValueError(str(exc)) from exc
    return ev(tree)


def gen_countdown(rng: np.random.Generator, level: int) -> Task:
    """Reach a target with some of the given numbers (each at most once) and + - * /."""
    count = 3 if level <= 1 else 4 if level <= 3 else 5
    high = 10 if level <= 2 else 25
    while True:
        nums = [int(x) for x in rng.integers(1, high, size=count)]
        k = 2 if level == 1 else int(rng.integers(2, count + 1))
        chosen = list(rng.permutation(count)[:k])
        expr = str(nums[chosen[0]])
        for i in chosen[1:]:
            op = str(rng.choice(["+", "-", "*"]))
            expr = f"({expr}) {op} {nums[i]}" if op == "*" else f"{expr} {op} {nums[i]}"
        target = _safe_eval(expr)
        if target.denominator == 1 and 0 < target <= 1000 and target not in nums:
            break
    listed = ", ".join(map(str, nums))
    question = (
        f"Using some of the numbers {listed} (each at most once) and + - * / and parentheses, "
        f"write an expression equal to {int(target)}. " + ANSWER_FORMAT.format(example="(1 + 2) * 3")
    )
    return Task("countdown", level, question, str(int(target)), {"numbers": nums, "solution": expr})


def _score_countdown(task: Task, completion: str) -> tuple[float, str | None]:
    span = extract_answer(completion)
    if span is None:
        return 0.0, None
    expr = span.split("=")[0].strip()
    used: list[int] = []
    try:
        value = _safe_eval(expr, used)
    except (ValueError, TypeError, ZeroDivisionError, RecursionError):
        return 0.0, None
    normalised = "".join(expr.split())
    pool = list(task.data["numbers"])
    for n in used:
        if n not in pool:
            return 0.0, normalised
        pool.remove(n)
    return float(value == int(task.target)), normalised


# --- list operations ----------------------------------------------------------------------

_LIST_OPS = ("sort", "sort_desc", "max", "min", "sum", "reverse")


def gen_list(rng: np.random.Generator, level: int) -> Task:
    """Sort, reverse, max, min or sum of a list; level sets the length (3 + level) and range."""
    length, high = 3 + level, 10 * level
    values = [int(x) for x in rng.integers(0, high, size=length)]
    op = str(rng.choice(_LIST_OPS))
    text = {
        "sort": "Sort this list in ascending order",
        "sort_desc": "Sort this list in descending order",
        "reverse": "Reverse this list",
        "max": "What is the largest number in this list",
        "min": "What is the smallest number in this list",
        "sum": "What is the sum of this list",
    }[op]
    result: Any = {
        "sort": sorted(values), "sort_desc": sorted(values, reverse=True), "reverse": values[::-1],
        "max": max(values), "min": min(values), "sum": sum(values),
    }[op]
    example = "[1, 2, 3]" if isinstance(result, list) else "7"
    question = f"{text}: {values}. " + ANSWER_FORMAT.format(example=example)
    return Task("list", level, question, str(result), {"values": values, "op": op})


def _score_list(task: Task, completion: str) -> tuple[float, str | None]:
    if task.data["op"] in ("max", "min", "sum"):
        return _score_number(task, completion)
    parsed = parse_int_list(extract_answer(completion))
    if parsed is None:
        return 0.0, None
    answer = str(parsed)
    return float(answer == task.target), answer


# --- word problems ------------------------------------------------------------------------

_NAMES = ("Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana")
_ITEMS = ("apples", "stamps", "marbles", "books", "coins", "shells")


def gen_word(rng: np.random.Generator, level: int) -> Task:
    """A counting story with ``level`` changes after the start (gain, loss, doubling)."""
    name, item = str(rng.choice(_NAMES)), str(rng.choice(_ITEMS))
    count = int(rng.integers(2, 10 * level + 1))
    story = [f"{name} has {count} {item}."]
    for _ in range(level):
        kind = str(rng.choice(["gain", "lose", "double"] if level >= 3 else ["gain", "lose"]))
        if kind == "gain":
            n = int(rng.integers(1, 10 * level + 1))
            story.append(f"{name} gets {n} more {item}.")
            count += n
        elif kind == "lose" and count > 1:
            n = int(rng.integers(1, count))
            story.append(f"{name} gives away {n} {item}.")
            count -= n
        else:
            story.append(f"Then the number of {item} {name} has doubles.")
            count *= 2
    question = " ".join(story) + f" How many {item} does {name} have now? " + ANSWER_FORMAT.format(example=5)
    return Task("word", level, question, str(count), {})


# --- boolean logic ------------------------------------------------------------------------

def _bool_expr(rng: np.random.Generator, depth: int) -> str:
    if depth == 0:
        leaf = str(rng.choice(["True", "False"]))
        return f"not {leaf}" if rng.random() < 0.3 else leaf
    op = str(rng.choice(["and", "or"]))
    return f"({_bool_expr(rng, depth - 1)} {op} {_bool_expr(rng, depth - 1 if rng.random() < 0.7 else 0)})"


def gen_logic(rng: np.random.Generator, level: int) -> Task:
    """Evaluate a boolean expression of nesting depth ``level``."""
    expr = _bool_expr(rng, level)
    value = bool(eval(expr, {"__builtins__": {}}, {}))  # only True/False/and/or/not/parentheses
    question = f"Is the following expression True or False? {expr} " + ANSWER_FORMAT.format(example="True")
    return Task("logic", level, question, str(value), {"expression": expr})


def _score_logic(task: Task, completion: str) -> tuple[float, str | None]:
    span = extract_answer(completion)
    if span is None:  # no tag/phrase: the last True/False word of the whole text
        span = completion
    words = re.findall(r"\b(true|false|yes|no)\b", span, re.I)
    if not words:
        return 0.0, None
    answer = "True" if words[-1].lower() in ("true", "yes") else "False"
    return float(answer == task.target), answer


FAMILIES: dict[str, tuple[Callable[[np.random.Generator, int], Task], Callable[[Task, str], tuple[float, str | None]]]] = {
    "arithmetic": (gen_arithmetic, _score_number),
    "countdown": (gen_countdown, _score_countdown),
    "list": (gen_list, _score_list),
    "word": (gen_word, _score_number),
    "logic": (gen_logic, _score_logic),
}


def score(task: Task, completion: str) -> tuple[float, str | None]:
    """(reward in [0, 1], normalised answer or None); never raises on malformed completions."""
    if not isinstance(completion, str):
        return 0.0, None
    return FAMILIES[task.family][1](task, completion)


NUMERIC_FAMILIES = ("arithmetic", "word")  # families whose answer is one number


def stated_answer(family: str | None, completion: str) -> str | None:
    """The normalised answer a completion commits to, or None: what a self-generated label may count.

    Stricter than the verifier's extraction: the span must be stated (answer tags, boxed,
    "answer is", the number after the last ``=``, see ``extract_stated_answer``; or a completion
    that is only the answer: a number for one-number families, True/False for logic), and for
    one-number families it must hold exactly one number once reduced to what follows its last
    ``=``. So an echo of the question ("4 + 8", or "<answer>4 + 8") states nothing.
    """
    span = extract_stated_answer(completion, numeric=family in NUMERIC_FAMILIES, boolean=family == "logic")
    if span is None:
        return None
    if family in NUMERIC_FAMILIES:
        span = span.rsplit("=", 1)[-1]
        if len(NUMBER.findall(span)) != 1:
            return None
    if family is None or str(family).startswith("rg:"):
        return span
    return normalise_answer(family, span)


def normalise_answer(family: str, completion: str) -> str | None:
    """The normalised answer of a completion for ``family`` with no reference (for votes)."""
    dummy = Task(family, 1, "", "\0", {"numbers": [], "op": "sort"})
    if family == "countdown":
        span = extract_answer(completion)
        try:
            return _fmt_number(_safe_eval(span.split("=")[0])) if span else None
        except (ValueError, TypeError, ZeroDivisionError, RecursionError):
            return None
    if family == "list":
        number = parse_number(extract_answer(completion, numeric=True))
        listed = parse_int_list(extract_answer(completion))
        return str(listed) if listed is not None and len(listed) > 1 else (_fmt_number(number) if number is not None else None)
    return FAMILIES[family][1](dummy, completion)[1] if family in FAMILIES else extract_answer(completion)
