"""Dataset items' own assertions written as promptfoo writes them: the `__expected` cells of a
CSV and the {type, value, ...} objects of a JSONL line's `assert`, read into promptlab's shape
({kind, config, weight, metric, threshold, inverted}), and a cell written back on export.

experiments cannot import promptfoo, so evaluations.promptfoo registers these with
experiments.extensions at start-up. Reading uses the suite import's own mapping
(assertions.py), so a cell means the same in a dataset import as in a suite import. One
difference: a dataset import creates nothing, so the model-graded assertions (llm-rubric,
similar), which need a rubric prompt or an embedding model, are refused with the way to
import them.
"""

import json
from dataclasses import replace

from evaluations.promptfoo import assertions as pf
from experiments import extensions
from promptlab.errors import Invalid

# The evaluator kinds whose config is one `value`, by the promptfoo type that writes them.
_VALUE_TYPES = {kind: written for written, kind in pf.SIMPLE.items()}
_SCHEMA_TYPES = {kind: written for written, kind in pf.JSON_TYPES.items()}
_LIMITS = {"levenshtein": "max_distance", "latency": "max_ms", "cost": "max_usd"}  # written as `type(limit)`


def from_cell(text: str, where: str, threshold: float | None = None) -> dict:
    """An `__expected` cell (`contains: Paris`, `not-is-json`, a plain value is `equals`);
    `threshold` is the cell's `__config:__expected<N>:threshold`, as promptfoo applies it."""
    assertion = pf.assertion_from_cell(text, where=where)
    shown = " ".join(text.split())
    return _promptlab(assertion if threshold is None else replace(assertion, threshold=threshold),
                      shown if len(shown) <= 80 else shown[:80] + "…")  # fmt: skip


def from_dict(raw: dict, where: str) -> dict:
    """An assertion object of promptfoo's shape: {type, value, threshold, weight, metric}."""
    assertion = pf.assertion_from_dict(raw, where=where)
    return _promptlab(assertion, assertion.label())


def _promptlab(assertion: pf.Assertion, label: str) -> dict:
    """The assertion in promptlab's shape; `label` is how a refusal names it."""
    where = assertion.where
    try:
        mapped = pf.evaluator_for(assertion)
    except pf.Unsupported as exc:
        raise Invalid(f"{where}: {label!r} cannot be imported: {exc}.", details={"path": where}) from None
    if mapped.grader_use is not None:
        needs = "a rubric prompt and a judge model" if mapped.kind == "llm_judge" else "an embedding model"
        example = (
            '{"kind": "llm_judge", "config": {"rubric": "<a rubric prompt>"}}' if mapped.kind == "llm_judge"
            else '{"kind": "embedding_similarity", "config": {"endpoint": "<an embedding endpoint>", "value": "..."}}'
        )  # fmt: skip
        raise Invalid(
            f"{where}: {label!r} needs {needs}, which a dataset import does not create: import the file as a promptfoo "
            f"suite (manage.py import_promptfoo, or Import a promptfoo suite on the Experiments page), or write the "
            f"assertion in promptlab's shape, e.g. {example}.",
            details={"path": where},
        )
    return mapped.item_assertion()


def to_cell(assertion: dict, project) -> str | None:
    """The `__expected` cell that reads back as exactly this normalized assertion, or None when
    promptfoo's cell syntax cannot say all of it (a weight, a metric, regex flags, a value with
    commas in a list...): the export then writes the assertion as JSON."""
    cell = _cell(assertion)
    if cell is None:
        return None
    try:
        again = extensions.item_assertions_normalize(project=project, assertions=[from_cell(cell, "export")], where="export")
    except Invalid:
        return None
    return cell if again == [assertion] else None


def _cell(assertion: dict) -> str | None:
    kind, config = assertion.get("kind"), assertion.get("config") or {}
    negated = "not-" if assertion.get("inverted") else ""
    if kind in _VALUE_TYPES:
        value = config.get("value")
        if value is None:
            return None
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        return f"{negated}{_VALUE_TYPES[kind]}: {text}"
    if kind in _SCHEMA_TYPES:
        schema = f": {json.dumps(config['schema'], ensure_ascii=False)}" if "schema" in config else ""
        return f"{negated}{_SCHEMA_TYPES[kind]}{schema}"
    if kind in _LIMITS and _LIMITS[kind] in config:
        value = f": {config['value']}" if "value" in config else ""
        return f"{negated}{kind}({_number(config[_LIMITS[kind]])}){value}"
    return None


def _number(value) -> str:
    """As a cell's `type(threshold)` takes it: digits and a point, no exponent."""
    return format(value, "f").rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


READER = extensions.AssertionReader(from_cell=from_cell, from_dict=from_dict, to_cell=to_cell)
