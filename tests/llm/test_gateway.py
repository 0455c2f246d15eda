"""The gateway over real HTTP: LiteLLM -> the fake OpenAI-compatible server on 127.0.0.1."""

import os
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pytest

from promptlab.errors import Invalid
from promptlab.llm import gateway, limits
from promptlab.llm.errors import PermanentError, TransientError
from tests.conftest import ROOT
from tests.fake_openai import Scripted

GPT_4O_MINI = (Decimal("1.5e-07"), Decimal("6e-07"))  # LiteLLM's bundled prices per token
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello to Ada"}]
SCORE_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "verdict",
        "schema": {
            "type": "object",
            "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}, "reasoning": {"type": "string"}},
            "required": ["score", "reasoning"],
        },
    },
}


def test_a_call_captures_text_tokens_cost_and_latency(endpoint, llm_server):
    result = gateway.complete(endpoint=endpoint, messages=HELLO, params={"temperature": 0.3, "max_tokens": 50})

    assert result.text == "fake answer to: Say hello to Ada"
    assert result.finish_reason == "stop"
    assert (result.prompt_tokens, result.completion_tokens) == (6 + 3 * 2, 7)  # words + 3 per message
    assert result.cost == GPT_4O_MINI[0] * 12 + GPT_4O_MINI[1] * 7
    assert result.latency_ms > 0 and not result.cached and result.attempts == 1
    [request] = llm_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer sk-test-123"
    assert request["body"]["model"] == "gpt-4o-mini"
    assert request["body"]["temperature"] == 0.3 and request["body"]["max_tokens"] == 50


def test_the_endpoints_own_prices_win(endpoint):
    endpoint.input_cost_per_token, endpoint.output_cost_per_token = Decimal("0.001"), Decimal("0.002")

    result = gateway.complete(endpoint=endpoint, messages=HELLO)

    assert result.cost == Decimal("0.001") * 12 + Decimal("0.002") * 7


def test_an_unknown_price_is_none_not_zero(endpoint):
    endpoint.model = "openai/house-model-7b"

    assert gateway.complete(endpoint=endpoint, messages=HELLO).cost is None


def test_finish_reason_length_is_reported(endpoint):
    result = gateway.complete(endpoint=endpoint, messages=HELLO, params={"max_tokens": 2})

    assert (result.text, result.finish_reason) == ("fake answer", "length")


def test_a_rate_limit_is_retried_after_retry_after(endpoint, llm_server):
    llm_server.script(Scripted.error(429, "Rate limit reached for requests", headers={"Retry-After": "1"}))
    started = time.monotonic()

    result = gateway.complete(endpoint=endpoint, messages=HELLO)

    assert time.monotonic() - started >= 1.0
    assert result.attempts == 2 and len(llm_server.requests) == 2


def test_server_errors_are_retried_max_retries_times_by_the_gateway_alone(endpoint, llm_server):
    llm_server.script(*[Scripted.error(500, "The server had an error")] * 5)

    with pytest.raises(TransientError) as error:
        gateway.complete(endpoint=endpoint, messages=HELLO)

    assert error.value.kind == "server_error" and error.value.status == 500
    assert "The server had an error" in error.value.message
    assert error.value.details["attempts"] == 3
    assert len(llm_server.requests) == 3  # no hidden retries inside LiteLLM or the OpenAI client


def test_a_retry_after_longer_than_we_wait_is_handed_to_the_caller(endpoint, llm_server, settings):
    settings.GATEWAY_BACKOFF_MAX_SECONDS = 5
    llm_server.script(Scripted.error(429, "slow down", headers={"Retry-After": "120"}))

    with pytest.raises(TransientError) as error:
        gateway.complete(endpoint=endpoint, messages=HELLO)

    assert error.value.kind == "rate_limit" and error.value.retry_after == 120
    assert len(llm_server.requests) == 1


