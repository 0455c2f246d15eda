"""promptfoo assertions: read from a config (or a CSV `__expected` cell) and mapped to the
evaluator that checks the same thing.

| promptfoo | evaluator kind | config |
|---|---|---|
| equals, contains, icontains, starts-with, regex | same name (`starts_with`) | value |
| contains-any/-all, icontains-any/-all | `contains_any`... | value (list or comma text) |
| is-json, contains-json | `is_json`, `contains_json` | schema from the value |
| levenshtein | `levenshtein` | value, max_distance = threshold or 5, binary (scored 1 or 0, as promptfoo) |
| latency, cost | `latency`, `cost` | max_ms / max_usd = threshold |
| similar | `embedding_similarity` | value, endpoint; evaluator threshold = threshold |
| llm-rubric | `llm_judge` | a rubric prompt; evaluator threshold = threshold |

`not-` is the evaluator's `inverted`; `weight` its weight (0: it always passes, as in promptfoo);
`metric` the metric it reports under. Each check scores as promptfoo scores the assertion, so a
test's weighted score and threshold give promptfoo's verdict. Any other type, or an option that
runs code (transform, rubricPrompt...), is Unsupported with the reason, and the importer lists
it as skipped.
"""

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from evaluations.promptfoo.providers import CHAT, EMBEDDING
from promptlab.errors import Invalid

SIMPLE = {
    "equals": "equals", "contains": "contains", "icontains": "icontains", "starts-with": "starts_with", "regex": "regex",
    "contains-any": "contains_any", "contains-all": "contains_all", "icontains-any": "icontains_any", "icontains-all": "icontains_all",
}  # fmt: skip
JSON_TYPES = {"is-json": "is_json", "contains-json": "contains_json"}
LIST_TYPES = {"contains-any", "contains-all", "icontains-any", "icontains-all"}
OPTIONS = {"type", "value", "threshold", "weight", "metric", "provider"}
UNSUPPORTED_OPTIONS = {
    "transform": "it transforms the output with code first",
    "contextTransform": "it builds its context with code",
    "rubricPrompt": "it replaces the grading prompt",
    "config": "it passes config to custom code",
}
# promptfoo's assertion types, for reading `__expected` cells as it does (an unknown prefix is
# the value of an `equals`).
KNOWN_TYPES = sorted(
    {*SIMPLE, *JSON_TYPES, "levenshtein", "latency", "cost", "similar", "llm-rubric", "javascript", "python", "ruby", "webhook",
     "rouge-n", "bleu", "gleu", "meteor", "classifier", "factuality", "model-graded-factuality", "model-graded-closedqa",
     "answer-relevance", "context-recall", "context-relevance", "context-faithfulness", "conversation-relevance", "perplexity",
     "perplexity-score", "is-valid-openai-function-call", "is-valid-openai-tools-call", "is-valid-function-call", "moderation",
     "is-xml", "contains-xml", "is-sql", "contains-sql", "is-html", "contains-html", "is-refusal", "g-eval", "pi", "finish-reason",
     "word-count", "select-best", "max-score", "human", "trace-span-count", "tool-call-f1", "ends-with", "search-rubric"},
    key=len, reverse=True,
)  # fmt: skip
_CELL = re.compile(rf"^(not-)?({'|'.join(map(re.escape, KNOWN_TYPES))})(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$")
_CELL_THRESHOLD_TYPES = {"answer-relevance", "classifier", "context-faithfulness", "context-recall", "context-relevance", "cost",
                         "latency", "levenshtein", "perplexity-score", "perplexity", "rouge-n", "similar", "starts-with"}  # fmt: skip
CELL_SIMILAR_THRESHOLD = 0.8  # promptfoo's default for `similar` written in a CSV cell
CELL_THRESHOLD = 0.75  # and for the other types above


class Unsupported(Exception):
    """promptlab has no evaluator for this assertion; the message says why."""


