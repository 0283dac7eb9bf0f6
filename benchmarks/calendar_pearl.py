"""CalendarConflict-v0: PEARL's Table 2 rows side by side on the same held-out users and rounds.

    OMP_NUM_THREADS=1 python benchmarks/calendar_pearl.py                          # the pre-registered run
    OMP_NUM_THREADS=1 python benchmarks/calendar_pearl.py --pilot --out calendar_pearl_pilot
    python benchmarks/calendar_pearl.py --model /path/to/Qwen3-4B --device auto   # a GPU, a larger model

The protocol (what is trained, for how long, on which users, and which comparisons are made) is
benchmarks/calendar_pearl_protocol.md, committed before any full run. Rows: random, zero-shot
LLM (hub_turns 0), LLM + StrategyHub (hub_turns 3), SFT (llm_sft), PEARL (pearl from the SFT run),
PPO, RecurrentPPO (ppo_lstm), the online preference learner. Every row plays the same first
``--eval-users`` test users of data_seed 0, the first ``--eval-rounds`` rounds of their N=104 year
(quarters, hence ERR, over those rounds). Reported per row: AER, ORD, ERR (pooled), per-user mean
AER/ORD/ERR with rliable's 95% bootstrap intervals over users (selfgym/compare.py), format-failure
rate, tokens per decision (LLM rows), training wall time per step and in total. The language model
is ``--model`` (default: SmolLM2-135M-Instruct, offline) on ``--device`` (auto: CUDA with bf16 when
present); where it ran is printed and stored. Writes benchmarks/results/<out>.{json,md}; run
folders go to ``--log-folder``.

Each row's line (its figures and training, or the error it crashed with) is appended to
benchmarks/results/<out>_rows.jsonl as it finishes, and the tables are rewritten after every row; a
crashed row does not stop the others (PEARL needs SFT's run), and a restart of the same command
skips the rows finished there. ``--tables-only`` writes the tables from that file;
``--smoke`` runs every row at the pilot's sizes into /tmp/selfgym_smoke/calendar_pearl (not results).

Two lanes, one core each (protocol amendment 2): ``--rows`` picks the rows a process runs, by key
(random, zero_shot, hub, sft_train, sft, pearl, ppo, ppo_lstm, learner). SFT's training is its own
record line (``sft_train``), so its evaluation (``sft``) can run in the other lane once it is
recorded, while ``pearl`` trains from it. Every process rebuilds the tables from the shared jsonl.

    OMP_NUM_THREADS=1 python benchmarks/calendar_pearl.py --rows sft_train,pearl
    OMP_NUM_THREADS=1 python benchmarks/calendar_pearl.py --rows random,zero_shot,hub,ppo,ppo_lstm,learner
    OMP_NUM_THREADS=1 python benchmarks/calendar_pearl.py --rows sft          # once sft_train is recorded
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfgym import runs
from selfgym.cli import train_main
from selfgym.compare import interval_estimates
from selfgym.envs.calendar.env import CalendarConflictEnv
from selfgym.envs.calendar.metrics import summarize
from selfgym.envs.text.spaces import as_text
from selfgym.evaluation import load_run
from selfgym.llm.policy import LLMPolicy

RESULTS = Path(__file__).resolve().parent / "results"
SMOKE = Path("/tmp/selfgym_smoke/calendar_pearl")  # --smoke writes here, never to benchmarks/results
ENV = "selfgym/CalendarConflict-v0"


# -- playing the test users -------------------------------------------------------------------------
def play_text(answer, users: list[int], rounds: int, hub_turns: int, text_style: str) -> dict[str, Any]:
    """Each user's year (N=104) in text mode for its first ``rounds`` rounds, users in lockstep;
    ``answer(prompts) -> (texts, completion token counts)`` is called on every pending user's prompt."""
    envs = [CalendarConflictEnv(obs_mode="text", split="test", hub_turns=hub_turns, text_style=text_style) for _ in users]
    obs = [as_text(env.reset(seed=0, options={"user_id": uid})[0]) for env, uid in zip(envs, users)]
    stats = {"format_failures": 0, "hub_calls": 0, "completion_tokens": 0, "decisions": 0}
    for _ in range(rounds):
        pending = list(range(len(envs)))
        while pending:
            texts, tokens = answer([obs[i] for i in pending])
            stats["completion_tokens"] += int(sum(tokens))
            still = []
            for i, text in zip(pending, texts):
                next_obs, _, _, _, info = envs[i].step(text)
                obs[i] = as_text(next_obs)
                if info["feedback"]["hub_step"]:
                    stats["hub_calls"] += 1
                    still.append(i)
                else:
                    stats["decisions"] += 1
                    stats["format_failures"] += int(not info["feedback"]["valid"])
            pending = still
    return episodes_report(envs, rounds) | stats