@pytest.mark.parametrize(
    "scripted, kind",
    [
        (Scripted.error(401, "Incorrect API key provided"), "auth"),
        (Scripted.error(400, "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", code="context_length_exceeded"), "context_window"),
        (Scripted.error(400, "Your request was rejected as a result of our safety system.", code="content_policy_violation"), "content_policy"),
        (Scripted.error(400, "Invalid value for 'temperature'"), "bad_request"),
    ],
    ids=["auth", "context_window", "content_policy", "bad_request"],
)  # fmt: skip
def test_permanent_errors_are_classified_and_never_retried(endpoint, llm_server, scripted, kind):
    llm_server.script(scripted)

    with pytest.raises(PermanentError) as error:
        gateway.complete(endpoint=endpoint, messages=HELLO)

    assert error.value.kind == kind
    assert scripted.message[:30] in error.value.message  # the provider's own words
    assert len(llm_server.requests) == 1


def test_a_timeout_is_transient_and_bounded(endpoint, llm_server):
    endpoint.timeout_seconds, endpoint.max_retries = 0.5, 1
    llm_server.script(Scripted.delay(3), Scripted.delay(3))  # each would answer after 3 s, had the call waited

    with pytest.raises(TransientError) as error:
        gateway.complete(endpoint=endpoint, messages=HELLO)

    assert error.value.kind == "timeout"
    assert error.value.details["attempts"] == 2 and len(llm_server.requests) == 2


def test_garbage_is_a_permanent_error_showing_the_body(endpoint, llm_server):
    llm_server.script(Scripted.garbage(b"<html>upstream says no</html>", status=200))

    with pytest.raises(PermanentError) as error:
        gateway.complete(endpoint=endpoint, messages=HELLO)

    assert error.value.kind == "invalid_response"
    assert "<html>upstream says no" in error.value.message
    assert len(llm_server.requests) == 1


def test_a_proxy_error_page_is_transient(endpoint, llm_server):
    llm_server.script(*[Scripted.garbage(b"<html>502 Bad Gateway</html>", status=502)] * 3)

    with pytest.raises(TransientError) as error:
        gateway.complete(endpoint=endpoint, messages=HELLO)

    assert error.value.kind == "server_error" and error.value.status == 502


def test_a_refused_connection_is_transient(endpoint, settings):
    from tests.conftest import free_port

    endpoint.api_base, endpoint.max_retries = f"http://127.0.0.1:{free_port()}/v1", 0

    with pytest.raises(TransientError) as error:
        gateway.complete(endpoint=endpoint, messages=HELLO)
    assert error.value.kind == "connection"


def test_structured_output_is_passed_through_and_validated(endpoint, llm_server):
    llm_server.script(Scripted.content('{"score": 4, "reasoning": "clear and short"}'))

    result = gateway.complete(endpoint=endpoint, messages=HELLO, params={"response_format": SCORE_SCHEMA})

    assert result.data == {"score": 4, "reasoning": "clear and short"}
    assert llm_server.requests[0]["body"]["response_format"]["json_schema"]["name"] == "verdict"


@pytest.mark.parametrize(
    "content, where",
    [('{"score": 9, "reasoning": "x"}', "at score"), ('{"reasoning": "x"}', "'score' is a required property"), ("I think 4", "did not answer with JSON")],
)  # fmt: skip
def test_output_that_breaks_the_schema_is_a_permanent_error(endpoint, llm_server, content, where):
    llm_server.script(Scripted.content(content))

    with pytest.raises(PermanentError) as error:
        gateway.complete(endpoint=endpoint, messages=HELLO, params={"response_format": SCORE_SCHEMA})

    assert error.value.kind == "invalid_output" and where in error.value.message


def test_temperature_zero_answers_come_from_the_cache_unbilled(endpoint, llm_server):
    first = gateway.complete(endpoint=endpoint, messages=HELLO, params={"temperature": 0})
    second = gateway.complete(endpoint=endpoint, messages=HELLO, params={"temperature": 0})

    assert len(llm_server.requests) == 1
    assert second.cached and second.cost == 0 and second.text == first.text
    assert first.cost > 0 and not first.cached


