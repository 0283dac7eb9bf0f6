"""The cache root every selfgym cache lives under (default model, generated calendar users, ...).

Core layer, so envs and llm code share one definition of where caches go.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$SELFGYM_CACHE`` or ``~/.cache/selfgym`` (an empty ``SELFGYM_CACHE`` counts as unset)."""
    return Path(os.environ.get("SELFGYM_CACHE") or Path.home() / ".cache" / "selfgym").expanduser()
