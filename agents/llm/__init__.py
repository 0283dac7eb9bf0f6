"""Trainers that improve LLM policies from self-generated rewards.

``grpo``/``rloo`` (grpo.py) and ``self_rewarding_dpo`` (dpo.py) are registered agents over
``selfgym.llm.policy.LLMPolicy`` (any transformers causal LM; the offline default model and the
tiny test model live in ``selfgym.llm`` too, below the reward modules that judge with them).
"""