@dataclass(frozen=True)
class Assertion:
    type: str  # as written: "not-contains"
    value: Any = None
    threshold: float | None = None
    weight: float = 1.0
    metric: str | None = None
    provider: Any = None  # the grading model of similar / llm-rubric
    options: tuple[str, ...] = ()  # options that run code; they make the assertion unsupported
    where: str = ""
    problem: str = ""  # why it cannot be imported, found while reading it

    @property
    def inverted(self) -> bool:
        return self.type.startswith("not-")

    @property
    def base(self) -> str:
        return self.type.removeprefix("not-")

    def as_promptfoo(self) -> dict:
        """The assertion as promptfoo writes it (the `assertion` of a component result)."""
        out = {"type": self.type}
        for key in ("value", "threshold", "metric"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.weight != 1:
            out["weight"] = self.weight
        return out

    def label(self) -> str:
        value = "" if self.value is None else self.value if isinstance(self.value, str) else json.dumps(self.value)
        value = value if len(value) <= 60 else value[:60] + "…"
        extras = [f"{key} {getattr(self, key)}" for key in ("threshold", "metric") if getattr(self, key) is not None]
        extras += [f"weight {self.weight:g}"] if self.weight != 1 else []
        return f"{self.type}{': ' + value if value else ''}{' (' + ', '.join(extras) + ')' if extras else ''}"


@dataclass(frozen=True)
class Mapped:
    """The evaluator that checks an assertion. Model-graded kinds still need their model
    (`grader_use`, from `grader`) and llm_judge its rubric prompt (`rubric`): the importer adds them."""

    kind: str
    config: dict = field(default_factory=dict)
    threshold: float | None = None
    inverted: bool = False
    weight: float = 1.0
    metric: str = ""
    grader_use: str | None = None
    rubric: str | None = None

    def item_assertion(self) -> dict:
        """The check as a dataset item's own assertion (experiments.models.DatasetItem.assertions)."""
        return {"kind": self.kind, "config": self.config, "weight": self.weight, "metric": self.metric,
                "threshold": self.threshold, "inverted": self.inverted}  # fmt: skip


def _number(value, where: str, key: str, *, minimum: float | None = None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid(f"{where}.{key}: must be a number, not {value!r}.", details={"key": f"{where}.{key}"})
    if minimum is not None and value < minimum:
        raise Invalid(f"{where}.{key}: must be at least {minimum:g}, not {value!r}.", details={"key": f"{where}.{key}"})
    return value


def assertion_from_dict(raw, *, where: str, root: dict | None = None) -> Assertion:
    """An assertion object of a config or test file; a {$ref: '#/...'} points into the config."""
    if isinstance(raw, dict) and isinstance(raw.get("$ref"), str):
        raw = _resolve_ref(raw["$ref"], root or {}, where)
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str) or not raw["type"].strip():
        raise Invalid(f"{where}: an assertion is a mapping with a type, such as {{type: contains, value: Paris}}.", details={"key": where})  # fmt: skip
    metric = raw.get("metric")
    return Assertion(
        type=raw["type"].strip(), value=raw.get("value"), threshold=_number(raw.get("threshold"), where, "threshold"),
        weight=_number(raw.get("weight", 1), where, "weight", minimum=0), metric=None if metric is None else str(metric),
        provider=raw.get("provider"), options=tuple(sorted(key for key in raw if key in UNSUPPORTED_OPTIONS)), where=where,
    )  # fmt: skip


def _resolve_ref(ref: str, root: dict, where: str):
    if not ref.startswith("#/"):
        raise Invalid(f"{where}: $ref {ref!r} must point into the config (#/assertionTemplates/<name>).", details={"key": where})
    node = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise Invalid(f"{where}: $ref {ref!r} points at nothing in the config.", details={"key": where})
        node = node[part]
    return node


def assertion_from_cell(text: str, *, where: str) -> Assertion:
    """A CSV `__expected` cell read as promptfoo reads it: `type:value`, `type(threshold):value`,
    `not-type:value`, `grade:`/`llm-rubric:` rubrics, `fn:`/`javascript:`/`python:` code, or
    else the value of an `equals`."""
    text = text.strip()
    for prefix, kind in (("javascript:", "javascript"), ("fn:", "javascript"), ("eval:", "javascript"), ("python:", "python")):
        if text.startswith(prefix):
            return Assertion(type=kind, value=text[len(prefix) :].strip(), where=where)
    if text.startswith("file://") and text.endswith((".js", ".ts", ".py")):
        return Assertion(type="python" if text.endswith(".py") else "javascript", value=text, where=where)
    for prefix in ("grade:", "llm-rubric:"):
        if text.startswith(prefix):
            return Assertion(type="llm-rubric", value=text[len(prefix) :], where=where)
    match = _CELL.match(text)
    if match is None:
        return Assertion(type="equals", value=text, where=where)
    negated, base, threshold, value = match.groups()
    kind = f"{negated or ''}{base}"
    if base in LIST_TYPES:
        return Assertion(type=kind, value=[part.strip() for part in value.split(",")] if value else value, where=where)
    if base in JSON_TYPES:
        return Assertion(type=kind, value=value, where=where)
    if base in _CELL_THRESHOLD_TYPES:
        default = CELL_SIMILAR_THRESHOLD if base == "similar" else CELL_THRESHOLD
        return Assertion(type=kind, value=value.strip() if value else value, threshold=float(threshold) if threshold else default, where=where)  # fmt: skip
    return Assertion(type=kind, value=value.strip() if value else value, where=where)


def evaluator_for(assertion: Assertion) -> Mapped:
    """The evaluator checking the assertion, or Unsupported saying why there is none."""
    if assertion.problem:
        raise Unsupported(assertion.problem)
    if assertion.options:
        option = assertion.options[0]
        raise Unsupported(f"its {option} option is not supported ({UNSUPPORTED_OPTIONS[option]})")
    base, value = assertion.base, assertion.value
    common = {"inverted": assertion.inverted, "weight": float(assertion.weight), "metric": assertion.metric or ""}
    if assertion.weight == 0 and not assertion.inverted:
        # promptfoo passes an assertion of weight 0 whatever it finds: a threshold of 0 does too.
        common["threshold"] = 0.0
    if base in SIMPLE:
        if value is None or value == "" or value == []:
            raise Unsupported(f"{base} needs a value")
        return Mapped(SIMPLE[base], {"value": value}, **common)
    if base in JSON_TYPES:
        return Mapped(JSON_TYPES[base], {} if value in (None, "") else {"schema": value}, **common)
    if base == "levenshtein":
        if not isinstance(value, str) or not value:
            raise Unsupported("levenshtein needs a text value")
        # promptfoo's `threshold || 5`: a missing or 0 threshold is 5; distances are whole numbers.
        return Mapped("levenshtein", {"value": value, "max_distance": math.floor(assertion.threshold or 5), "binary": True}, **common)
    if base in ("latency", "cost"):
        if assertion.threshold is None:
            raise Unsupported(f"without a threshold promptfoo only records the {base} as a metric")
        key = "max_ms" if base == "latency" else "max_usd"
        return Mapped(base, {key: assertion.threshold}, **common)
    if base in ("similar", "similar:cosine"):
        if not isinstance(value, str) or not value.strip():
            raise Unsupported("similar is imported with one text value (a list of values is not supported)")
        common.setdefault("threshold", assertion.threshold)
        return Mapped("embedding_similarity", {"value": value}, grader_use=EMBEDDING, **common)
    if base == "llm-rubric":
        if not isinstance(value, str) or not value.strip():
            raise Unsupported("llm-rubric is imported with a text rubric")
        common.setdefault("threshold", assertion.threshold)
        return Mapped("llm_judge", {"scale": [0, 1]}, grader_use=CHAT, rubric=value, **common)
    if base == "assert-set":
        raise Unsupported("assertion sets are not supported")
    raise Unsupported(f"promptfoo's {base} assertion has no promptlab evaluator")
