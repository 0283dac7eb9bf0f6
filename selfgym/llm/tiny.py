"""A tiny randomly initialised Llama with a byte-level tokenizer and a ChatML template.

Built entirely offline (no download), in well under a second: for unit tests and smoke runs
(``LLMPolicy(model="tiny")`` is not offered on purpose; call ``tiny_policy()``).
"""

from __future__ import annotations

from typing import Any

from selfgym.llm.policy import LLMPolicy

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|pad|>", "<|im_start|>", "<|im_end|>"]


def byte_tokenizer(chat_template: str | None = CHATML) -> Any:
    """A byte-level tokenizer (256 byte tokens + 3 specials, no merges)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<|pad|>", eos_token="<|im_end|>", bos_token="<|im_start|>")
    tok.add_special_tokens({"additional_special_tokens": SPECIALS})
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def tiny_llama(vocab_size: int, seed: int = 0, hidden: int = 32, layers: int = 2, context: int = 2048) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context, tie_word_embeddings=True,
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    return LlamaForCausalLM(config)


def tiny_policy(seed: int = 0, chat_template: str | None = CHATML, **kwargs: Any) -> Any:
    """An ``LLMPolicy`` over a tiny random Llama (CPU, float32 unless told otherwise)."""
    tok = byte_tokenizer(chat_template)
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("max_new_tokens", 16)
    kwargs.setdefault("use_chat_template", chat_template is not None)
    return LLMPolicy(tiny_llama(len(tok), seed), tok, **kwargs)
