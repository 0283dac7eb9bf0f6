"""Seeded PlayTable trajectories stay bit-identical (speed work must not change what the env does).

``tests/data/play_table_trajectories.npz`` holds observations, rewards, reward components and
flags of contact-rich seeded rollouts (the play policy's drawer, door, button and block
primitives; the expert's push; random actions), recorded before the step was made faster.
Regenerate only for an intended change of the simulation, and say so in the commit:

    python tests/test_play_table_trajectories.py --write
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path

import numpy as np
import pytest

from selfgym.envs.play_table.env import PlayTableEnv
from selfgym.envs.play_table.primitives import PlayPolicy, ScriptedExpert

DATA = Path(__file__).resolve().parent / "data" / "play_table_trajectories.npz"
COMPONENTS = ("safety", "reach", "progress", "success")
# (name, env kwargs, policy, reset seed, steps)
CASES = (("play", {}, "play", 0, 300), ("drawer_random", {"task": "open_drawer"}, "random", 1, 150),
         ("push_expert", {"task": "push_to_target"}, "expert", 0, 120),
         ("joint_random", {"task": "grasp_lift", "control": "joint"}, "random", 2, 100))


def rollout(kwargs: dict, policy: str, seed: int, steps: int) -> dict[str, np.ndarray]:
    env = PlayTableEnv(**kwargs)
    obs, _ = env.reset(seed=seed)
    act = {"play": PlayPolicy(seed=seed).act, "expert": ScriptedExpert(kwargs.get("task", ""), seed=seed).act}.get(policy)
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {"obs": [obs], "reward": [], "components": [], "flags": []}
    for t in range(steps):
        action = act(obs) if act else rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        out["obs"].append(obs)
        out["reward"].append(reward)
        out["components"].append([info["reward_components"].get(k, np.nan) for k in COMPONENTS])
        out["flags"].append([info["is_success"], info["object_off_table"], terminated])
        if terminated:
            obs, _ = env.reset(seed=seed + 1000 + t)
    env.close()
    return {key: np.asarray(value) for key, value in out.items()}


def build() -> str:
    """The simulator build the bits belong to: pybullet's version and the CPU architecture."""
    return f"pybullet {importlib.metadata.version('pybullet')} on {platform.machine()}"


def record() -> dict[str, np.ndarray]:
    arrays = {"build": np.array(build())}
    for name, kwargs, policy, seed, steps in CASES:
        for key, value in rollout(kwargs, policy, seed, steps).items():
            arrays[f"{name}/{key}"] = value
    return arrays


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_seeded_trajectories_are_bit_identical_to_the_recorded_ones(case):
    stored = np.load(DATA)
    if str(stored["build"]) != build():
        pytest.skip(f"recorded with {stored['build']}, this is {build()}: bit-identity holds within one build only")
    name, kwargs, policy, seed, steps = case
    now = rollout(kwargs, policy, seed, steps)
    for key, value in now.items():
        ref = stored[f"{name}/{key}"]
        same = np.array_equal(value, ref, equal_nan=True)
        first = "" if same else f"; first difference at step {int(np.argwhere(value != ref)[0][0])}"
        assert same, f"{name}: {key} differ from the recording{first}"
    moved = np.abs(now["obs"][-1, 15:] - now["obs"][0, 15:]).max()
    assert policy == "random" or moved > 0.01  # the scripted cases do touch the scene


def test_float_rewrites_agree_with_the_array_formulas_at_the_edges():
    """The step computes the off-table flag and the joint penalty on Python floats; at the
    boundaries (a block exactly on a float32 table edge or one float32 step beside it, a joint
    exactly 0.1 rad from its limit or just inside) they equal the numpy expressions they replaced."""
    from selfgym.envs.play_table import layout as L
    from selfgym.envs.play_table.observation import SCENE_KEYS
    from selfgym.envs.play_table.scene import ARM_HIGH, ARM_LOW

    env = PlayTableEnv()
    obs, _ = env.reset(seed=0)
    s0 = obs[15:].copy()
    pos = np.array([np.arange(SCENE_KEYS[k].start, SCENE_KEYS[k].stop) for k in ("long_pos", "cube_pos")])

    def off_ref(s):
        b = s[pos]
        return bool(((b[:, 0] <= L.TABLE_X[0]) | (b[:, 0] >= L.TABLE_X[1]) | (b[:, 1] <= L.TABLE_Y[0])
                     | (b[:, 1] >= L.TABLE_Y[1]) | (b[:, 2] <= -0.02)).any())

    edges = [(0, L.TABLE_X[0]), (0, L.TABLE_X[1]), (1, L.TABLE_Y[0]), (1, L.TABLE_Y[1]), (2, -0.02)]
    seen = set()
    for block in (0, 1):
        for axis, bound in edges:
            b32 = np.float32(bound)
            for v in (np.nextafter(b32, np.float32(-1)), b32, np.nextafter(b32, np.float32(1)), np.float32(bound / 2)):
                s = s0.copy()
                s[pos[block, axis]] = v
                off = env._info(s, 0.0)["object_off_table"]
                assert off == off_ref(s), (block, axis, float(v))
                seen.add(off)
    assert seen == {True, False}

    for margin in (0.2, 0.1, np.nextafter(0.1, 0), 0.05, 0.0, -0.01):
        for at_high in (False, True):
            q = (ARM_HIGH - margin) if at_high else (ARM_LOW + margin)
            env._proprio[7:14] = q
            qq = env._proprio[7:14]
            ref = float(np.clip((0.1 - np.minimum(qq - ARM_LOW, ARM_HIGH - qq)) / 0.1, 0, 1).sum())
            got = env._joint_penalty()
            assert got == ref and np.signbit(got) == np.signbit(ref), (margin, at_high, got, ref)
    env.close()


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    DATA.parent.mkdir(exist_ok=True)
    np.savez_compressed(DATA, **record())
    print(f"wrote {DATA} ({DATA.stat().st_size} bytes)")
