"""Text environments for LLM policies: TextReasoning-v0 (reasoning.py), its task families and
exact verifiers (tasks.py), answer extraction (extract.py) and batchable Text spaces (spaces.py)."""