def play_structured(agent: Any, users: list[int], rounds: int) -> dict[str, Any]:
    """A structured-observation agent (PPO, RecurrentPPO, preference learner) on the same users and rounds."""
    envs = []
    for uid in users:
        env = CalendarConflictEnv(split="test")
        obs, _ = env.reset(seed=0, options={"user_id": uid})
        state, start = None, np.ones(1, dtype=bool)
        for _ in range(rounds):
            action, state = agent.predict(obs[None], state=state, episode_start=start, deterministic=True)
            start = np.zeros(1, dtype=bool)
            obs, _, _, _, _ = env.step(int(np.asarray(action).reshape(-1)[0]))
        envs.append(env)
    return episodes_report(envs, rounds) | {"format_failures": 0, "decisions": rounds * len(users)}


def episodes_report(envs: list[CalendarConflictEnv], rounds: int) -> dict[str, Any]:
    episodes = [{"user_id": e.data.user.user_id, "per_round_error": e.errors[:rounds].tolist(),
                 "per_round_ord": e.ords[:rounds].tolist()} for e in envs]
    out = summarize(episodes)
    for key in ("aer", "ord", "err"):
        per_user = np.array([[u[key]] for u in out["per_user"].values()])
        out[f"{key}_per_user_ci"] = interval_estimates(per_user, reps=2000, seed=0)
    return out


# -- the LLM rows ------------------------------------------------------------------------------------
def llm_answer(policy: LLMPolicy, max_new_tokens: int):
    def answer(prompts: list[str]) -> tuple[list[str], list[int]]:
        samples = policy.sample(prompts, greedy=True, max_new_tokens=max_new_tokens)
        return samples.texts, samples.lengths.tolist()

    return answer


def agent_answer(agent: Any, max_new_tokens: int):
    return llm_answer(agent.policy, max_new_tokens)


def train(args: list[str], log_folder: str, agent: str) -> tuple[Path, dict[str, Any]]:
    """train.py in this process; returns the run folder and its training time per step."""
    start = time.perf_counter()
    code = train_main(["--env", ENV, "--agent", agent, "-f", log_folder, "--no-final-eval", "--seed", "0", *args])
    if code:
        raise RuntimeError(f"train.py --agent {agent} failed with exit code {code}")
    run = runs.find_run(log_folder, agent, ENV)
    status = json.loads((run / "status.json").read_text())
    steps = max(int(status["num_timesteps"]), 1)
    return run, {"run": str(run), "train_s": float(status.get("train_seconds", time.perf_counter() - start)),
                 "steps": steps, "s_per_step": float(status.get("train_seconds", 0.0)) / steps}


