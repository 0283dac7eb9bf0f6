"""Shared pieces of the language-model agents on CalendarConflict-v0 (``llm_sft``, ``pearl``).

* ``calendar_settings``: the settings of the env the trainer was given (a VecEnv), so the agents
  can make their own envs on the same users, rounds and prompt style;
* ``gold_answer``: the answer PEARL's SFT baseline is trained on (the true ranking, best first);
* ``check_prompt_lengths``: the over-long-prompt error, raised before any training step;
* ``load_init_run``: a policy's weights from another run, refused when the run's agent or model
  is not one this run can start from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from selfgym import runs
from selfgym.envs.calendar.env import CalendarConflictEnv
from selfgym.llm.policy import LLMPolicy

#: Env attributes copied into the agents' own envs (constructor argument -> attribute).
_SETTINGS = {"n_events": "m", "n_rounds": "n", "window": "w", "data_seed": "data_seed", "margin": "margin",
             "hub_turns": "hub_turns", "text_style": "text_style", "feedback_stats": "feedback_stats",
             "disk_cache": "disk_cache", "reward": "reward_mode", "format_coef": "format_coef",
             "decision_coef": "decision_coef"}


def calendar_settings(venv: Any, agent: str) -> dict[str, Any]:
    """The CalendarConflict constructor arguments of ``venv``'s first env, plus its users.

    Refuses any other env, and the structured observation mode, naming what to pass instead.
    """
    try:
        obs_mode = venv.get_attr("obs_mode", indices=[0])[0]
        values = {arg: venv.get_attr(attr, indices=[0])[0] for arg, attr in _SETTINGS.items()}
        users = list(venv.get_attr("user_ids", indices=[0])[0])
    except AttributeError as exc:
        raise TypeError(f"agent {agent!r} trains on selfgym/CalendarConflict-v0 in text mode; this env is not it ({exc})") from exc
    if obs_mode != "text":
        raise ValueError(f"agent {agent!r} needs CalendarConflict's text observations: pass --env-kwargs obs_mode:text "
                         f"(got obs_mode={obs_mode!r})")
    return values | {"users": users}


def make_env(settings: dict[str, Any], **overrides: Any) -> CalendarConflictEnv:
    """A text-mode CalendarConflict env with ``settings`` (as ``calendar_settings`` returns them)."""
    kwargs = {k: v for k, v in settings.items() if k in _SETTINGS} | {"users": settings["users"]} | overrides
    return CalendarConflictEnv(obs_mode="text", **kwargs)


def true_ranking(scores: np.ndarray) -> list[int]:
    """Event ids by the user's hidden score, best first (ties, never within ``margin``, by id)."""
    return [int(i) for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")]


def gold_answer(scores: np.ndarray) -> str:
    """The correct JSON answer of a round: the true ranking and its first event."""
    ranking = true_ranking(scores)
    return json.dumps({"priority_ranking": ranking, "selected_event_to_accept": ranking[0]})


def check_prompt_lengths(policy: LLMPolicy, prompts: list[str], answer_tokens: int, what: str,
                         settings: dict[str, Any] | None = None) -> int:
    """The longest prompt's token count; a ValueError naming it and the context limit when a prompt
    plus ``answer_tokens`` does not fit (before any training step, not in the middle of a run).
    The advice names only the levers ``settings`` (the env's, as ``calendar_settings`` gives them)
    has not pulled already."""
    texts = [policy.render(p) for p in prompts]
    lengths = [len(ids) for ids in policy.tokenizer(texts, add_special_tokens=False)["input_ids"]]
    longest = int(np.argmax(lengths)) if lengths else 0
    need = (lengths[longest] if lengths else 0) + int(answer_tokens)
    if need > policy.context_length:
        settings = settings or {}
        levers = [] if settings.get("text_style") == "compact" else ["--env-kwargs text_style:compact"]
        levers.append(f"a smaller window (window {settings['window']})" if "window" in settings else "a smaller window")
        if settings.get("hub_turns", 1):
            levers.append(f"fewer hub turns (hub_turns {settings['hub_turns']})" if "hub_turns" in settings else "fewer hub turns")
        raise ValueError(
            f"{what}: prompt {longest} is {lengths[longest]} tokens, plus {answer_tokens} answer tokens = {need}, over the "
            f"context window of {policy.context_length} tokens of model {policy.name!r}. Use "
            f"{', '.join(levers)}, or a model with a longer context.")
    return max(lengths, default=0)


def load_init_run(run_dir: str | Path, agent: str, model: str, lora: Any, accepted_agents: tuple[str, ...]) -> dict[str, Any]:
    """The policy weights (``LLMPolicy.trainable_state``) of the run at ``run_dir``: its final model,
    else its last checkpoint. Refused, naming both sides, when that run's agent is not in
    ``accepted_agents`` or its model or LoRA setting differs from this run's."""
    run_dir = Path(run_dir).expanduser()
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{agent}: init_run {str(run_dir)!r} is not a run folder (no config.yaml)")
    config = runs.read_yaml(config_path)
    other_agent = config.get("agent")
    hp = config.get("hyperparams") or {}
    if other_agent not in accepted_agents:
        raise ValueError(f"{agent}: init_run {str(run_dir)!r} is a run of agent {other_agent!r}; "
                         f"{agent} starts only from a run of {' or '.join(map(repr, accepted_agents))}")
    other_model = hp.get("model", "default")
    if str(other_model) != str(model):
        raise ValueError(f"{agent}: init_run {str(run_dir)!r} trained model {other_model!r}, but this run's model is "
                         f"{model!r}; give the same model (or start from the raw model without init_run)")
    if (hp.get("lora") or None) != (lora or None):
        raise ValueError(f"{agent}: init_run {str(run_dir)!r} used lora={hp.get('lora')!r}, this run lora={lora!r}; "
                         "the weights only fit the same setting")
    state, _ = runs.load_checkpoint(runs.model_folder(run_dir))
    return state["agent"]["policy"]
