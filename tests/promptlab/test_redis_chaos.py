"""Redis is an accelerator, never a single point of failure: a real redis-server of the test's
own, a real Celery worker and a real web server on it, and Redis killed mid-experiment and
mid-invoke. While it is down, reads, login, invoke and experiment start answer from
PostgreSQL; once it is back, every run and call completes, and none is made twice."""

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection

from experiments import services as experiment_services
from experiments.models import DatasetItem, Experiment, ExperimentStatus, Run, RunStatus
from promptlab.accounts import api_keys
from promptlab.accounts.models import Role
from prompts import services as prompt_services
from prompts.models import PromptCall, PromptCallStatus
from tests.conftest import ROOT, database_url_for, free_port, start_worker, stop, wait_for_http
from tests.factories import DatasetFactory, MembershipFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

OUTAGE_SETTINGS = {  # fast sweeps, so the test waits seconds rather than a minute
    "SWEEP_SECONDS": "1", "SWEEP_STALE_SECONDS": "4", "BROKER_RETRY_SECONDS": "1", "REDIS_RETRY_SECONDS": "1",
}  # fmt: skip
PASSWORD = "correct horse battery staple"
HANG_GUARD_SECONDS = 240  # only to end a broken run; a passing one finishes in seconds


class RedisServer:
    """A redis-server of the test's own on a spare port, that keeps nothing on disk."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("the Redis chaos test needs redis-server (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _until(lambda: _answers_ping(self.port), "redis-server to answer")
        return self

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _until(condition, what: str):
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)
    return result


def _web(env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60, process=process)
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture
def world(endpoint, llm_server):
    owner = MembershipFactory(role=Role.OWNER)
    hasher = PBKDF2PasswordHasher()  # the web server's hasher; the tests' own is a fast one it does not know
    owner.user.password = hasher.encode(PASSWORD, hasher.salt())
    owner.user.save()
    prompt = prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="answer", message="m", template="Question {{ n }}", endpoint=endpoint
    )
    prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=1)
    dataset = DatasetFactory(project=owner.project, name="questions")
    DatasetItem.objects.bulk_create(DatasetItem(dataset=dataset, row=n, vars={"n": n}) for n in range(1, 31))
    _, secret = api_keys.api_key_create(project=owner.project, actor=owner.user, name="chaos", scopes=["read", "invoke", "run"])

    def draft(name: str) -> Experiment:
        variants = [{"name": "a", "prompt": prompt, "label": "production"}]
        return experiment_services.experiment_create(
            project=owner.project, actor=owner.user, name=name, dataset=dataset, variants=variants, concurrency=2
        )

    llm_server.latency = 0.3  # calls stay in flight long enough to be caught by the kill
    return {"owner": owner, "secret": secret, "draft": draft}


def test_a_redis_outage_loses_nothing_and_makes_no_call_twice(world, llm_server):
    redis = RedisServer().start()
    env_overrides = {"REDIS_URL": redis.url, **OUTAGE_SETTINGS}
    env = {**os.environ, "DATABASE_URL": database_url_for(connection.settings_dict), **env_overrides}
    worker = start_worker(concurrency=2, name="chaos-worker", **env_overrides)
    web, base = _web(env)
    api = httpx.Client(base_url=f"{base}/api/v1/", headers={"Authorization": f"Bearer {world['secret']}"}, timeout=60)
    first, second = world["draft"]("before"), world["draft"]("during")
    try:
        assert api.post(f"experiments/{first.pk}/start/").status_code == 200
        _until(lambda: Run.objects.filter(experiment=first, status=RunStatus.DONE).count() >= 4, "the first runs")
        in_flight = threading.Thread(target=api.post, args=("prompts/answer/invoke/",), kwargs={"json": {"variables": {"n": 2000}}})
        in_flight.start()
        _until(lambda: PromptCall.objects.filter(vars={"n": 2000}, status=PromptCallStatus.RUNNING).exists(), "the invoke to start")

        redis.kill()  # mid-experiment and mid-invoke: calls are in flight

        # Reads, the login, invoke and starting an experiment answer from PostgreSQL.
        fetched = api.get("prompts/answer/", params={"label": "production"})
        assert fetched.status_code == 200 and fetched.json()["version"] == 1
        invoked = api.post("prompts/answer/invoke/", json={"variables": {"n": 1000}})
        assert invoked.status_code == 202, invoked.text
        call_id = invoked.json()["call_id"]
        assert api.post(f"experiments/{second.pk}/start/").status_code == 200
        ready = httpx.get(f"{base}/readyz", timeout=30)
        assert ready.status_code == 503 and set(ready.json()["failed"]) == {"cache", "broker"}
        browser = httpx.Client(base_url=base, timeout=30)
        login = browser.get("/accounts/login/")
        assert login.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)[1]
        signed_in = browser.post("/accounts/login/", data={"login": world["owner"].user.email, "password": PASSWORD,
                                                           "csrfmiddlewaretoken": token}, headers={"Referer": f"{base}/accounts/login/"})  # fmt: skip
        assert signed_in.status_code == 302
        assert browser.get("/").status_code == 200

        redis.start()  # back, and empty: whatever was queued in it is gone

        def all_done():
            finished = Experiment.objects.filter(pk__in=[first.pk, second.pk], status=ExperimentStatus.FINISHED).count() == 2
            calls = PromptCall.objects.filter(pk=call_id) | PromptCall.objects.filter(vars={"n": 2000})
            return finished and list(calls.values_list("status", flat=True)) == [PromptCallStatus.DONE] * 2

        _until(all_done, "both experiments and the invoke calls to complete")
        in_flight.join()
    finally:
        stop(web)
        stop(worker)
        if redis.process.poll() is None:
            redis.kill()

    assert set(Run.objects.filter(experiment__in=[first, second]).values_list("status", flat=True)) == {RunStatus.DONE}
    asked = [request["body"]["messages"][-1]["content"] for request in llm_server.requests if request["body"]]
    expected = {f"Question {n}" for n in range(1, 31)}
    assert sorted(asked) == sorted([*expected, *expected, "Question 1000", "Question 2000"])  # every call made exactly once
