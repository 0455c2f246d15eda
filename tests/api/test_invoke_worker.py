"""Invoke end to end: the web side records the call and waits, a real Celery worker process
makes the model call through the gateway to the fake OpenAI server."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from promptlab import workers
from promptlab.accounts.models import Role
from prompts import services as prompt_services
from prompts.models import CallFeedback, PromptCall, PromptCallStatus
from prompts.tasks import prompt_invoke
from tests.api.conftest import client_with, error_of
from tests.conftest import database_url_for, start_worker, stop
from tests.factories import MembershipFactory
from tests.fake_openai import Scripted

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def invoke_worker(django_db_setup, django_db_blocker):
    process = start_worker(name="api-invoke", concurrency=2, PROMPTLAB_KEY_TEST_OPENAI="sk-test-123")
    yield process
    stop(process)


@pytest.fixture
def setup(invoke_worker, endpoint):
    owner = MembershipFactory(role=Role.OWNER)
    prompt = prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="greet", message="v1", template="Hello {{ name }}!", endpoint=endpoint
    )
    prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=1)
    from promptlab.accounts import api_keys

    _, secret = api_keys.api_key_create(project=owner.project, actor=owner.user, name="svc", scopes=["invoke", "read"])
    ping = workers.worker_ping_send()
    workers.worker_ping_wait(ping_id=ping.id, timeout=90)  # the worker is up (it imports LiteLLM first)
    assert invoke_worker.poll() is None
    return client_with(secret), prompt


def wait_done(call_id, timeout=30) -> PromptCall:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        call = PromptCall.objects.get(pk=call_id)
        if call.finished:
            return call
        time.sleep(0.1)
    raise AssertionError(f"call {call_id} not finished after {timeout}s")


def test_invoke_answers_with_output_usage_cost_latency_and_a_logged_call(setup, llm_server):
    client, prompt = setup

    response = client.post("/api/v1/prompts/greet/invoke/", {"variables": {"name": "Ada"}}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "done" and body["output"] == "fake answer to: Hello Ada!"
    assert body["version"] == 1 and body["label"] == "production" and body["model"] == "openai/gpt-4o-mini"
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]  # fmt: skip
    assert body["cost_usd"] is not None and body["latency_ms"] > 0
    call = PromptCall.objects.get(pk=body["call_id"])
    assert call.status == PromptCallStatus.DONE and call.vars == {"name": "Ada"} and call.api_key is not None
    assert call.messages == [{"role": "user", "content": "Hello Ada!"}]
    assert client.get(f"/api/v1/calls/{call.pk}/").json() == body
    assert len([r for r in llm_server.requests if r["path"].endswith("completions")]) == 1

    feedback = client.post(f"/api/v1/calls/{call.pk}/feedback/", {"thumbs": "down", "comment": "too curt"}, format="json")
    assert feedback.status_code == 201 and feedback.json()["thumbs"] == "down"
    assert CallFeedback.objects.get(call=call).thumbs == -1


def test_a_slow_call_answers_504_with_the_call_id_and_finishes_later(setup, llm_server):
    client, _ = setup
    llm_server.latency = 2.0

    response = client.post("/api/v1/prompts/greet/invoke/", {"variables": {"name": "Bo"}, "wait_seconds": 0.3}, format="json")

    assert response.status_code == 504
    error = error_of(response)
    assert error["code"] == "invoke_timeout"
    call_id = error["details"]["call_id"]
    assert call_id in error["message"]
    assert wait_done(call_id).output == "fake answer to: Hello Bo!"
    assert client.get(f"/api/v1/calls/{call_id}/").json()["status"] == "done"


def test_a_failed_model_call_is_a_502_naming_the_logged_call(setup, llm_server):
    client, _ = setup
    llm_server.script(Scripted.error(400, "This model's maximum context length is 8192 tokens", code="context_length_exceeded"))

    response = client.post("/api/v1/prompts/greet/invoke/", {"variables": {"name": "Cy"}}, format="json")

    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "llm_failed" and "context length" in error["message"]
    call = PromptCall.objects.get(pk=error["details"]["call_id"])
    assert call.status == PromptCallStatus.FAILED and call.error_code == "llm_failed"


def test_missing_variables_record_no_call(setup):
    client, _ = setup

    response = client.post("/api/v1/prompts/greet/invoke/", {"variables": {}}, format="json")

    assert response.status_code == 400 and error_of(response)["code"] == "missing_variables"
    assert not PromptCall.objects.exists()


def test_a_call_delivered_twice_is_made_once(setup, llm_server):
    _, prompt = setup
    llm_server.latency = 0.5
    call = prompt_services.prompt_call_create(prompt=prompt, actor=None, variables={"name": "Di"})  # enqueued once on commit

    prompt_invoke.delay(str(call.pk))  # and a duplicate delivery

    assert wait_done(call.pk).status == PromptCallStatus.DONE
    time.sleep(1.0)  # time for the duplicate to be handled too
    assert len([r for r in llm_server.requests if r["path"].endswith("completions")]) == 1


def lose_the_message(monkeypatch):
    """The call is recorded, and its message to the workers never arrives."""
    monkeypatch.setattr(prompt_services.dispatch, "send_on_commit", lambda *args, **kwargs: None)


def completions(server) -> int:
    return len([r for r in server.requests if r["path"].endswith("completions")])


def test_a_killed_workers_call_is_recovered_and_answered(setup, llm_server, monkeypatch):
    _, prompt = setup
    lose_the_message(monkeypatch)  # so that the process below, not the module's worker, makes it
    llm_server.script(Scripted.delay(120))  # its call hangs until the process is killed
    call = prompt_services.prompt_call_create(prompt=prompt, actor=None, variables={"name": "Ed"})
    doomed = subprocess.Popen(
        [sys.executable, "-c", f"import django; django.setup(); from prompts.tasks import prompt_invoke; prompt_invoke({str(call.pk)!r})"],
        env={**os.environ, "DATABASE_URL": database_url_for(connection.settings_dict), "LLM_CALL_LEASE_SECONDS": "3"},
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while completions(llm_server) < 1:
        assert doomed.poll() is None and time.monotonic() < deadline, "the doomed process never made its call"
        time.sleep(0.1)
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    assert PromptCall.objects.filter(pk=call.pk, status=PromptCallStatus.RUNNING, claims=1).exists()

    deadline = time.monotonic() + 60
    while prompt_services.prompt_calls_recover() == 0:  # nothing to recover until its lease runs out
        assert time.monotonic() < deadline, "the dead process's call was never recovered"
        time.sleep(0.5)

    call = wait_done(call.pk, timeout=60)
    assert call.status == PromptCallStatus.DONE and call.output == "fake answer to: Hello Ed!"
    assert call.claims == 2 and call.lease_until is None
    assert completions(llm_server) == 2  # the dead process's call, and the one answered


def test_a_call_whose_message_was_lost_is_sent_again(setup, llm_server, monkeypatch):
    _, prompt = setup
    lose_the_message(monkeypatch)
    call = prompt_services.prompt_call_create(prompt=prompt, actor=None, variables={"name": "Flo"})
    fresh = prompt_services.prompt_call_create(prompt=prompt, actor=None, variables={"name": "Gus"})
    PromptCall.objects.filter(pk=call.pk).update(created_at=timezone.now() - timedelta(minutes=5))

    assert prompt_services.prompt_calls_recover(timezone.now() - timedelta(minutes=1)) == 1  # the fresh one may still be on its way

    assert wait_done(call.pk).output == "fake answer to: Hello Flo!"
    assert PromptCall.objects.get(pk=fresh.pk).status == PromptCallStatus.PENDING
    assert completions(llm_server) == 1
