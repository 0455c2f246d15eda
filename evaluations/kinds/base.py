"""What every evaluator kind (built-in or plugin) is: it checks its config when an evaluator
is saved, and scores one run from a RunContext."""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from promptlab.errors import Invalid
from prompts import rendering


@dataclass(frozen=True)
class RunContext:
    """What a kind may look at: the run's answer and its dataset item, never the database."""

    run_id: int
    project_id: int
    output: str
    expected: str = ""  # the dataset item's expected output ("" when it has none)
    vars: dict = field(default_factory=dict)  # the dataset item's variables
    metadata: dict = field(default_factory=dict)
    input: str = ""  # the last user message the model was sent
    latency_ms: float | None = None
    cost_usd: Decimal | None = None
    cached: bool = False


def user_input(messages: list) -> str:
    """What a RunContext calls `input`: the text of the last user message sent."""
    users = [m.get("content") for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
    last_user = users[-1] if users else ""
    if isinstance(last_user, list):  # content parts
        last_user = " ".join(part.get("text", "") for part in last_user if isinstance(part, dict))
    return last_user or ""


@dataclass(frozen=True)
class Result:
    value: float  # 0 (worst) to 1 (best)
    passed: bool
    reason: str = ""
    cost_usd: Decimal | None = None  # what scoring itself cost (a judge's or an embedding's call)
    latency_ms: float | None = None


class ScoreError(Exception):
    """The run could not be scored (no expected value, an unparsable judge answer...): the
    score is recorded as errored with this message, never as a failure or a zero."""

    def __init__(self, message: str, *, kind: str = "unscorable", cost_usd: Decimal | None = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.cost_usd = cost_usd


@runtime_checkable
class Kind(Protocol):
    """A kind of evaluator. Plugins implement these two methods (and may set `description`).

    A kind that calls a model to score (judge, embedding) also has `call_name` ("judge") and
    `estimator(config, *, project_id)`: a function of a RunContext giving what one scoring call
    can cost at most (a promptlab.llm.estimates.CallEstimate). Experiments' budgets hold it before
    each call and their forecasts count it; a kind without one is taken to cost nothing."""

    def validate_config(self, config: dict, *, project) -> dict:
        """The normalized config, or Invalid saying what is wrong (the parser's own message
        for a regex or a JSON schema)."""

    def score(self, run: RunContext, config: dict) -> Result:
        """Score one run; raise ScoreError (or let a gateway error through) when it cannot."""


# --- Helpers for kinds' configs ----------------------------------------------------------------


def check_keys(config: Any, *, kind: str, required: tuple = (), optional: tuple = ()) -> dict:
    """The config as a dict with only known keys and every required one, else Invalid."""
    if not isinstance(config, dict):
        raise Invalid(f"The {kind} config must be a JSON object.")
    unknown = sorted(set(config) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join([*required, *optional]) or "none"
        raise Invalid(f"Unknown {kind} config keys: {', '.join(unknown)} (allowed: {allowed}).")
    missing = [key for key in required if key not in config]
    if missing:
        raise Invalid(f"The {kind} config needs {', '.join(repr(key) for key in missing)}.")
    return dict(config)


def number(config: dict, key: str, *, kind: str, minimum: float | None = None, integer: bool = False):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise Invalid(f"{kind}: {key!r} must be {'a whole number' if integer else 'a number'}, not {value!r}.")
    if minimum is not None and value < minimum:
        raise Invalid(f"{kind}: {key!r} must be at least {minimum:g}, not {value!r}.")
    return value


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_template(value: Any, *, kind: str) -> None:
    """A templated value ({{ var }}) must parse now, so a typo is caught on save."""
    for text in value if isinstance(value, list) else [value]:
        if is_template(text):
            try:
                rendering.parse(text, f"{kind} value")
            except Invalid as exc:
                raise Invalid(exc.message) from None


def render_value(value: Any, run: RunContext) -> Any:
    """A string value with {{ ... }} is rendered with the dataset item's variables, as
    promptfoo renders assertion values with the test's vars."""
    if isinstance(value, list):
        return [render_value(item, run) for item in value]
    if not is_template(value):
        return value
    try:
        return rendering.render_template(value, run.vars, project_id=run.project_id)
    except Invalid as exc:
        raise ScoreError(f"The value could not be rendered with the item's variables: {exc.message}", kind="render") from None


def expected_value(config: dict, run: RunContext) -> Any:
    """The config's "value" (rendered with the item's variables) or else the item's expected output."""
    if "value" in config:
        return render_value(config["value"], run)
    if run.expected == "":
        raise ScoreError(
            'Nothing to compare with: the evaluator has no "value" and the dataset item no expected output.',
            kind="no_expected",
        )
    return run.expected


def find_endpoint(name: str | None):
    """The model endpoint of the catalog with this name, or None."""
    from promptlab.llm.models import ModelEndpoint

    return ModelEndpoint.objects.filter(name=name).first() if name else None


def check_endpoint(config: dict, key: str, *, kind: str) -> None:
    name = config[key]
    endpoint = find_endpoint(name) if isinstance(name, str) else None
    if endpoint is None:
        raise Invalid(f"{kind}: {key!r} must name a model endpoint of the catalog; there is none named {name!r}.")
    if not endpoint.enabled:
        raise Invalid(f"{kind}: the model endpoint {name!r} is disabled.")
