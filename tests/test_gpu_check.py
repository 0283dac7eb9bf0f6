"""benchmarks/gpu_check.py: the prepared GPU script runs every path on CPU at tiny sizes (so a
lent GPU machine is never the first place it runs), reports each path, and a path that raises
is reported as failed while the others still run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.py"
PATHS = {"reward_rnd", "reward_icm", "reward_diayn", "reward_simhash", "llm_sample", "grpo_step", "drone_cnn",
         "sb3_ppo_naturecnn", "play_lmp", "play_gcbc", "play_lmp_pixels", "slim_update", "study_grpo", "study_dpo",
         "pearl_step", "llm_sft_step"}


def load_script() -> ModuleType:
    """The script as a module (benchmarks/ is not a package), to call ``main`` in-process."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_tiny_cpu_run_reports_every_path_ok(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # selfgym as installed: no PYTHONPATH
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["paths"]) == PATHS
    for name, row in report["paths"].items():
        assert row["ok"] and row["error"] is None, (name, row["error"], row["traceback"])
        assert row["seconds"] > 0 and row["first_s"] > 0 and len(row["repeats"]) == 1, (name, row)
        assert row["device"].startswith("cpu"), (name, row["device"])
    assert report["paths"]["grpo_step"]["dtype"] == "float32"  # fp32 on CPU; bf16 is CUDA's
    assert report["paths"]["llm_sample"]["info"]["model"] == "tiny random Llama"
    study = {name: report["paths"][name] for name in ("study_grpo", "study_dpo")}  # self_rewarding.py's rows, one iteration
    assert {name: (row["dtype"], row["info"]["row"]) for name, row in study.items()} == {
        "study_grpo": ("float32", "majority_vote_guard"), "study_dpo": ("float32", "temporal_dpo")}
    assert report["device"] == "cpu" and report["tiny"] and report["all_ok"]
    assert report["machine"]["torch"] and "--tiny" in report["command"]
    table = out.with_suffix(".md").read_text()
    assert all(f"| {name} | cpu" in table for name in PATHS), table
    assert all(f"| {name} |" in proc.stdout for name in PATHS)  # the table is printed too


def test_a_raising_path_is_reported_failed_and_the_others_still_run(tmp_path: Path, monkeypatch) -> None:
    gpu_check = load_script()
    real = gpu_check.paths

    def broken(device, sizes, stack):
        raise RuntimeError("planted failure")

    def with_broken_path(tiny: bool):
        table = real(tiny)
        return {"broken": broken, **{k: table[k] for k in ("reward_rnd", "reward_simhash")},
                "broken_step": lambda device, sizes, stack: (lambda: 1 / 0, {}), "drone_cnn": table["drone_cnn"]}

    monkeypatch.setattr(gpu_check, "paths", with_broken_path)
    out = tmp_path / "r.json"
    code = gpu_check.main(["--device", "cpu", "--tiny", "--out", str(out)])
    assert code == 1  # any failed path: a non-zero exit status for scripts and CI
    report = json.loads(out.read_text())
    assert list(report["paths"]) == ["broken", "reward_rnd", "reward_simhash", "broken_step", "drone_cnn"]
    rows = report["paths"]
    assert not rows["broken"]["ok"] and rows["broken"]["error"] == "RuntimeError: planted failure"
    assert "planted failure" in rows["broken"]["traceback"] and rows["broken"]["seconds"] is None
    assert not rows["broken_step"]["ok"] and rows["broken_step"]["error"].startswith("ZeroDivisionError")
    for name in ("reward_rnd", "reward_simhash", "drone_cnn"):  # before and after the failures
        assert rows[name]["ok"] and rows[name]["seconds"] > 0, rows[name]
    assert not report["all_ok"]
    assert "failed: RuntimeError: planted failure" in out.with_suffix(".md").read_text()


def test_refuses_cuda_without_a_gpu_and_unknown_paths(tmp_path: Path) -> None:
    gpu_check = load_script()
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="sees no CUDA device"):
            gpu_check.main(["--device", "cuda", "--out", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit, match="unknown path.*nope.*valid: reward_rnd"):
        gpu_check.main(["--device", "cpu", "--paths", "nope", "--out", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()
