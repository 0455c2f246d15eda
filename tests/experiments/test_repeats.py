"""Repeats are samples: a real worker makes one upstream call per repeat at temperature 0, and
an experiment reuses stored answers only when it opts in, one answer per repeat."""

import time
import uuid
from collections import Counter

import pytest

from experiments import services
from experiments.models import DatasetItem, Experiment, ExperimentStatus, Run, RunStatus
from promptlab.accounts.models import Role
from prompts import services as prompt_services
from tests.conftest import start_worker, stop
from tests.factories import DatasetFactory, MembershipFactory
from tests.fake_openai import Scripted

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ITEMS, REPEATS = 2, 5


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker):
    process = start_worker(name="repeats", concurrency=2, PROMPTLAB_KEY_TEST_OPENAI="sk-test-123")
    yield process
    stop(process)


@pytest.fixture
def experiment_of(worker, endpoint):
    """experiment_of(cache_responses=...) -> a started experiment of ITEMS items x REPEATS repeats at temperature 0.
    The questions are new to the response cache, which the worker keeps in Redis between test runs."""
    owner = MembershipFactory(role=Role.OWNER)
    prompt = prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="answer", message="v1", template="Q: {{ q }}", endpoint=endpoint
    )
    dataset = DatasetFactory(project=owner.project)
    tag = uuid.uuid4().hex
    DatasetItem.objects.bulk_create(
        [DatasetItem(dataset=dataset, row=n, vars={"q": f"question {n} {tag}"}) for n in range(1, ITEMS + 1)]
    )

    def make(**settings) -> Experiment:
        experiment = services.experiment_create(
            project=owner.project, actor=owner.user, name="repeats", dataset=dataset, repeats=REPEATS, concurrency=2,
            variants=[{"name": "a", "prompt": prompt, "version": 1, "params": {"temperature": 0}}], **settings,
        )  # fmt: skip
        return services.experiment_start(experiment=experiment, actor=owner.user)

    return make


def wait_finished(experiment, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        experiment.refresh_from_db()
        if experiment.status not in (ExperimentStatus.DRAFT, ExperimentStatus.RUNNING):
            return
        time.sleep(0.3)
    raise AssertionError(f"not finished after {timeout}s: {services.experiment_counts(experiment)}")


def runs_of(experiment) -> list[Run]:
    runs = list(Run.objects.filter(experiment=experiment).select_related("item").order_by("item__row", "repeat"))
    assert len(runs) == ITEMS * REPEATS and {run.status for run in runs} == {RunStatus.DONE}
    return runs


def answers(runs) -> list[tuple]:
    return [(run.item.row, run.repeat, run.output) for run in runs]


def completions(server) -> list[dict]:
    return [request["body"] for request in server.requests if request["path"] == "/v1/chat/completions"]


def test_each_repeat_at_temperature_zero_is_its_own_upstream_call(experiment_of, llm_server):
    experiment = experiment_of()
    wait_finished(experiment)

    runs = runs_of(experiment)
    assert not any(run.cached for run in runs) and all(run.cost_usd > 0 for run in runs)
    calls = Counter(body["messages"][-1]["content"] for body in completions(llm_server))
    assert calls == {run.messages[-1]["content"]: REPEATS for run in runs}
    assert all(body["temperature"] == 0 for body in completions(llm_server))


def test_with_the_cache_each_repeat_keeps_its_own_answer_and_a_rerun_reuses_them(experiment_of, llm_server):
    llm_server.script(*[Scripted.content(f"answer {n}") for n in range(ITEMS * REPEATS)])  # a different answer to every call
    first = experiment_of(cache_responses=True)
    wait_finished(first)

    first_runs = runs_of(first)
    assert len(completions(llm_server)) == ITEMS * REPEATS  # repeats do not share a cached answer
    assert not any(run.cached for run in first_runs)
    assert len({run.output for run in first_runs}) == ITEMS * REPEATS

    again = experiment_of(cache_responses=True)
    wait_finished(again)

    again_runs = runs_of(again)
    assert len(completions(llm_server)) == ITEMS * REPEATS  # nothing new was sent
    assert all(run.cached and run.cost_usd == 0 for run in again_runs)
    assert answers(again_runs) == answers(first_runs)  # each repeat got back the answer it had
