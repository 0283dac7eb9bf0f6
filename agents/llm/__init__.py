"""LLM policies and the trainers that improve them from self-generated rewards.

``LLMPolicy`` (policy.py) wraps any transformers causal LM; ``grpo``/``rloo`` (grpo.py) and
``self_rewarding_dpo`` (dpo.py) are registered agents; default_model.py loads the offline
SmolLM2-135M-Instruct; tiny.py builds a tiny random Llama for tests.
"""
