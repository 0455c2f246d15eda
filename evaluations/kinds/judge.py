"""LLM-as-judge: a rubric prompt of the project, rendered with the run, answered by a judge
model as structured JSON {"score", "reasoning"}; the score is put on 0..1 by the scale.

The rubric is pinned to a version when the evaluator is saved (the latest, unless one is
given), so an evaluator version always means one rubric text; editing the rubric and then
the evaluator (a new version) is how a changed rubric re-scores. An answer that is not
that JSON, or a score outside the scale, is an errored score, never a zero.
"""

from collections.abc import Callable

from evaluations.kinds.base import Result, RunContext, ScoreError, check_endpoint, check_keys, find_endpoint, number
from promptlab.errors import Invalid, NotFound
from promptlab.llm import estimates, gateway
from promptlab.llm.models import ModelEndpoint
from prompts import selectors
from prompts.models import Prompt
from prompts.rendering import render_version

VARIABLES = ("output", "expected", "input", "vars", "metadata")
DEFAULT_SCALE = [1, 5]
DEFAULT_PASS = 0.5  # of the normalized score: 3 and up on a 1 to 5 scale
ANSWER_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "judgement",
        "schema": {
            "type": "object",
            "properties": {"score": {"type": "number"}, "reasoning": {"type": "string"}},
            "required": ["score", "reasoning"],
            "additionalProperties": False,
        },
    },
}


class LLMJudge:
    name = "llm_judge"
    call_name = "judge"  # what its calls are called in a forecast: "20 judge calls"
    description = (
        'A judge model grades the output with the rubric prompt "rubric" (pinned to "rubric_version"), on "scale" '
        f"(default 1 to 5), answering {{score, reasoning}}. The rubric may use {', '.join(VARIABLES)}."
    )

    def validate_config(self, config: dict, *, project) -> dict:
        config = check_keys(config, kind=self.name, required=("rubric",), optional=("rubric_version", "endpoint", "scale"))
        prompt = Prompt.objects.filter(project=project, name=config["rubric"]).first() if isinstance(config["rubric"], str) else None
        if prompt is None:
            raise Invalid(f"{self.name}: the project has no prompt named {config['rubric']!r} to use as the rubric.")
        if "rubric_version" in config:
            number(config, "rubric_version", kind=self.name, minimum=1, integer=True)
        try:
            record = selectors.prompt_version(prompt=prompt, version=config.get("rubric_version"))
        except NotFound as exc:
            raise Invalid(f"{self.name}: {exc.message}") from None
        config["rubric_version"] = record.version
        unknown = sorted((set(record.used_variables) | {spec["name"] for spec in record.variables or []}) - set(VARIABLES))
        if unknown:
            raise Invalid(
                f"{self.name}: the rubric {prompt.name!r} v{record.version} uses variables the judge does not provide: "
                f"{', '.join(unknown)} (available: {', '.join(VARIABLES)})."
            )
        if "endpoint" in config:
            check_endpoint(config, "endpoint", kind=self.name)
        config["scale"] = _scale(config.get("scale", DEFAULT_SCALE), self.name)
        return config

    def score(self, run: RunContext, config: dict) -> Result:
        record, endpoint = _rubric(config, run.project_id)
        completion = gateway.complete(endpoint=endpoint, messages=_messages(record, run), params=_params(record))
        low, high = config["scale"]
        score, reasoning = completion.data["score"], completion.data["reasoning"]
        if not low <= score <= high:
            raise ScoreError(
                f"The judge answered {score:g}, outside the scale {low:g} to {high:g}: {reasoning}",
                kind="invalid_output", cost_usd=completion.cost,
            )  # fmt: skip
        value = (score - low) / (high - low)
        return Result(
            value=value, passed=value >= DEFAULT_PASS, reason=f"{score:g} of {low:g} to {high:g}: {reasoning}",
            cost_usd=completion.cost, latency_ms=completion.latency_ms,
        )  # fmt: skip

    def estimator(self, config: dict, *, project_id: int) -> Callable[[RunContext], estimates.CallEstimate]:
        """The most one judge call on a run can cost: the rubric as it would be sent, and an answer
        at the rubric's max_tokens (else the judge model's longest)."""
        record, endpoint = _rubric(config, project_id)
        answer_tokens = estimates.answer_tokens(endpoint, _params(record))
        return lambda run: estimates.CallEstimate(
            endpoint, estimates.prompt_tokens(endpoint, messages=_messages(record, run)), answer_tokens
        )


def _rubric(config: dict, project_id: int):
    """The pinned rubric version and the endpoint that judges with it."""
    prompt = Prompt.objects.filter(project_id=project_id, name=config["rubric"]).first()
    if prompt is None:
        raise ScoreError(f"The rubric prompt {config['rubric']!r} no longer exists.", kind="no_rubric")
    try:
        record = selectors.prompt_version(prompt=prompt, version=config["rubric_version"])
    except NotFound as exc:
        raise ScoreError(exc.message, kind="no_rubric") from None
    endpoint = find_endpoint(config.get("endpoint")) or ModelEndpoint.objects.filter(pk=record.endpoint_id).first()
    if endpoint is None:
        raise ScoreError("The judge's model endpoint no longer exists.", kind="no_endpoint")
    return record, endpoint


def _messages(record, run: RunContext) -> list[dict]:
    available = {"output": run.output, "expected": run.expected, "input": run.input, "vars": run.vars, "metadata": run.metadata}
    wanted = set(record.used_variables) | {spec["name"] for spec in record.variables or []}
    rendered = render_version(record, {name: value for name, value in available.items() if name in wanted})
    return rendered.messages or [{"role": "user", "content": rendered.text}]


def _params(record) -> dict:
    return {**(record.params or {}), "response_format": ANSWER_FORMAT}


def _scale(scale, kind: str) -> list:
    valid = (
        isinstance(scale, list) and len(scale) == 2
        and all(isinstance(end, (int, float)) and not isinstance(end, bool) for end in scale) and scale[0] < scale[1]
    )  # fmt: skip
    if not valid:
        raise Invalid(f'{kind}: "scale" must be [lowest, highest] with lowest < highest, e.g. [1, 5]; not {scale!r}.')
    return scale
