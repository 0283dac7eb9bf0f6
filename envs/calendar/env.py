"""``CalendarConflict-v0``: one episode is one user's N conflict rounds; learn the hidden priorities.

Each step shows one conflict of M overlapping events plus the last W rounds (events, what the
agent chose, what the user wanted). The action accepts one event (``Discrete(M)``); a full
ranking (a permutation of 0..M-1, best first), a dict or PEARL's JSON text are accepted too.
After the step the correct event is revealed (``info["feedback"]["correct_event"]`` and the next
observation's history). Malformed actions are format failures with ``info["message"]``.

``obs_mode="structured"``: a flat float32 vector (layout in ``env.obs_layout``) for SB3.
``obs_mode="text"``: the prompt for an LLM policy, as a one-element object array (``BatchableText``,
so SB3's VecEnvs batch it; ``selfgym.envs.text.spaces.as_text`` gives the str) (``text_style="verbose"``, full sentences, or
``"compact"``, the same information in short lines for small models); text agents may call the StrategyHub
with ``{"action": "list"}``/``{"action": "update", ...}`` up to ``hub_turns`` times a round
(those steps do not advance the round and earn reward 0).
``disk_cache=True``: generated users are stored under ``$SELFGYM_CACHE/calendar`` and read back by
every later process (about 30x faster than generating; envs/calendar/store.py).
"""

from __future__ import annotations

import string
from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np

from selfgym.envs.calendar import text as textmod
from selfgym.envs.calendar.generate import SPLITS, WEEK, UserData, make_user_data, split_users
from selfgym.envs.calendar.hub import StrategyHub
from selfgym.envs.calendar.metrics import episode_metrics, expected_ord, ord_score
from selfgym.envs.calendar.schema import N_FEATURES, N_PRINCIPLES, ROLE_NAMES
from selfgym.envs.calendar.store import load_user_data
from selfgym.envs.text.spaces import BatchableText, as_text, text_obs

REWARD_MODES = ("decision", "pearl")


def curriculum_weights(t: int, n: int) -> tuple[float, float]:
    """PEARL's (lambda_r, lambda_i) at round t of n: 0.5 t/n and 0.5 (1 - t/n)."""
    i = t / n
    return 0.5 * i, 0.5 * (1.0 - i)


@lru_cache(maxsize=1024)
def _cached_user_data(seed: int, user_id: int, n: int, m: int, margin: float, split: str, disk: bool) -> UserData:
    if disk:
        return load_user_data(seed, user_id, n, m, margin, split)
    return make_user_data(seed, user_id, n, m, margin, split)


