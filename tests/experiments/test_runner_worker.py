"""The runner with real Celery worker processes, the broker and the fake OpenAI server."""

import os
import signal
import time
from collections import Counter
from decimal import Decimal

import pytest

from experiments import services
from experiments.models import DatasetItem, Experiment, ExperimentStatus, Run, RunStatus
from promptlab.accounts.models import Role
from prompts import services as prompt_services
from tests.conftest import start_worker, stop
from tests.factories import DatasetFactory, MembershipFactory
from tests.fake_openai import Scripted

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def experiment_of(endpoint, items: int, concurrency: int = 8, params: dict | None = None, **create) -> Experiment:
    owner = MembershipFactory(role=Role.OWNER)
    prompt = prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="answer", message="v1", template="Q: {{ q }}", endpoint=endpoint
    )
    dataset = DatasetFactory(project=owner.project)
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"q": f"question {n}"}) for n in range(1, items + 1)])
    experiment = services.experiment_create(
        project=owner.project, actor=owner.user, name="load", dataset=dataset, concurrency=concurrency, **create,
        variants=[{"name": "a", "prompt": prompt, "version": 1, "params": params or {}},
                  {"name": "b", "prompt": prompt, "version": 1, "params": {**(params or {}), "temperature": 0.5}}],
    )  # fmt: skip
    services.experiment_start(experiment=experiment, actor=owner.user)
    return experiment


