"""Shared fixtures: run the CLIs in a subprocess, in a temporary folder, on one thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("OMP_NUM_THREADS", "1")


def cli_env(extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    paths = [str(REPO)] + ([str(extra_path)] if extra_path else [])
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


@pytest.fixture
def run_cli(tmp_path: Path):
    """run_cli("train.py", "--env", ...) -> CompletedProcess, run in tmp_path."""

    def run(script: str, *args: str, extra_path: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO / script), *args],
            cwd=tmp_path, env=cli_env(extra_path), capture_output=True, text=True, timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> str:
    """A folder holding the tiny random Llama and its byte tokenizer, loadable by path like any model."""
    pytest.importorskip("transformers")
    from selfgym.llm.tiny import byte_tokenizer, tiny_llama  # transformers is an optional extra

    path = tmp_path_factory.mktemp("tiny_llm")
    tok = byte_tokenizer()
    tiny_llama(len(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)
