"""Grounded justifications: facts from the ranker's evidence, Jinja prompts, a vLLM client, a strict verifier."""
