"""benchmarks/self_rewarding.py end to end on the tiny random Llama (one iteration per row):
the rows of each kind (GRPO on a reward, DPO, two-turn, the ceiling) run, the table has a verdict per signal and the ceiling beside it."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import REPO

pytest.importorskip("transformers")
pytest.importorskip("rliable")
sys.path.insert(0, str(REPO / "benchmarks"))
import self_rewarding  # noqa: E402


def run_study(tiny_dir, out, rows):
    self_rewarding.main(["--signals", *rows, "--reps", "50", "--families", "arithmetic:1", "--seeds", "1", "2", "--iterations", "1", "--heldout", "2",
                         "--eval-samples", "1", "--group-size", "2", "--prompts", "1", "--max-new-tokens", "3",
                         "--train-batch-size", "4", "--model", tiny_dir, "--device", "cpu", "--out", str(out)])
    return json.loads(out.read_text())


def test_study_rows_run_and_the_table_has_verdicts(tiny_dir, tmp_path) -> None:
    rows = ["majority_vote_guard", "temporal_dpo", "verifier"]
    out = tmp_path / "study.json"
    result = run_study(tiny_dir, out, rows)
    assert [r["signal"] for r in result["runs"]] == rows * 2
    summary = result["summary"]["majority_vote_guard"]
    assert summary["greedy"]["verdict"] in ("rose", "fell", "no change shown") and summary["greedy"]["seeds"] == 2
    assert "guard_entropy" in result["runs"][0]["iteration_metrics"][0]
    table = out.with_suffix(".md").read_text()
    assert "| verifier | yes |" in table and "| temporal_dpo | no |" in table


def test_merge_joins_per_seed_files(tiny_dir, tmp_path) -> None:
    for seed in ("1", "2"):
        self_rewarding.main(["--signals", "verifier", "--reps", "50", "--families", "arithmetic:1", "--seeds", seed,
                             "--iterations", "1", "--heldout", "2", "--eval-samples", "0", "--group-size", "2",
                             "--prompts", "1", "--max-new-tokens", "3", "--model", tiny_dir, "--device", "cpu",
                             "--out", str(tmp_path / f"s{seed}.json")])
    self_rewarding.main(["--merge", str(tmp_path / "s1.json"), str(tmp_path / "s2.json"), "--reps", "50",
                         "--out", str(tmp_path / "all.json")])
    merged = json.loads((tmp_path / "all.json").read_text())
    assert [r["seed"] for r in merged["runs"]] == [1, 2] and merged["summary"]["verifier"]["greedy"]["seeds"] == 2
    assert "sampled" not in merged["summary"]["verifier"]  # --eval-samples 0: greedy only


@pytest.mark.slow
def test_every_signal_runs(tiny_dir, tmp_path) -> None:
    result = run_study(tiny_dir, tmp_path / "all.json", list(self_rewarding.SIGNALS))
    assert [r["signal"] for r in result["runs"]] == list(self_rewarding.SIGNALS) * 2
    assert all(r["greedy_after"] is not None for r in result["runs"])


def test_unknown_signal_is_refused_naming_the_valid_ones(capsys) -> None:
    with pytest.raises(SystemExit):
        self_rewarding.main(["--signals", "vibes"])
    assert "majority_vote" in capsys.readouterr().err


def test_guard_verdict_follows_the_protocols_collapse_rule():
    def run(signal, seed, reward, accuracy, fired=()):
        return {"signal": signal, "family": "arithmetic:1", "seed": seed, "train_reward": reward, "train_accuracy": accuracy,
                "iteration_metrics": [{"guard_active": float(i + 1 in fired)} for i in range(len(reward))]}

    paid_for_wrong = run("majority_vote", 1, [0.2] * 7 + [0.8, 0.9, 1.0, 0.75, 0.8], [0.3] * 7 + [0.0, 0.1, 0.05, 0.2, 0.0])
    healthy = run("majority_vote_guard", 1, [0.2] * 7 + [0.8, 0.9, 1.0, 0.75, 0.8], [0.5] * 12, fired=(8, 12))
    assert self_rewarding.collapsed(paid_for_wrong) and not self_rewarding.collapsed(healthy)
    # accuracy just above the 0.10 bound is not a collapse
    assert not self_rewarding.collapsed(run("majority_vote", 2, [1.0] * 12, [0.11] * 12))
    text = "\n".join(self_rewarding.guard_lines([paid_for_wrong, healthy]))
    assert "the guard prevented collapse" in text and "| 8, 12 |" in text
    text = "\n".join(self_rewarding.guard_lines([healthy, run("majority_vote", 3, [0.5] * 12, [0.5] * 12)]))
    assert "no collapse to prevent" in text
    text = "\n".join(self_rewarding.guard_lines([paid_for_wrong, run("majority_vote_guard", 1, [1.0] * 12, [0.0] * 12)]))
    assert "did not prevent collapse" in text and "| none |" in text