# -- main --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="LLM: 'default' (SmolLM2-135M-Instruct) or a local folder")
    p.add_argument("--device", default="auto")
    p.add_argument("--eval-users", type=int, default=8, help="first N test users of data_seed 0 (15 in all)")
    p.add_argument("--eval-rounds", type=int, default=32, help="first R rounds of each test user's N=104 year")
    p.add_argument("--sft-steps", type=int, default=50)
    p.add_argument("--pearl-iterations", type=int, default=1, help="GRPO steps after SFT")
    p.add_argument("--pearl-group", type=int, default=8, help="G copies per GRPO step")
    p.add_argument("--pearl-rounds", type=int, default=20, help="N rounds of the training years")
    p.add_argument("--learner-steps", type=int, default=7280, help="preference learner: 70 training years")
    p.add_argument("--ppo-steps", type=int, default=100_000)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--pilot", action="store_true", help="tiny sizes, to check the script end to end (not results)")
    p.add_argument("--smoke", action="store_true", help=f"--pilot's sizes, everything into {SMOKE} (not results)")
    p.add_argument("--tables-only", action="store_true", help="no training: the tables from <out>_rows.jsonl")
    p.add_argument("--log-folder", default="logs/calendar_pearl")
    p.add_argument("--out", default="calendar_pearl")
    p.add_argument("--rows", default=",".join(ROW_KEYS), help=f"comma-separated keys, run in this order: {', '.join(ROW_KEYS)}")
    a = p.parse_args(argv)
    a.rows = [key.strip() for key in a.rows.split(",") if key.strip()]
    unknown = [key for key in a.rows if key not in ROW_KEYS]
    if unknown:
        p.error(f"unknown --rows {', '.join(unknown)}; valid: {', '.join(ROW_KEYS)}")
    results = RESULTS
    if a.smoke:
        a.pilot, results, a.log_folder = True, SMOKE, str(SMOKE / "logs")
    if a.pilot:
        a.eval_users, a.eval_rounds, a.sft_steps, a.pearl_iterations, a.ppo_steps = 2, 4, 2, 1, 2048
        a.pearl_group, a.pearl_rounds, a.learner_steps = 2, 2, 208
    from tune_bench import record_run

    record = results / f"{a.out}_rows.jsonl"
    finished = finished_lines(record)
    torch.set_num_threads(1)
    users = CalendarConflictEnv(split="test").user_ids[: a.eval_users]
    report: dict[str, Any] = {"command": "python benchmarks/calendar_pearl.py " + " ".join(sys.argv[1:] if argv is None else argv),
                              "device": None, "host": platform.node(), "model": a.model, "users": users,
                              "eval_rounds": a.eval_rounds, "load_before": os.getloadavg(), "pilot": a.pilot,
                              "rows": {}, "training": {}, "failed": {}}
    if a.tables_only:  # the rows ran under other commands (the lanes of protocol amendment 2)
        report["command"] += f" (tables rebuilt from {record.name}; each row ran as the protocol says)"
    merge_finished(report, finished)  # an earlier start's rows: kept, not rerun
    if finished:
        print(f"calendar_pearl: rows finished in {record} are kept: {', '.join(finished)}", flush=True)
    if not a.tables_only:
        run_rows(a, users, report, record, finished, record_run)
    write_report(report, results, a.out)
    print(markdown(report))
    if report["failed"]:
        raise SystemExit(f"calendar_pearl: {len(report['failed'])} rows failed (see {record}): {', '.join(report['failed'])}")
    return report


#: row -> the training entry it comes with (the row names that differ from it)
SFT_TRAINING = "SFT training"  # a record line without a table row: SFT's training, which two rows start from
TRAINED = {"PEARL (SFT then GRPO)": "PEARL", SFT_TRAINING: "SFT"}
ROWS = ("random", "zero-shot LLM", "LLM + StrategyHub", "SFT", "PEARL (SFT then GRPO)", "PPO", "RecurrentPPO",
        "preference learner")
#: --rows key -> record line name, in the protocol's order
ROW_KEYS = {"random": "random", "zero_shot": "zero-shot LLM", "hub": "LLM + StrategyHub", "sft_train": SFT_TRAINING,
            "sft": "SFT", "pearl": "PEARL (SFT then GRPO)", "ppo": "PPO", "ppo_lstm": "RecurrentPPO",
            "learner": "preference learner"}


