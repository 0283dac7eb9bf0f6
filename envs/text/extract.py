"""Answer extraction from free-form model output.

The rules, tried in order (the first that finds something wins):

1. the content of the LAST ``<answer>...</answer>`` tag (an unclosed final ``<answer>`` takes
   the rest of the text);
2. the content of the last ``\\boxed{...}``;
3. the text after the last "answer is" / "answer:" / "Answer =" (up to the end of that line);
4. for numeric answers only: the last number in the whole text (for True/False answers, the
   logic family uses the last True/False word instead).

The extracted text is stripped of whitespace, surrounding ``$``, ``**`` and a trailing ``.``.
Anything that yields nothing returns ``None``; callers give ``None`` a reward of 0. Nothing
here raises on malformed text.

``extract_stated_answer`` is the strict variant for self-generated labels (majority vote): only
rules 1-3, or the number right after the last ``=``, or a completion that is only the answer (a
number, or True/False for the logic family). A completion that merely echoes the question
("4 + 8") states no answer, where rule 4 would read "8" from it.
"""

from __future__ import annotations

import re
from fractions import Fraction

_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_OPEN_TAG = re.compile(r"<answer>(.*)$", re.S | re.I)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_PHRASE = re.compile(r"answer\s*(?:is|:|=)\s*:?\s*([^\n]*)", re.I)
# A number, with thousands separators only where every group has exactly three digits and no
# further ",digit" follows: "1,234" is one number, "3,100,2" (a list) is three.
_GROUPED = r"(?<![\d,])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,]*\d)"
_PLAIN = r"-?\d+(?:\.\d+)?(?:/\d+)?"
NUMBER = re.compile(f"{_GROUPED}|{_PLAIN}")
_EQUALS_NUMBER = re.compile(rf"=\s*\$?\s*({_GROUPED}|{_PLAIN})")


def _clean(text: str) -> str:
    previous = None
    while text != previous:
        previous = text
        text = text.strip().strip("$*` \t\n")
        text = text[:-1] if text.endswith(".") else text
    return text


def extract_answer(text: str | None, numeric: bool = False) -> str | None:
    """The answer span of a completion (see the module docstring), or None."""
    if not isinstance(text, str) or not text.strip():
        return None
    tags = _TAG.findall(text)
    if tags:
        found = _clean(tags[-1])
        return found or None
    open_tag = _OPEN_TAG.findall(text)
    if open_tag and _clean(open_tag[-1]):
        return _clean(open_tag[-1])
    boxed = _BOXED.findall(text)
    if boxed and _clean(boxed[-1]):
        return _clean(boxed[-1])
    phrases = _PHRASE.findall(text)
    if phrases and _clean(phrases[-1]):
        return _clean(phrases[-1])
    if numeric:
        numbers = NUMBER.findall(text)
        if numbers:
            return numbers[-1]
    return None


def extract_stated_answer(text: str | None, numeric: bool = False, boolean: bool = False) -> str | None:
    """The answer a completion commits to (rules 1-3, else the number after the last ``=``), or
    None. A completion that is nothing but the answer also states it: only a number
    (``numeric``) or only True/False (``boolean``)."""
    found = extract_answer(text)
    if found is not None or not isinstance(text, str):
        return found
    equals = _EQUALS_NUMBER.findall(text)
    if equals:
        return equals[-1]
    bare = _clean(text)
    if numeric and NUMBER.fullmatch(bare):
        return bare
    if boolean and bare.lower() in ("true", "false"):
        return bare
    return None


def parse_number(text: str | None) -> Fraction | None:
    """A number from an answer span: the last number in it, exact (``"x = 1,234."`` -> 1234)."""
    if text is None:
        return None
    numbers = NUMBER.findall(text)
    if not numbers:
        return None
    try:
        return Fraction(numbers[-1].replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def parse_int_list(text: str | None) -> list[int] | None:
    """A list of integers from ``"[3, 1, 2]"``, ``"3, 1, 2"`` or ``"3 1 2"``; None if none found."""
    if text is None:
        return None
    numbers = re.findall(r"-?\d+", text)
    return [int(n) for n in numbers] if numbers else None
