"""The one way promptlab calls a model: playground, experiments, judges and the invoke API
all go through `complete` (or `embed`), with LiteLLM underneath.

The gateway owns retries: it retries transient failures with capped, jittered backoff
(honouring Retry-After) up to the endpoint's max_retries, and LiteLLM's and the OpenAI
client's own retries are off. Callers must not retry a GatewayError again; a transient one
carries `retry_after` for a caller that wants to reschedule. Every call holds a slot of
the endpoint's shared rate and concurrency limits and reports to its circuit breaker.
LiteLLM is imported on the first call, so processes that never call a model don't pay
for it.
"""

import functools
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import Any

import structlog
from django.conf import settings

from promptlab.errors import Invalid
from promptlab.llm import catalog, limits, outbound, single_flight
from promptlab.llm.errors import RAW_BODY_BYTES, GatewayError, PermanentError, classify
from promptlab.llm.models import ModelEndpoint
from promptlab.llm.params import validate_params

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal | None  # USD billed for this call: 0 when served from the cache, None when the price is unknown
    latency_ms: float  # of the attempt that answered
    cached: bool = False
    attempts: int = 1
    data: Any = None  # the parsed JSON when a JSON response_format was asked for


def answer_fields(result: Completion) -> dict:
    """What a call's row keeps of an answer: experiment runs, playground and API calls alike."""
    return {
        "output": result.text, "finish_reason": result.finish_reason, "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens, "cost_usd": result.cost, "latency_ms": result.latency_ms,
        "attempts": result.attempts, "cached": result.cached,
    }  # fmt: skip


def failure_fields(exc: "GatewayError") -> dict:
    """What a call's row keeps of a failed call: the provider's message and kind, the
    attempts, and whatever was billed for an answer that came back unusable."""
    billed = {field: exc.details[field] for field in ("prompt_tokens", "completion_tokens", "output") if field in exc.details}
    return {"error": exc.message, "error_kind": exc.kind, "attempts": exc.details.get("attempts", 1), "cost_usd": exc.details.get("cost"), **billed}


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int
    cost: Decimal | None
    latency_ms: float
    attempts: int = 1


@functools.cache
def _litellm():
    # The bundled price list, never a download at import time.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    from promptlab.llm import demo_model

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    outbound.guard_litellm(litellm)  # only allowed hosts at public (or listed) addresses, no redirects
    # LiteLLM logs each call at INFO through handlers of its own; the gateway logs one
    # structured line per call instead, and LiteLLM's warnings go through ours.
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).setLevel(logging.WARNING)
    demo_model.register()
    return litellm


def prepared_litellm():
    """LiteLLM, imported and configured (offline price list, demo model): for its token
    counter, and to pay its seconds of start-up before holding work."""
    return _litellm()


def complete(*, endpoint: ModelEndpoint, messages: list[dict], params: dict | None = None, cache_response: bool | None = None,
             cache_scope: str = "") -> Completion:  # fmt: skip
    """Call the endpoint's model with the messages.

    `cache_response` None caches when temperature is 0; True or False decides. `cache_scope`
    keeps apart answers to identical calls that must stay distinct (an experiment's repeats are
    samples: each keeps its own). A cached answer is returned with cached=True and cost 0, so
    nothing is billed twice; identical calls that may be cached and are made at the same moment
    share one call in flight (promptlab.llm.single_flight), so it is sent and billed once.
    """
    params = validate_params(params)
    _check_messages(messages)
    credentials = catalog.endpoint_credentials(endpoint)
    use_cache = settings.GATEWAY_RESPONSE_CACHE_SECONDS > 0 and (
        cache_response if cache_response is not None else params.get("temperature") == 0
    )
    if not use_cache:
        return _complete(endpoint, messages, params, credentials)
    stored, called = single_flight.shared(
        _cache_key(endpoint, messages, params, cache_scope), lambda: asdict(_complete(endpoint, messages, params, credentials)),
        keep_seconds=settings.GATEWAY_RESPONSE_CACHE_SECONDS, lock_seconds=_in_flight_seconds(endpoint),
    )  # fmt: skip
    if called:
        return Completion(**stored)
    logger.info("gateway.cache_hit", endpoint=endpoint.name)
    return replace(Completion(**stored), cached=True, cost=Decimal(0), attempts=0)


def _complete(endpoint: ModelEndpoint, messages: list[dict], params: dict, credentials: dict) -> Completion:
    litellm = _litellm()
    response, latency_ms, attempts = _call(
        endpoint,
        lambda: litellm.completion(
            model=endpoint.model, messages=messages, timeout=endpoint.timeout_seconds,
            num_retries=0, max_retries=0, **credentials, **params,
        ),  # fmt: skip
    )
    completion = _completion_from(endpoint, response, params, latency_ms, attempts)
    logger.info(
        "gateway.completed", endpoint=endpoint.name, attempts=attempts, latency_ms=round(latency_ms, 1),
        prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
        cost=str(completion.cost),
    )  # fmt: skip
    return completion


def _in_flight_seconds(endpoint: ModelEndpoint) -> int:
    """How long a call in flight holds its lock at most: its attempts, each of which may first
    wait for room under the endpoint's limits, with a margin (a dead process's lock runs out)."""
    waits = settings.GATEWAY_LIMIT_WAIT_SECONDS * (endpoint.max_retries + 1)
    return int(limits.attempts_seconds(endpoint) + waits) + 30


