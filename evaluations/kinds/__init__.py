"""Evaluator kinds: deterministic checks, embedding similarity, LLM-as-judge, and plugins.

A plugin package implements `validate_config(config, *, project) -> dict` and
`score(run: RunContext, config) -> Result` (raising ScoreError when it cannot score) and
registers under the entry-point group `promptlab.evaluators`; see registry.py.
"""

from evaluations.kinds.base import Kind, Result, RunContext, ScoreError
from evaluations.kinds.registry import get, kinds, plugin_errors, reload

__all__ = ["Kind", "Result", "RunContext", "ScoreError", "get", "kinds", "plugin_errors", "reload"]