def wait_finished(experiment, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        experiment.refresh_from_db()
        if experiment.status == ExperimentStatus.FINISHED:
            return
        time.sleep(0.3)
    raise AssertionError(f"not finished after {timeout}s: {services.experiment_counts(experiment)}")


def assert_each_run_done_once(experiment, server):
    counts = services.experiment_counts(experiment)
    assert counts["done"] == counts["total"] == Run.objects.filter(experiment=experiment).count()
    # A request cut off by a kill mid-send arrives without its body: the model never saw it.
    sent = [r["body"] for r in server.requests if r["path"].endswith("completions") and r["body"] is not None]
    bodies = [str(body["messages"]) + str(body.get("temperature")) for body in sent]
    return counts, bodies


def test_a_200_run_experiment_completes_with_transient_errors(endpoint, llm_server):
    endpoint.max_retries = 5
    endpoint.save()
    ok = Scripted.delay(0)
    llm_server.script(*[Scripted.error(429, "slow down", headers={"Retry-After": "0"}), ok, ok, ok, ok,
                        Scripted.error(500, "oops"), ok, ok, ok, ok] * 20)  # 20% of the first 200 calls fail  # fmt: skip
    worker = start_worker(concurrency=8, name="load")
    try:
        experiment = experiment_of(endpoint, items=100)
        wait_finished(experiment, timeout=120)
    finally:
        stop(worker)

    counts, bodies = assert_each_run_done_once(experiment, llm_server)
    assert counts["total"] == 200
    assert len(bodies) == 200 + 40  # every run answered once, plus the 40 injected failures retried
    assert Run.objects.filter(experiment=experiment, attempts__gt=1).exists()


# Short leases, so that a killed worker's runs come back soon; a live worker renews its own while
# their calls are in flight, so none of them, however slow on a loaded machine, is claimed twice.
SHORT_LEASE = {"LLM_CALL_LEASE_SECONDS": "10"}


def test_a_killed_worker_loses_nothing(endpoint, llm_server):
    llm_server.latency = 0.2
    first = start_worker(concurrency=4, name="doomed", **SHORT_LEASE)
    experiment = experiment_of(endpoint, items=30, concurrency=4)
    deadline = time.monotonic() + 60
    while Run.objects.filter(experiment=experiment, status=RunStatus.DONE).count() < 10:
        assert time.monotonic() < deadline, "the first worker made no progress"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = Run.objects.filter(experiment=experiment, status=RunStatus.DONE).count()
    assert killed_at < 60
    # The runs the killed worker held as it died: no other worker ran.
    in_flight = set(Run.objects.filter(experiment=experiment, status=RunStatus.RUNNING).values_list("pk", flat=True))
    assert len(in_flight) <= 4

    second = start_worker(concurrency=4, name="rescuer", **SHORT_LEASE)
    try:
        wait_finished(experiment, timeout=180)
    finally:
        stop(second)

    counts, bodies = assert_each_run_done_once(experiment, llm_server)
    assert counts["total"] == 60
    # Only a run in flight at the kill was claimed again, and its call made at most twice (once by
    # each worker); every other run was claimed and called exactly once.
    calls = Counter(bodies)
    for run in Run.objects.filter(experiment=experiment).select_related("variant"):
        key = str(run.messages) + str(run.variant.params.get("temperature"))
        if run.pk in in_flight:
            assert run.claims == 2 and 1 <= calls[key] <= 2, (run.pk, run.claims, calls[key])
        else:
            assert run.claims == 1 and calls[key] == 1, (run.pk, run.claims, calls[key])
    assert len(bodies) <= 60 + len(in_flight)


def test_a_call_slower_than_its_lease_is_claimed_and_made_once(endpoint, llm_server):
    endpoint.timeout_seconds = 60
    endpoint.save()
    llm_server.latency = 9.0  # three leases: a lease not renewed would run out twice during each call
    worker = start_worker(concurrency=4, name="slow", LLM_CALL_LEASE_SECONDS="3")
    try:
        experiment = experiment_of(endpoint, items=1, concurrency=4)  # two runs, and two idle drains ready to take one over
        wait_finished(experiment, timeout=120)
    finally:
        stop(worker)

    counts, bodies = assert_each_run_done_once(experiment, llm_server)
    assert counts["total"] == 2 and len(bodies) == 2
    assert set(Run.objects.filter(experiment=experiment).values_list("claims", flat=True)) == {1}


def test_the_budget_cap_stops_spending_across_worker_threads(endpoint, llm_server):
    # Each call is estimated at about 1.3e-5 USD (max_tokens 20) and costs about 4.5e-6: about
    # twenty of the sixty runs fit in 1e-4 USD, whatever the eight threads do at once.
    budget = Decimal("0.0001")
    llm_server.latency = 0.05
    worker = start_worker(concurrency=8, name="budget")
    try:
        experiment = experiment_of(endpoint, items=30, params={"max_tokens": 20}, budget_usd=budget)
        wait_finished(experiment, timeout=90)
    finally:
        stop(worker)

    experiment.refresh_from_db()
    counts = services.experiment_counts(experiment)
    assert counts["done"] > 0 and counts["skipped"] > 0 and counts["done"] + counts["skipped"] == 60
    assert counts["spent_usd"] == experiment.spent_usd <= budget
    assert experiment.reserved_usd == 0
    assert len([r for r in llm_server.requests if r["path"].endswith("completions")]) == counts["done"]
    assert set(Run.objects.filter(experiment=experiment, status=RunStatus.SKIPPED).values_list("error_kind", flat=True)) == {"budget"}


def test_the_same_task_delivered_twice_makes_each_call_once(endpoint, llm_server):
    from experiments.tasks import experiment_drain

    llm_server.latency = 0.05
    worker = start_worker(concurrency=4, name="twice")
    try:
        experiment = experiment_of(endpoint, items=10, concurrency=1)  # enqueues one drain
        for _ in range(2):  # and the broker hands the same message over twice more
            experiment_drain.apply_async(args=[experiment.pk], task_id=f"drain-{experiment.pk}")
        wait_finished(experiment, timeout=60)
    finally:
        stop(worker)

    counts, bodies = assert_each_run_done_once(experiment, llm_server)
    assert counts["total"] == 20
    assert len(bodies) == 20 and len(set(bodies)) == 20
    assert set(Run.objects.filter(experiment=experiment).values_list("claims", flat=True)) == {1}