def embed(*, endpoint: ModelEndpoint, texts: list[str]) -> Embeddings:
    """Embed the texts with the endpoint's embedding model."""
    credentials = catalog.endpoint_credentials(endpoint)
    litellm = _litellm()
    response, latency_ms, attempts = _call(
        endpoint,
        lambda: litellm.embedding(
            model=endpoint.model, input=texts, timeout=endpoint.timeout_seconds, max_retries=0, **credentials
        ),
    )
    try:
        vectors = [item["embedding"] for item in sorted(response.data, key=lambda item: item["index"])]
    except (KeyError, TypeError) as exc:
        raise PermanentError(f"invalid response: no embeddings in the answer ({exc})", kind="invalid_response") from None
    if len(vectors) != len(texts):
        raise PermanentError(f"invalid response: {len(vectors)} embeddings for {len(texts)} texts", kind="invalid_response")
    prompt_tokens = getattr(response.usage, "prompt_tokens", 0) or 0
    cost = catalog.cost_usd(endpoint, prompt_tokens)
    return Embeddings(vectors=vectors, prompt_tokens=prompt_tokens, cost=cost, latency_ms=latency_ms, attempts=attempts)


ROLES = {"system", "user", "assistant", "tool"}


def _check_messages(messages) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid("A model call needs at least one message.")
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise Invalid(f"Message {number} needs a role: one of {', '.join(sorted(ROLES))}.", details={"message": number})
        if not isinstance(message.get("content"), (str, list)):
            raise Invalid(f"Message {number} needs a content (text or a list of parts).", details={"message": number})


def _call(endpoint: ModelEndpoint, send: Callable[[], Any]) -> tuple[Any, float, int]:
    """Send with the endpoint's limits, breaker and retries; return (response, latency_ms, attempts)."""
    attempts = 0
    while True:
        attempts += 1
        breaker = limits.breaker_check(endpoint)
        try:
            with limits.endpoint_slot(endpoint):
                started = time.perf_counter()
                response = send()
                latency_ms = (time.perf_counter() - started) * 1000
        except GatewayError:
            raise  # the gateway's own refusals (busy, circuit open) are final for this call
        except Exception as exc:
            error = classify(exc)
            error.details["attempts"] = attempts
            logger.warning("gateway.call_failed", endpoint=endpoint.name, attempt=attempts, kind=error.kind, status=error.status)
            if not error.transient:
                raise error from exc
            limits.breaker_record_failure(endpoint)
            wait = _backoff(attempts, error.retry_after)
            if attempts > endpoint.max_retries or wait is None:
                raise error from exc
            time.sleep(wait)
            continue
        if breaker.failures:
            limits.breaker_close(endpoint)
        return response, latency_ms, attempts


def _backoff(attempt: int, retry_after: float | None) -> float | None:
    """Seconds to wait before the next attempt; None when the provider asks for longer than we wait."""
    ceiling = settings.GATEWAY_BACKOFF_MAX_SECONDS
    if retry_after is not None:
        return retry_after if retry_after <= ceiling else None
    return min(ceiling, settings.GATEWAY_BACKOFF_SECONDS * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def _completion_from(endpoint, response, params, latency_ms, attempts) -> Completion:
    try:
        choice = response.choices[0]
        text = choice.message.content or ""
        usage = response.usage
        prompt_tokens, completion_tokens = usage.prompt_tokens or 0, usage.completion_tokens or 0
    except (AttributeError, IndexError, TypeError) as exc:
        raise PermanentError(f"invalid response: the answer has no message ({exc})", kind="invalid_response") from None
    cost = catalog.cost_usd(endpoint, prompt_tokens, completion_tokens)
    try:
        data = _structured_output(text, params.get("response_format"))
    except PermanentError as exc:
        # The provider billed the call all the same: callers record what it cost.
        exc.details.update(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=cost, output=text)
        raise
    return Completion(
        text=text,
        finish_reason=choice.finish_reason or "",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=cost,
        latency_ms=latency_ms,
        attempts=attempts,
        data=data,
    )


def _structured_output(text: str, response_format: dict | None):
    """Parse (and for json_schema, validate) the output when JSON was asked for."""
    if not response_format or response_format.get("type") == "text":
        return None
    try:
        data = json.loads(text)
    except ValueError:
        raise PermanentError(
            f"invalid output: the model did not answer with JSON: {text[:RAW_BODY_BYTES]!r}", kind="invalid_output"
        ) from None
    if response_format["type"] == "json_schema":
        from jsonschema import Draft202012Validator

        errors = sorted(Draft202012Validator(response_format["json_schema"]["schema"]).iter_errors(data), key=str)
        if errors:
            where = "/".join(map(str, errors[0].absolute_path)) or "(root)"
            raise PermanentError(
                f"invalid output: the answer does not match the schema at {where}: {errors[0].message}",
                kind="invalid_output",
                details={"errors": [error.message for error in errors[:10]]},
            )
    return data


def _cache_key(endpoint: ModelEndpoint, messages: list[dict], params: dict, scope: str) -> str:
    identity = {"model": endpoint.model, "api_base": endpoint.api_base, "messages": messages, "params": params, "scope": scope}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return f"gateway:response:{digest}"
