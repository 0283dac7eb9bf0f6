"""A gymnasium ``Text`` space that SB3's VecEnvs can batch.

SB3's ``DummyVecEnv`` preallocates ``np.zeros((n_envs, *space.shape), space.dtype)``; plain
``Text`` has ``shape=None`` and fails there, and SB3's env checker wants observations to be
numpy arrays (gymnasium's checker then iterates object arrays, so not 0-d ones).
``BatchableText`` is the same space (still a ``spaces.Text``; ``sample()`` gives ``str``) with a
numpy ``shape`` (``(1,)`` for observations, ``()`` for actions) and ``dtype=object``; its
``contains`` accepts a ``str`` or a one-element object array holding one. Envs return
observations as ``np.array([text], dtype=object)`` (``as_text(obs)`` gives the str back); a
VecEnv batch is an object array of shape (n_envs, 1). Actions are plain ``str``.
"""

from __future__ import annotations

import string

import numpy as np
from gymnasium import spaces

#: Everything a tokenizer decodes to in practice: printable ASCII plus common unicode
#: (accents, maths symbols, typographic quotes, arrows, emoji blocks are excluded).
LLM_CHARSET: str = string.printable + "".join(
    chr(c) for c in list(range(0xA0, 0x250)) + list(range(0x370, 0x400)) + list(range(0x2000, 0x2070))
    + list(range(0x2190, 0x2200)) + list(range(0x2200, 0x2300))
)


class BatchableText(spaces.Text):
    def __init__(self, max_length: int, *, min_length: int = 0, charset: str = LLM_CHARSET, seed: int | None = None,
                 shape: tuple[int, ...] = ()) -> None:
        super().__init__(max_length, min_length=min_length, charset=charset, seed=seed)
        if shape not in ((), (1,)):
            raise ValueError(f"BatchableText shape must be () or (1,), got {shape}")
        self._shape = shape
        self.dtype = np.dtype(object)

    def contains(self, x: object) -> bool:
        x = as_text(x)
        return isinstance(x, str) and super().contains(str(x))


def as_text(x: object) -> object:
    """The str inside a one-element numpy array (or a numpy str); anything else unchanged."""
    if isinstance(x, np.ndarray) and x.size == 1:
        x = x.reshape(-1)[0]
    return str(x) if isinstance(x, np.str_) else x


def text_obs(text: str) -> np.ndarray:
    """A str as a (1,) object array: the observation form both env checkers and SB3 VecEnvs accept."""
    out = np.empty((1,), dtype=object)
    out[0] = text
    return out


def texts(batch: object) -> list[str]:
    """A VecEnv batch of text observations ((n, 1) or (n,) object array, or a list) as strs."""
    rows = batch if isinstance(batch, (list, tuple)) else list(np.asarray(batch, dtype=object).reshape(len(batch), -1))
    return [str(as_text(r)) for r in rows]


def to_charset(text: str, charset_set: frozenset[str], replacement: str = "?") -> str:
    """Replace characters a Text space does not accept (model output can hold any unicode)."""
    return "".join(ch if ch in charset_set else replacement for ch in text)
