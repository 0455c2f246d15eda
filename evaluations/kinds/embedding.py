"""Embedding similarity: the cosine of the embeddings of the output and of the expected text,
computed by an embedding endpoint of the catalog through the gateway."""

import math
from collections.abc import Callable

from evaluations.kinds.base import (
    Result,
    RunContext,
    ScoreError,
    check_endpoint,
    check_keys,
    check_template,
    expected_value,
    find_endpoint,
)
from promptlab.errors import Invalid
from promptlab.llm import estimates, gateway

DEFAULT_PASS = 0.75  # promptfoo's default threshold for `similar`


class EmbeddingSimilarity:
    name = "embedding_similarity"
    call_name = "embedding"  # what its calls are called in a forecast: "20 embedding calls"
    description = (
        'Cosine similarity of the output and the value (or the expected output), embedded by "endpoint". '
        f"Passes at {DEFAULT_PASS} unless the evaluator has a threshold."
    )

    def validate_config(self, config: dict, *, project) -> dict:
        config = check_keys(config, kind=self.name, required=("endpoint",), optional=("value",))
        check_endpoint(config, "endpoint", kind=self.name)
        if "value" in config:
            if not isinstance(config["value"], str) or not config["value"].strip():
                raise Invalid(f'{self.name}: "value" must be a non-empty text.')
            check_template(config["value"], kind=self.name)
        return config

    def score(self, run: RunContext, config: dict) -> Result:
        endpoint = _endpoint(config)
        expected = str(expected_value(config, run))
        if not run.output.strip():
            raise ScoreError("The output is empty: there is nothing to embed.", kind="empty_output")
        embeddings = gateway.embed(endpoint=endpoint, texts=[run.output, expected])
        cosine = cosine_similarity(*embeddings.vectors)
        return Result(
            value=min(1.0, max(0.0, cosine)),
            passed=cosine >= DEFAULT_PASS,
            reason=f"Cosine similarity {cosine:.3f} to the expected text.",
            cost_usd=embeddings.cost,
            latency_ms=embeddings.latency_ms,
        )

    def estimator(self, config: dict, *, project_id: int) -> Callable[[RunContext], estimates.CallEstimate]:
        """What one embedding call on a run costs: the output and the expected text, no answer."""
        endpoint = _endpoint(config)
        def estimate(run: RunContext) -> estimates.CallEstimate:
            texts = (run.output, str(expected_value(config, run)))
            return estimates.CallEstimate(endpoint, sum(estimates.prompt_tokens(endpoint, text=text) for text in texts), 0)

        return estimate


def _endpoint(config: dict):
    endpoint = find_endpoint(config["endpoint"])
    if endpoint is None:
        raise ScoreError(f"The embedding endpoint {config['endpoint']!r} no longer exists.", kind="no_endpoint")
    return endpoint


def cosine_similarity(a: list[float], b: list[float]) -> float:
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    if not norms:
        raise ScoreError("An embedding is all zeros: similarity is undefined.", kind="invalid_output")
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms
