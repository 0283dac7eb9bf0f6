"""A gymnasium ``Text`` space that SB3's VecEnvs can batch.

SB3's ``DummyVecEnv`` preallocates ``np.zeros((n_envs, *space.shape), space.dtype)``; plain
``Text`` has ``shape=None`` and fails there. ``BatchableText`` is the same space (it still is a
``spaces.Text``, samples and ``contains`` are unchanged) with ``shape=()`` and ``dtype=object``,
so a batch of observations is a numpy object array of ``str``.
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
    def __init__(self, max_length: int, *, min_length: int = 0, charset: str = LLM_CHARSET, seed: int | None = None) -> None:
        super().__init__(max_length, min_length=min_length, charset=charset, seed=seed)
        self._shape = ()
        self.dtype = np.dtype(object)

    def contains(self, x: object) -> bool:
        return isinstance(x, str) and super().contains(str(x))


def to_charset(text: str, charset_set: frozenset[str], replacement: str = "?") -> str:
    """Replace characters a Text space does not accept (model output can hold any unicode)."""
    return "".join(ch if ch in charset_set else replacement for ch in text)
