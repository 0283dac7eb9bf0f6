"""Issue 22 item 4 on a machine without a GPU: benchmarks/self_rewarding.py with ``--device auto``
records where and in which dtype it ran, runs with a model of another architecture given by
path (a tiny random Qwen2), runs its GRPO and DPO rows with the policy in bfloat16 (the dtype
CUDA gets; on CPU here), refuses a bad device or model folder; benchmarks/gpu_check.py's study
paths run those rows through the study's own functions with such a model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("transformers")
pytest.importorskip("rliable")
sys.path.insert(0, str(REPO / "benchmarks"))
import self_rewarding  # noqa: E402

ROWS = ["majority_vote_guard", "temporal_dpo"]  # one GRPO row, one DPO row (self-judge, initial model's answers)


def save_tiny_qwen2(path: Path) -> str:
    """A tiny random Qwen2 (another architecture than the tiny Llama: attention biases, its own
    modelling code) with the byte tokenizer and ChatML template, saved like any local model."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from selfgym.llm.tiny import byte_tokenizer

    tok = byte_tokenizer()
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    Qwen2ForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory) -> str:
    return save_tiny_qwen2(tmp_path_factory.mktemp("tiny_qwen2"))


def study(model: str, out: Path, device: str = "auto") -> dict:
    self_rewarding.main(["--signals", *ROWS, "--reps", "20", "--families", "arithmetic:1", "--seeds", "1", "--iterations", "1",
                         "--heldout", "2", "--eval-samples", "1", "--group-size", "2", "--prompts", "1",
                         "--max-new-tokens", "3", "--train-batch-size", "2", "--model", model, "--device", device,
                         "--out", str(out)])
    return json.loads(out.read_text())


def test_auto_device_on_a_cpu_machine_runs_fp32_on_cpu_and_says_so(tiny_dir, tmp_path, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # what auto sees on this machine and in CI
    result = study(tiny_dir, tmp_path / "s.json")
    assert [(r["signal"], r["device"], r["dtype"]) for r in result["runs"]] == [(row, "cpu", "float32") for row in ROWS]
    assert "Ran on cpu float32;" in (tmp_path / "s.md").read_text()


def test_another_architecture_by_path_runs_the_grpo_and_dpo_rows(qwen_dir, tmp_path) -> None:
    result = study(qwen_dir, tmp_path / "q.json", device="cpu")
    assert not result["failed"], result["failed"]
    assert [r["signal"] for r in result["runs"]] == ROWS and result["config"]["model"] == qwen_dir
    assert all(r["greedy_after"] is not None and r["sampled_after"] is not None for r in result["runs"])


def test_rows_run_with_the_policy_in_bfloat16(qwen_dir, tmp_path, monkeypatch) -> None:
    """CUDA's dtype on CPU: bf16 base weights, LoRA adapters, judge and reference passes, losses."""
    import selfgym.agents.llm.trainer as trainer

    real = trainer.LLMPolicy

    def bf16_policy(*args, **kwargs):
        kwargs["dtype"] = "bfloat16"
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "LLMPolicy", bf16_policy)
    result = study(qwen_dir, tmp_path / "b.json", device="cpu")
    assert not result["failed"], result["failed"]
    assert [r["dtype"] for r in result["runs"]] == ["bfloat16"] * 2
    for run in result["runs"]:
        values = [v for m in run["iteration_metrics"] for v in m.values()]
        assert values and all(v == v and abs(v) != float("inf") for v in values), run["iteration_metrics"]


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--device", "gpu", "'gpu' is not a torch device; valid: auto, cpu, cuda"),
    ("--model", "/no/such/model", "'/no/such/model' is not a folder"),
])
def test_bad_device_or_model_is_refused_before_any_run(flag, value, message, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        self_rewarding.main(["--signals", "verifier", flag, value, "--out", str(tmp_path / "x.json")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_cuda_is_refused_when_torch_sees_none(tmp_path, capsys, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        self_rewarding.main(["--signals", "verifier", "--device", "cuda", "--out", str(tmp_path / "x.json")])
    assert "sees no CUDA device" in capsys.readouterr().err


def test_gpu_check_study_paths_run_a_model_given_by_path(qwen_dir, tmp_path) -> None:
    import torch

    from tests.test_gpu_check import load_script

    gpu_check = load_script()
    out = tmp_path / "g.json"
    assert gpu_check.main(["--device", "cpu", "--tiny", "--model", qwen_dir, "--paths", "study_grpo", "study_dpo",
                           "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["llm"] == qwen_dir and list(report["paths"]) == ["study_grpo", "study_dpo"]
    for name, row in (("study_grpo", "majority_vote_guard"), ("study_dpo", "temporal_dpo")):
        path = report["paths"][name]
        assert path["ok"], path["traceback"]
        assert (path["device"], path["dtype"], path["info"]["row"], path["info"]["model"]) == ("cpu", "float32", row, qwen_dir)
        auto = "auto" if not torch.cuda.is_available() else "cpu"  # auto where it picks this device: the study's default
        assert f"--device {auto}" in path["info"]["study_flags"]
        assert path["seconds"] > 0 and path["info"]["eval_s"] > 0
    assert report["paths"]["study_dpo"]["info"]["agent"] == "SelfRewardingDPOAgent"
    with pytest.raises(SystemExit, match="'/no/such' is not a folder"):
        gpu_check.main(["--device", "cpu", "--model", "/no/such", "--out", str(tmp_path / "x.json")])
