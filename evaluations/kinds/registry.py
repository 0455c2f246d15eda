"""The kinds of evaluators: the built-in ones, and those that installed packages register
under the entry-point group `promptlab.evaluators` (the entry point's name is the kind's
name; it points at a class or an object with validate_config and score).

Plugins are engineers' code, installed like any dependency; nothing typed into the database
is ever run. They are loaded once per process, on first use; a plugin that fails to load
is logged and listed by `plugin_errors()` and the other kinds keep working.
"""

import functools
import re
from dataclasses import dataclass
from importlib.metadata import entry_points

import structlog

from evaluations.kinds import deterministic
from evaluations.kinds.base import Kind
from evaluations.kinds.embedding import EmbeddingSimilarity
from evaluations.kinds.judge import LLMJudge
from promptlab.errors import Invalid

logger = structlog.get_logger(__name__)

GROUP = "promptlab.evaluators"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
BUILTINS: dict[str, Kind] = {**deterministic.KINDS, EmbeddingSimilarity.name: EmbeddingSimilarity(), LLMJudge.name: LLMJudge()}


@dataclass(frozen=True)
class PluginError:
    name: str
    target: str  # module:attribute
    error: str


@functools.cache
def _plugins() -> tuple[dict[str, Kind], tuple[PluginError, ...]]:
    loaded, errors = {}, []
    for entry in sorted(entry_points(group=GROUP), key=lambda entry: entry.name):
        try:
            if not NAME.match(entry.name):
                raise ValueError("a kind's name is lower-case letters, digits and underscores, at most 64")
            if entry.name in BUILTINS or entry.name in loaded:
                raise ValueError("another kind already has this name")
            target = entry.load()
            kind = target() if isinstance(target, type) else target
            missing = [method for method in ("validate_config", "score") if not callable(getattr(kind, method, None))]
            if missing:
                raise TypeError(f"it has no {' or '.join(missing)} method")
        except Exception as exc:  # a broken plugin must not take scoring down with it
            errors.append(PluginError(entry.name, entry.value, f"{type(exc).__name__}: {exc}"))
            logger.error("evaluations.plugin_failed", kind=entry.name, target=entry.value, error=str(exc))
            continue
        loaded[entry.name] = kind
        logger.info("evaluations.plugin_loaded", kind=entry.name, target=entry.value)
    return loaded, tuple(errors)


def kinds() -> dict[str, Kind]:
    """Every kind by name: built-ins, then plugins."""
    return {**BUILTINS, **_plugins()[0]}


def get(name: str) -> Kind:
    available = kinds()
    if name not in available:
        raise Invalid(f"Unknown evaluator kind {name!r}: choose one of {', '.join(sorted(available))}.", details={"kind": name})
    return available[name]


def plugin_errors() -> tuple[PluginError, ...]:
    return _plugins()[1]


def reload() -> None:
    """Look for plugins again (after installing one, and in tests)."""
    _plugins.cache_clear()
