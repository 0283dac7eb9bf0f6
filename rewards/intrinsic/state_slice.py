"""Which observation features a skill-discovery module looks at (``obs_slice=``).

Why: on a tabletop, a discriminator (DIAYN) or a distance encoder (METRA) that sees the arm
is satisfied by skills that only wave the arm; restricted to the objects, skills must move
things (SLIM's point). ``obs_slice`` is either ``[start, stop]`` (feature indices, the skill
excluded) or names from PlayTable's state layout (``envs/play_table/observation.py``) joined
by ``+``: ``objects``, ``cube_pos+long_pos``, ``scene``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selfgym.envs.play_table.observation import PROPRIO_DIM, PROPRIO_KEYS, SCENE_KEYS, STATE_DIM

#: PlayTable state-observation names -> (start, stop) in the 37-float state.
NAMED_SLICES: dict[str, tuple[int, int]] = {
    "proprio": (0, PROPRIO_DIM),
    "scene": (PROPRIO_DIM, STATE_DIM),
    "objects": (PROPRIO_DIM + SCENE_KEYS["long_pos"].start, PROPRIO_DIM + SCENE_KEYS["cube_quat"].stop),
    **{key: (part.start, part.stop) for key, part in PROPRIO_KEYS.items()},
    **{key: (PROPRIO_DIM + part.start, PROPRIO_DIM + part.stop) for key, part in SCENE_KEYS.items()},
}


def feature_indices(spec: str | Sequence[int] | None, owner: str) -> np.ndarray | None:
    """``obs_slice`` -> the feature indices it selects (None: every feature).

    ``owner`` names the module in errors, which list the valid names.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        names = [n.strip() for n in spec.split("+")]
        unknown = [n for n in names if n not in NAMED_SLICES]
        if unknown:
            raise ValueError(f"{owner}: obs_slice={spec!r} names {', '.join(map(repr, unknown))}, not a part of "
                             f"PlayTable's state; use [start, stop] or names joined by '+' from {', '.join(NAMED_SLICES)}")
        return np.concatenate([np.arange(*NAMED_SLICES[n]) for n in names])
    if (not isinstance(spec, Sequence) or len(spec) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in spec)
            or not 0 <= spec[0] < spec[1]):
        raise ValueError(f"{owner}: obs_slice must be [start, stop] with 0 <= start < stop, or names from "
                         f"{', '.join(NAMED_SLICES)} joined by '+'; got {spec!r}")
    return np.arange(int(spec[0]), int(spec[1]))


def check_fits(indices: np.ndarray | None, n_features: int, spec: object, owner: str) -> None:
    """Refuse a slice that reaches past the observation (the skill excluded)."""
    if indices is not None and int(indices.max()) >= n_features:
        raise ValueError(f"{owner}: obs_slice {spec!r} reaches feature {int(indices.max())}, past the observation's "
                         f"{n_features} features (the skill excluded)")