def test_other_temperatures_are_not_cached_unless_asked(endpoint, llm_server):
    for _ in range(2):
        gateway.complete(endpoint=endpoint, messages=HELLO, params={"temperature": 0.7})
    assert len(llm_server.requests) == 2

    for _ in range(2):
        gateway.complete(endpoint=endpoint, messages=HELLO, params={"temperature": 0.7}, cache_response=True)
    assert len(llm_server.requests) == 3

    for _ in range(2):
        gateway.complete(endpoint=endpoint, messages=HELLO, params={"temperature": 0}, cache_response=False)
    assert len(llm_server.requests) == 5


def test_the_breaker_opens_after_consecutive_failures_and_closes_after_a_success(endpoint, llm_server, settings):
    settings.GATEWAY_BREAKER_FAILURES = 2
    settings.GATEWAY_BREAKER_COOLDOWN_SECONDS = 1
    endpoint.max_retries = 0
    llm_server.script(Scripted.error(500, "down"), Scripted.error(500, "down"))
    for _ in range(2):
        with pytest.raises(TransientError):
            gateway.complete(endpoint=endpoint, messages=HELLO)

    with pytest.raises(limits.CircuitOpen, match="failed 2 times in a row"):
        gateway.complete(endpoint=endpoint, messages=HELLO)
    assert len(llm_server.requests) == 2  # failed fast, nothing sent
    assert str(limits.breaker_state(endpoint)).startswith("open for")

    time.sleep(1.1)
    assert gateway.complete(endpoint=endpoint, messages=HELLO).text
    assert str(limits.breaker_state(endpoint)) == "closed"


def test_requests_per_minute_are_enforced_before_sending(endpoint, llm_server, settings):
    settings.GATEWAY_LIMIT_WAIT_SECONDS = 0.2
    endpoint.requests_per_minute = 2
    if 60 - time.time() % 60 < 15:  # the three calls must fall in one minute, even on a busy machine
        time.sleep(60 - time.time() % 60 + 0.5)
    for _ in range(2):
        gateway.complete(endpoint=endpoint, messages=HELLO)

    with pytest.raises(limits.LimitExceeded, match="limit of 2 requests per minute"):
        gateway.complete(endpoint=endpoint, messages=HELLO)
    assert len(llm_server.requests) == 2


def test_concurrent_calls_are_capped(endpoint, llm_server):
    endpoint.max_concurrency = 1
    llm_server.latency = 0.4
    errors = []

    def call():
        try:
            gateway.complete(endpoint=endpoint, messages=HELLO)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert time.monotonic() - started >= 1.2  # one at a time: 3 x 0.4 s
    assert len(llm_server.requests) == 3


@pytest.mark.parametrize(
    "change, message",
    [
        ({"enabled": False}, "is disabled"),
        ({"api_key_env": "PROMPTLAB_KEY_UNSET"}, "PROMPTLAB_KEY_UNSET, which is not set"),
        ({"api_key_env": "DATABASE_URL"}, "DATABASE_URL must start with PROMPTLAB_KEY_"),
        ({"api_base": "http://169.254.169.254/v1"}, r"169.254.169.254 is not a public address \(link-local\)"),
    ],
)
def test_misconfigured_endpoints_fail_before_any_network_call(endpoint, llm_server, change, message):
    for field, value in change.items():
        setattr(endpoint, field, value)

    with pytest.raises(Invalid, match=message):
        gateway.complete(endpoint=endpoint, messages=HELLO)
    assert llm_server.requests == []


def test_bad_params_fail_before_any_network_call(endpoint, llm_server):
    with pytest.raises(Invalid, match="temperature must be between 0 and 2; colour is not a supported parameter"):
        gateway.complete(endpoint=endpoint, messages=HELLO, params={"temperature": 3, "colour": "blue"})
    assert llm_server.requests == []