class CalendarConflictEnv(gym.Env):
    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, n_events: int = 5, n_rounds: int = 104, window: int = 5, obs_mode: str = "structured",
                 split: str = "train", n_users: int = 100, data_seed: int = 0, users: list[int] | None = None,
                 margin: float = 0.1, feedback_stats: bool = True, hub_turns: int = 3, reward: str = "decision",
                 format_coef: float = 0.5, decision_coef: float = 1.0, text_style: str = "verbose",
                 disk_cache: bool = True, render_mode: str | None = None) -> None:
        if obs_mode not in ("structured", "text"):
            raise ValueError(f"obs_mode must be 'structured' or 'text', got {obs_mode!r}")
        if text_style not in textmod.TEXT_STYLES:
            raise ValueError(f"text_style must be one of {textmod.TEXT_STYLES}, got {text_style!r}")
        if text_style != "verbose" and obs_mode != "text":
            raise ValueError(f"text_style={text_style!r} needs obs_mode='text' (got obs_mode={obs_mode!r})")
        self.text_style, self.disk_cache = text_style, bool(disk_cache)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if reward not in REWARD_MODES:
            raise ValueError(f"reward must be one of {REWARD_MODES}, got {reward!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        if n_events < 2 or n_rounds < 1 or window < 0:
            raise ValueError(f"need n_events >= 2, n_rounds >= 1, window >= 0; got {n_events}, {n_rounds}, {window}")
        self.m, self.n, self.w = int(n_events), int(n_rounds), int(window)
        self.obs_mode, self.split, self.data_seed, self.margin = obs_mode, split, int(data_seed), float(margin)
        self.feedback_stats, self.hub_turns, self.reward_mode = bool(feedback_stats), int(hub_turns), reward
        self.format_coef, self.decision_coef = float(format_coef), float(decision_coef)
        self.render_mode = render_mode
        self.user_ids = list(users) if users is not None else split_users(n_users, self.data_seed)[split]
        if not self.user_ids:
            raise ValueError(f"no users in split {split!r}")
        self.hub = StrategyHub()
        self._build_layout()
        self.action_space = gym.spaces.Discrete(self.m) if obs_mode == "structured" else \
            BatchableText(textmod.MAX_ANSWER_CHARS, charset=string.printable)
        if obs_mode == "structured":
            self.observation_space = gym.spaces.Box(-1.0, 1.0, (self.obs_dim,), np.float32)
        else:
            self.observation_space = BatchableText(60000, charset=string.printable, shape=(1,))
        self.data: UserData | None = None

    # -- layout of the structured observation ---------------------------------------------------------
    def _build_layout(self) -> None:
        m, f = self.m, N_FEATURES
        self.slot_static = m * f + m  # a past round: event features, then the correct event (one-hot)
        self.slot_size = self.slot_static + m + 1  # then the agent's choice (one-hot), then "slot used"
        layout, pos = {}, 0
        for name, size in (("current", m * f), ("history", self.w * self.slot_size),
                           ("stats", N_PRINCIPLES if self.feedback_stats else 0), ("role", len(ROLE_NAMES)),
                           ("progress", 1)):
            layout[name] = (pos, pos + size)
            pos += size
        self.obs_layout: dict[str, tuple[int, int]] = layout
        self.obs_dim = pos

    # -- users ------------------------------------------------------------------------------------------
    def user_data(self, user_id: int) -> UserData:
        """The user's generated data: memoised per process, and (``disk_cache``) read from the on-disk
        cache every process shares (envs/calendar/store.py), so a user is generated once per machine."""
        return _cached_user_data(self.data_seed, int(user_id), self.n, self.m, self.margin, self.split, self.disk_cache)

    # -- gym API --------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        uid = (options or {}).get("user_id")
        if uid is None:
            uid = self.user_ids[int(self.np_random.integers(len(self.user_ids)))]
        self.data = self.user_data(int(uid))
        d = self.data
        self._hist_static = np.concatenate([d.feats.reshape(self.n, -1), np.eye(self.m, dtype=np.float32)[d.winners]], 1)
        g = d.feats[:, :, :N_PRINCIPLES]
        onehot = np.eye(self.m, dtype=bool)[d.winners]
        losers_mean = (g.sum(1) - g[onehot]) / (self.m - 1)
        self._diffs = g[onehot] - losers_mean  # (N, K): winner minus mean loser, per principle
        self._role = np.eye(len(ROLE_NAMES), dtype=np.float32)[ROLE_NAMES.index(d.user.role)]
        self.t = 0
        self.chosen = np.full(self.n, -1, dtype=np.int64)
        self.errors = np.zeros(self.n, dtype=np.float32)
        self.ords = np.zeros(self.n, dtype=np.float32)
        self._diff_sum = np.zeros(N_PRINCIPLES, dtype=np.float32)
        self.hub.reset()
        self._turns = 0
        self._hub_used = False
        self._tool_result = ""
        return self._obs(), {"user_id": d.user.user_id, "role": d.user.role, "split": self.split}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self.data is None:
            raise RuntimeError("call reset() before step()")
        if self.t >= self.n:
            raise RuntimeError("the episode is over (all rounds decided); call reset()")
        if self.obs_mode == "text":
            action = as_text(action)  # a str inside a one-element array (a VecEnv row), or np.str_
        hub_request = textmod.is_hub_call(action) if isinstance(action, (str, dict)) else None
        if hub_request is not None and self._turns < self.hub_turns:
            return self._hub_step(hub_request)
        if hub_request is not None:
            decision = textmod.Decision(False, message=f"StrategyHub turn limit ({self.hub_turns} calls per round) "
                                                       "exceeded; a decision was due")
        else:
            decision = textmod.parse_decision(action, self.m)
        t, winner = self.t, int(self.data.winners[self.t])
        r_format = float(decision.valid)
        r_decision = float(decision.valid and decision.accept == winner)
        if not decision.valid:
            r_rank = 0.0
        elif decision.ranking is not None:
            r_rank = ord_score(decision.ranking, winner)
        else:
            r_rank = expected_ord(decision.accept, winner, self.m)
        r_hub = float(self._hub_used)
        lam_r, lam_i = curriculum_weights(t + 1, self.n)
        if self.reward_mode == "pearl":
            reward = self.format_coef * r_format + self.decision_coef * r_decision + lam_r * r_rank + lam_i * r_hub
        else:
            reward = r_decision
        self.chosen[t] = decision.accept if decision.valid else -1
        self.errors[t], self.ords[t] = 1.0 - r_decision, r_rank
        self._diff_sum += self._diffs[t]
        self.t += 1
        self._turns, self._hub_used, self._tool_result = 0, False, ""
        terminated = self.t >= self.n
        info: dict[str, Any] = {
            "reward_components": {"format": r_format, "decision": r_decision, "ranking": r_rank, "hub_use": r_hub},
            "is_success": bool(r_decision),
            "message": decision.message,  # why the action was a format failure ("" when valid)
            # per-round bookkeeping, nested so evaluate.py does not average it as a metric
            "feedback": {"round": t + 1, "n_rounds": self.n, "valid": decision.valid, "accepted": int(self.chosen[t]),
                         "correct_event": winner, "hub_step": False},
        }
        if terminated:  # flat numbers: evaluate.py reports every numeric final-step info key
            info.update(episode_metrics(self.errors, self.ords))
            q = max(1, self.n // 4)
            for k, lo in enumerate((0, q, self.n // 2, self.n - q)):
                info[f"error_q{k + 1}"] = float(self.errors[lo:lo + q].mean())
            info["user_id"] = self.data.user.user_id
            info["per_round_error"] = self.errors.tolist()
            info["per_round_ord"] = self.ords.tolist()
        return self._obs(), float(reward), terminated, False, info

    def _hub_step(self, request: dict[str, Any]) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        result = self.hub.call(request)
        self._turns += 1
        self._hub_used = self._hub_used or result.ok
        self._tool_result = result.message
        info = {"reward_components": {"format": float(result.ok), "decision": 0.0, "ranking": 0.0,
                                      "hub_use": float(result.ok)},
                "is_success": False, "message": "" if result.ok else result.message, "hub_result": result.message,
                "feedback": {"round": self.t + 1, "n_rounds": self.n, "valid": result.ok, "accepted": -1,
                             "correct_event": -1, "hub_step": True}}
        return self._obs(), 0.0, False, False, info

    # -- observations -----------------------------------------------------------------------------------
    def _obs(self) -> Any:
        return self._structured_obs() if self.obs_mode == "structured" else text_obs(self.render_text())

    def _structured_obs(self) -> np.ndarray:
        obs = np.zeros(self.obs_dim, dtype=np.float32)
        lo, hi = self.obs_layout["current"]
        if self.t < self.n:
            obs[lo:hi] = self.data.feats[self.t].ravel()  # type: ignore[union-attr]
        pos = self.obs_layout["history"][0]
        for j in range(min(self.w, self.t)):
            r = self.t - 1 - j
            obs[pos:pos + self.slot_static] = self._hist_static[r]
            if self.chosen[r] >= 0:
                obs[pos + self.slot_static + self.chosen[r]] = 1.0
            obs[pos + self.slot_size - 1] = 1.0
            pos += self.slot_size
        if self.feedback_stats:
            lo, hi = self.obs_layout["stats"]
            obs[lo:hi] = self._diff_sum / max(self.t, 1)
        lo, hi = self.obs_layout["role"]
        obs[lo:hi] = self._role
        obs[-1] = self.t / self.n
        return obs

    def render_text(self) -> str:
        d = self.data
        assert d is not None
        t = self.t
        events = d.rounds[t].events if t < self.n else None
        hist = [(d.rounds[r].events, int(self.chosen[r]), int(d.winners[r])) for r in range(max(0, t - self.w), t)]
        anchor_week = (events[0].start // WEEK) if events else None
        upcoming = [e for e in d.calendar if anchor_week is not None and e.start // WEEK == anchor_week][:12]
        render = textmod.render_compact if self.text_style == "compact" else textmod.render
        return render(d.user, t, self.n, events, hist, upcoming, self.hub.render(), self.hub_turns - self._turns,
                      self._tool_result)

    def render(self) -> Any:
        if self.render_mode is None or self.data is None:
            return None
        txt = self.render_text()
        if self.render_mode == "ansi":
            return txt
        import cv2

        lines = [ln[:110] for ln in txt.splitlines()[-40:]]
        img = np.full((16 * 40 + 16, 880, 3), 255, dtype=np.uint8)  # fixed size, for videos
        for i, ln in enumerate(lines):
            cv2.putText(img, ln, (6, 16 + 16 * i), cv2.FONT_HERSHEY_PLAIN, 0.9, (20, 20, 20), 1, cv2.LINE_AA)
        return img
