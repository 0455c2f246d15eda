"""Identical calls made at the same moment share one call in flight: sent and billed once, across
threads and processes, and a failed call does not fail the callers that waited for it."""

import os
import subprocess
import sys
import threading
import uuid

import pytest
from django.core.cache import cache

from promptlab.llm import gateway, single_flight
from promptlab.llm.errors import PermanentError
from tests.conftest import ROOT
from tests.fake_openai import Scripted

CALLERS = 20


def unique_messages() -> list[dict]:
    """Messages no earlier call (nor an earlier test run sharing the Redis database) has cached."""
    return [{"role": "user", "content": f"Say hello to Ada ({uuid.uuid4().hex})"}]


def call_at_once(endpoint, messages, callers: int = CALLERS, **options) -> tuple[list, list]:
    """`callers` threads calling the gateway with the same arguments at the same moment: (results, errors)."""
    results, errors, start = [], [], threading.Barrier(callers)

    def call():
        start.wait()
        try:
            results.append(gateway.complete(endpoint=endpoint, messages=messages, params={"temperature": 0}, **options))
        except Exception as exc:  # surfaced by the test
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a caller is still waiting"
    return results, errors


@pytest.fixture(params=["redis", "locmem"])
def any_cache(request, settings):
    """The production cache (Redis, shared by processes) and the embedded default (local memory, one process)."""
    if request.param == "redis":
        if not os.environ.get("REDIS_URL"):
            pytest.skip("Redis is used only when REDIS_URL is set")
    else:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}}
    return request.param


def test_identical_concurrent_calls_make_one_upstream_request_billed_once(any_cache, endpoint, llm_server):
    llm_server.latency = 0.5  # the first call is still in flight when the others arrive
    messages = unique_messages()

    results, errors = call_at_once(endpoint, messages)

    assert errors == []
    assert len(llm_server.requests) == 1
    assert len(results) == CALLERS and {result.text for result in results} == {"fake answer to: " + messages[0]["content"]}
    paid = [result for result in results if not result.cached]
    assert len(paid) == 1 and paid[0].cost > 0
    assert all(result.cost == 0 and result.attempts == 0 for result in results if result.cached)


def test_calls_that_may_not_be_cached_are_each_sent(endpoint, llm_server):
    llm_server.latency = 0.2

    results, errors = call_at_once(endpoint, unique_messages(), callers=4, cache_response=False)

    assert errors == [] and len(results) == 4
    assert len(llm_server.requests) == 4 and not any(result.cached for result in results)


def test_calls_in_other_cache_scopes_do_not_wait_for_each_other(endpoint, llm_server):
    llm_server.latency = 0.2
    messages = unique_messages()
    answers = []

    def call(scope):
        answers.append(gateway.complete(endpoint=endpoint, messages=messages, params={"temperature": 0}, cache_scope=scope))

    threads = [threading.Thread(target=call, args=(f"repeat {n}",)) for n in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(llm_server.requests) == 3 and not any(answer.cached for answer in answers)
    again = gateway.complete(endpoint=endpoint, messages=messages, params={"temperature": 0}, cache_scope="repeat 2")
    assert again.cached and len(llm_server.requests) == 3


def test_a_failed_call_does_not_fail_those_waiting_for_it(any_cache, endpoint, llm_server):
    llm_server.latency = 0.5
    llm_server.script(Scripted.error(400, "Your request was rejected", code="content_policy_violation"))  # the first call only

    results, errors = call_at_once(endpoint, unique_messages())

    assert len(errors) == 1 and isinstance(errors[0], PermanentError)  # its own error, to the caller that made it
    assert len(results) == CALLERS - 1
    assert len(llm_server.requests) == 2  # one of those waiting made the call again, for all of them
    assert len([result for result in results if not result.cached]) == 1


def test_a_lock_left_by_a_dead_process_runs_out():
    key = f"test:single-flight:{uuid.uuid4().hex}"
    cache.add(f"{key}:in-flight", "a process killed mid-call", timeout=1)

    answer, called = single_flight.shared(key, lambda: {"text": "fresh"}, keep_seconds=60, lock_seconds=30)

    assert (answer, called) == ({"text": "fresh"}, True)
    assert cache.get(key) == {"text": "fresh"} and cache.get(f"{key}:in-flight") is None


def test_without_a_cache_every_call_is_made_and_none_waits(endpoint, llm_server, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    llm_server.latency = 0.2

    results, errors = call_at_once(endpoint, unique_messages(), callers=4)

    assert errors == [] and len(results) == 4 and len(llm_server.requests) == 4


def test_a_response_cache_of_zero_seconds_keeps_nothing_and_locks_nothing(endpoint, llm_server, settings):
    settings.GATEWAY_RESPONSE_CACHE_SECONDS = 0
    llm_server.latency = 0.2

    results, errors = call_at_once(endpoint, unique_messages(), callers=4)

    assert errors == [] and len(llm_server.requests) == 4 and not any(result.cached for result in results)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="processes share calls in flight only through Redis")
def test_processes_share_one_call_in_flight(endpoint, llm_server, settings):
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": "promptlab"}}  # what every process uses
    llm_server.latency = 1.0
    messages = unique_messages()
    other_process = (
        "import sys, django; django.setup()\n"
        "from promptlab.llm import gateway; from promptlab.llm.models import ModelEndpoint\n"
        f"endpoint = ModelEndpoint(pk={endpoint.pk}, name={endpoint.name!r}, model={endpoint.model!r},"
        f" api_base={endpoint.api_base!r}, api_key_env={endpoint.api_key_env!r}, timeout_seconds={endpoint.timeout_seconds},"
        f" max_retries={endpoint.max_retries})\n"
        "gateway.prepared_litellm()\n"
        "print('ready', flush=True); sys.stdin.readline()\n"  # LiteLLM's slow import is over before the calls start
        f"result = gateway.complete(endpoint=endpoint, messages={messages!r}, params={{'temperature': 0}})\n"
        "print(result.cached, result.text, flush=True)\n"
    )
    others = [
        subprocess.Popen([sys.executable, "-c", other_process], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
        for _ in range(3)
    ]
    for other in others:
        assert other.stdout.readline().strip() == "ready", other.stderr.read()
    for other in others:
        other.stdin.write("go\n")
        other.stdin.flush()
    results, errors = call_at_once(endpoint, messages, callers=5)
    outputs = []
    for other in others:
        output, problems = other.communicate(timeout=120)
        assert other.returncode == 0, problems
        outputs.append(output.strip())

    assert errors == [] and len(results) == 5
    assert len(llm_server.requests) == 1
    answer = "fake answer to: " + messages[0]["content"]
    assert {result.text for result in results} == {answer} and all(output.endswith(answer) for output in outputs)
    cached = [result.cached for result in results] + [output.startswith("True") for output in outputs]
    assert cached.count(False) == 1