def finished_lines(record: Path) -> dict[str, dict[str, Any]]:
    """Record line name -> its latest line, for the lines that finished (any process's, any start's)."""
    from tune_bench import recorded_runs

    return {name: line for (name,), line in recorded_runs(record, ("row",)).items() if line.get("returncode") == 0}


def merge_finished(report: dict[str, Any], finished: dict[str, dict[str, Any]]) -> None:
    """Put finished lines' rows and training entries into the report (another lane's included)."""
    for name, line in finished.items():
        if line.get("result") is not None:
            report["rows"][name] = line["result"]
        if line.get("training"):
            report["training"][TRAINED.get(name, name)] = line["training"]
        report["failed"].pop(name, None)
        report["device"], report["model"] = line.get("device", report["device"]), line.get("model", report["model"])


def run_rows(a: argparse.Namespace, users: list[int], report: dict[str, Any], record: Path, finished: dict,
             record_run) -> None:
    """Every row not in ``finished``, in the protocol's order; each row's line is recorded as it ends."""
    rows, training = report["rows"], report["training"]
    probe = LLMPolicy(a.model, device=a.device, max_new_tokens=a.max_new_tokens)
    where = str(probe.device) + (f" ({torch.cuda.get_device_name()})" if probe.device.type == "cuda" else "")
    report["device"], report["model"] = where, probe.name
    print(f"calendar_pearl: running on {where}, {probe.dtype}, model {probe.name}; test users {users}, "
          f"first {a.eval_rounds} rounds", flush=True)

    def row(name: str, fn) -> None:
        """fn() -> (evaluation, training entry or None); the row is skipped when an earlier start finished it."""
        if name in finished or ROW_KEYS_BY_NAME[name] not in a.rows:
            return
        start = time.perf_counter()
        line: dict[str, Any] = {"row": name, "device": where, "model": report["model"]}
        try:
            result, trained = fn()
            if trained:
                training[TRAINED.get(name, name)] = trained
            line.update(returncode=0, training=trained, result=None)
            if result is not None:
                rows[name] = {"eval_s": time.perf_counter() - start} | result  # a trained row times its evaluation itself
                line["result"] = r = rows[name]
                print(f"{name:32s} AER {r['aer']:.3f} ORD {r['ord']:.3f} ERR {r['err']:.3f} format failures "
                      f"{r['format_failures']}/{r['decisions']} ({r['eval_s']:.0f} s)", flush=True)
            else:
                print(f"{name}: trained in {trained['train_s']:.0f} s, {trained['run']}", flush=True)
        except Exception as error:  # recorded; the other rows go on (a rerun retries this one)
            report["failed"][name] = line["error"] = f"{type(error).__name__}: {error}"[-3000:]
            line["returncode"] = 1
            print(f"{name}: FAILED: {line['error']}", flush=True)
        line["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        record_run(record, line)
        merge_finished(report, finished_lines(record))  # the other lane's rows too
        write_report(report, record.parent, a.out)  # the table so far

    rng = np.random.default_rng(0)
    def random_answer(prompts: list[str]) -> tuple[list[str], list[int]]:  # a full random ranking: exact ORD
        rankings = [rng.permutation(5).tolist() for _ in prompts]
        return [json.dumps({"priority_ranking": r, "selected_event_to_accept": r[0]}) for r in rankings], [0] * len(prompts)

    row("random", lambda: (play_text(random_answer, users, a.eval_rounds, 0, "compact"), None))
    row("zero-shot LLM", lambda: (play_text(llm_answer(probe, a.max_new_tokens), users, a.eval_rounds, 0, "compact"), None))
    row("LLM + StrategyHub", lambda: (play_text(llm_answer(probe, a.max_new_tokens), users, a.eval_rounds, 3, "compact"),
                                      None))
    del probe
    probe = None
    common = ["--device", a.device, "-params", f"model:{a.model}"]  # LoRA etc.: hyperparams/llm_sft.yml, pearl.yml

    def evaluate_llm(run: Path) -> dict[str, Any]:
        start = time.perf_counter()
        _, model, _, _ = load_run(run)
        result = play_text(agent_answer(model, a.max_new_tokens), users, a.eval_rounds, 3, "compact")
        return result | {"eval_s": time.perf_counter() - start}

    def sft_run() -> Path:
        """The recorded SFT training's run folder (this lane's or the other's)."""
        merge_finished(report, finished_lines(record))
        run = training.get("SFT", {}).get("run")
        if not run or not (Path(run) / "config.yaml").exists():
            raise RuntimeError(f"this row starts from the SFT run, and there is none finished (SFT: {run}); "
                               f"run --rows sft_train first")
        return Path(run)

    def pearl() -> tuple[dict[str, Any], dict[str, Any]]:
        run, trained = train(["-n", str(a.pearl_iterations * a.pearl_group * a.pearl_rounds), *common,
                              f"init_run:{sft_run()}", f"group_size:{a.pearl_group}", f"train_rounds:{a.pearl_rounds}"],
                             a.log_folder, "pearl")
        trained["s_per_step"] = trained["train_s"] / a.pearl_iterations  # per GRPO step, not decision
        return evaluate_llm(run), trained

    def structured(train_args: list[str], agent: str) -> tuple[dict[str, Any], dict[str, Any]]:
        run, trained = train(train_args, a.log_folder, agent)
        start = time.perf_counter()
        _, model, _, _ = load_run(run)
        return play_structured(model, users, a.eval_rounds) | {"eval_s": time.perf_counter() - start}, trained

    row(SFT_TRAINING, lambda: (None, train(["-n", str(a.sft_steps), *common], a.log_folder, "llm_sft")[1]))
    row("SFT", lambda: (evaluate_llm(sft_run()), None))
    row("PEARL (SFT then GRPO)", pearl)
    row("PPO", lambda: structured(["-n", str(a.ppo_steps), "--device", "cpu"], "ppo"))
    row("RecurrentPPO", lambda: structured(["-n", str(a.ppo_steps), "--device", "cpu"], "ppo_lstm"))
    row("preference learner", lambda: structured(["-n", str(a.learner_steps)], "preference_learner"))


ROW_KEYS_BY_NAME = {name: key for key, name in ROW_KEYS.items()}


def write_report(report: dict[str, Any], results: Path, out: str) -> None:
    """<out>.json and .md from the rows finished so far (comparisons whose two rows exist), atomically."""
    from selfgym.runs import atomic_write

    rows = report["rows"]
    ordered = {name: rows[name] for name in ROWS if name in rows}
    rows.clear()
    rows.update(ordered)  # the protocol's order, in the same dict (the caller keeps adding rows to it)
    report["comparisons"] = {f"{key}: {a_} - {b_}": paired_difference(rows[a_], rows[b_], key)
                             for a_, b_, key in COMPARISONS if a_ in rows and b_ in rows}
    for row in report["rows"].values():
        row["tokens_per_decision"] = row.get("completion_tokens", 0) / max(row["decisions"], 1)
        row["format_failure_rate"] = row["format_failures"] / max(row["decisions"], 1)
    for entry in report["training"].values():  # the run's own speed figures, where its folder is at hand
        entry.update(run_speed(entry.get("run")))
    report["missing"] = [name for name in ROWS if name not in rows]
    report["load_after"] = os.getloadavg()
    results.mkdir(parents=True, exist_ok=True)
    atomic_write(results / f"{out}.json", json.dumps(report, indent=1) + "\n")
    atomic_write(results / f"{out}.md", markdown(report))


def run_speed(run: str | None) -> dict[str, float]:
    """An LLM run's sampling speed and rollout figures from its metrics.csv (last row): PEARL's
    sampled tokens per second (prompt encoding included), its rollout accuracy and format failures."""
    from selfgym.metrics import read_metrics

    path = Path(run or "") / "metrics.csv"
    if not run or not path.is_file():
        return {}
    rows = read_metrics(path)
    keys = {"time_tokens_per_s": "sampled_tokens_per_s", "rollout_decision_accuracy": "rollout_decision_accuracy",
            "rollout_format_failure_rate": "rollout_format_failure_rate", "rollout_hub_calls_per_round": "rollout_hub_calls_per_round",
            "train_loss": "last_train_loss"}
    return {out: float(rows[-1][key]) for key, out in keys.items() if rows and rows[-1].get(key) is not None}


#: The pre-registered comparisons (benchmarks/calendar_pearl_protocol.md): (row A, row B, metric).
COMPARISONS = [("PEARL (SFT then GRPO)", "SFT", "aer"), ("SFT", "zero-shot LLM", "aer"),
               ("LLM + StrategyHub", "zero-shot LLM", "aer"), ("RecurrentPPO", "PPO", "err")]


def paired_difference(a: dict[str, Any], b: dict[str, Any], key: str) -> dict[str, Any]:
    """Per-user A - B of ``key`` (the same users and rounds), mean with its 95% bootstrap interval over users."""
    users = sorted(set(a["per_user"]) & set(b["per_user"]))
    diffs = np.array([[a["per_user"][u][key] - b["per_user"][u][key]] for u in users])
    return interval_estimates(diffs, reps=2000, seed=0) | {"users": len(users)}


def _ci(row: dict[str, Any], key: str) -> str:
    ci = row[f"{key}_per_user_ci"]
    return f"{ci['mean']:.2f} [{ci['mean_ci'][0]:.2f}, {ci['mean_ci'][1]:.2f}]"


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# CalendarConflict-v0: PEARL's rows on {len(report['users'])} test users x first {report['eval_rounds']} rounds",
             "", f"`{report['command']}`", "",
             f"Ran on {report['device']}, model {report['model']}{' (PILOT: tiny sizes, not results)' if report['pilot'] else ''}. "
             "Per-user means with 95% bootstrap intervals over users (rliable); ERR pooled is the relative drop of the "
             "mean error from the first to the last quarter of the rounds played.", "",
             "| row | AER [95% CI] | ORD [95% CI] | ERR per user [95% CI] | ERR pooled | format failures | tokens / decision "
             "| train s / step (SFT: gradient, PEARL: GRPO, PPO: env step) | train s |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["rows"].items():
        t = report["training"].get(name.split(" (")[0], {})
        lines.append(f"| {name} | {_ci(r, 'aer')} | {_ci(r, 'ord')} | {_ci(r, 'err')} | {r['err']:.2f} | "
                     f"{r['format_failure_rate']:.2f} | {r['tokens_per_decision']:.1f} | "
                     f"{t.get('s_per_step', float('nan')):.3g} | {t.get('train_s', float('nan')):.0f} |")
    for name, t in report["training"].items():
        if "sampled_tokens_per_s" in t:
            lines += ["", f"{name} training: {t['steps']} decisions in {t['train_s']:.0f} s ({t['s_per_step']:.0f} s per GRPO step), "
                      f"{t['sampled_tokens_per_s']:.1f} sampled tokens/s (prompt encoding included), rollout decision "
                      f"accuracy {t.get('rollout_decision_accuracy', float('nan')):.3f}, format failures "
                      f"{t.get('rollout_format_failure_rate', float('nan')):.3f}, hub calls per round "
                      f"{t.get('rollout_hub_calls_per_round', float('nan')):.2f}."]
    lines += ["", "Pre-registered comparisons (per-user paired difference, mean [95% CI]; a difference is claimed "
              "only when the interval excludes 0):", ""]
    for name, c in report.get("comparisons", {}).items():
        lines.append(f"- {name}: {c['mean']:+.3f} [{c['mean_ci'][0]:+.3f}, {c['mean_ci'][1]:+.3f}] ({c['users']} users)")
    if report.get("missing"):
        lines += ["", f"Partial table: rows not finished: {', '.join(report['missing'])}"
                  + "".join(f"; {name} failed: {error[:200]}" for name, error in report.get("failed", {}).items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