def test_embeddings(endpoint, llm_server):
    endpoint.model = "openai/text-embedding-3-small"

    result = gateway.embed(endpoint=endpoint, texts=["refund policy", "refund rules"])

    assert len(result.vectors) == 2 and all(len(vector) == 8 for vector in result.vectors)
    assert result.vectors[0] != result.vectors[1]
    assert result.prompt_tokens == 4 and result.cost is not None
    assert llm_server.requests[0]["path"] == "/v1/embeddings"


@pytest.mark.parametrize(
    "messages, message",
    [([], "at least one message"), ([{"role": "wizard", "content": "hi"}], "Message 1 needs a role"),
     ([{"role": "user", "content": "a"}, {"role": "user"}], "Message 2 needs a content")],
)  # fmt: skip
def test_malformed_messages_fail_before_any_network_call(endpoint, llm_server, messages, message):
    with pytest.raises(Invalid, match=message):
        gateway.complete(endpoint=endpoint, messages=messages)
    assert llm_server.requests == []


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="limits are shared across processes only through Redis")
def test_the_rate_limit_is_shared_with_other_processes(endpoint, llm_server, settings):
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": "promptlab"}}  # what every process uses
    settings.GATEWAY_LIMIT_WAIT_SECONDS = 0.2
    endpoint.requests_per_minute = 2
    other_process = (
        "import sys, django; django.setup()\n"
        "from promptlab.llm import limits; from promptlab.llm.models import ModelEndpoint\n"
        f"endpoint = ModelEndpoint(pk={endpoint.pk}, name='x', requests_per_minute=2)\n"
        "print('ready', flush=True); sys.stdin.readline()\n"  # the slow start-up is over before the minute is chosen
        "for _ in range(2):\n"
        "    with limits.endpoint_slot(endpoint): pass\n"
    )
    other = subprocess.Popen([sys.executable, "-c", other_process], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert other.stdout.readline().strip() == "ready", other.stderr.read()
    if 60 - time.time() % 60 < 15:  # the two slots and the call below must fall in one minute
        time.sleep(60 - time.time() % 60 + 0.5)
    _, errors = other.communicate("go\n", timeout=120)
    assert other.returncode == 0, errors

    with pytest.raises(limits.LimitExceeded):
        gateway.complete(endpoint=endpoint, messages=HELLO)
    assert llm_server.requests == []


@pytest.mark.parametrize("status", [500, 503, 529])
def test_server_errors_of_providers_outside_the_openai_client_are_transient_too(endpoint, llm_server, status):
    endpoint.model, endpoint.api_base, endpoint.max_retries = "anthropic/claude-3-5-haiku-latest", llm_server.url, 1
    llm_server.script(*[Scripted.error(status, "Overloaded")] * 2)

    with pytest.raises(TransientError) as error:
        gateway.complete(endpoint=endpoint, messages=HELLO)

    assert error.value.kind == "server_error" and "Overloaded" in error.value.message
    assert len(llm_server.requests) == 2 and llm_server.requests[0]["path"] == "/v1/messages"


def test_a_failure_counted_while_another_process_closes_the_breaker_is_not_lost(endpoint, monkeypatch):
    from django.core.cache import cache

    class Racing:
        """The cache, with another process's breaker_close landing between add and incr once."""

        raced = False

        def __getattr__(self, name):
            return getattr(cache, name)

        def add(self, key, value, timeout=None):
            added = cache.add(key, value, timeout=timeout)
            if key.endswith("failures") and not self.raced:
                self.raced = True
                cache.delete(key)
                return False
            return added

    monkeypatch.setattr(limits, "cache", Racing())
    limits.breaker_record_failure(endpoint)

    assert limits.breaker_state(endpoint).failures == 1
