"""Scoring on a real Celery worker: runs are scored as they finish, through the broker."""

import time

import pytest

from evaluations import services as evaluation_services
from evaluations.models import Score, ScoreStatus
from experiments import services
from experiments.models import DatasetItem, ExperimentStatus, Run, RunStatus
from promptlab.accounts.models import Role
from prompts import services as prompt_services
from tests.conftest import start_worker, stop
from tests.factories import DatasetFactory, MembershipFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_every_done_run_ends_with_the_scores_of_its_experiments_evaluators(endpoint, llm_server):
    owner = MembershipFactory(role=Role.OWNER)
    prompt = prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="answer", message="v1", template="Q: {{ q }}", endpoint=endpoint
    )
    dataset = DatasetFactory(project=owner.project)
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"q": f"question {n}"}) for n in range(1, 13)])
    experiment = services.experiment_create(
        project=owner.project, actor=owner.user, name="scored", dataset=dataset, concurrency=4,
        variants=[{"name": "a", "prompt": prompt, "version": 1}],
    )  # fmt: skip
    answers = evaluation_services.evaluator_create(
        project=owner.project, actor=owner.user, name="answers", kind="starts_with", config={"value": "fake answer to:"}
    )
    odd = evaluation_services.evaluator_create(
        project=owner.project, actor=owner.user, name="odd", kind="regex", config={"value": r"question \d*[13579]$"}
    )
    evaluation_services.experiment_evaluators_set(experiment=experiment, actor=owner.user, evaluators=[answers, odd])

    worker = start_worker(concurrency=2, name="scoring")
    try:
        services.experiment_start(experiment=experiment, actor=owner.user)
        deadline = time.monotonic() + 90
        while Score.objects.filter(run__experiment=experiment, status=ScoreStatus.OK).count() < 24:
            assert time.monotonic() < deadline, f"scores after 90s: {list(Score.objects.values_list('status', flat=True))}"
            time.sleep(0.3)
    finally:
        stop(worker)

    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.FINISHED
    runs = Run.objects.filter(experiment=experiment)
    assert runs.count() == runs.filter(status=RunStatus.DONE).count() == 12
    for run in runs.select_related("item"):
        scores = {score.evaluator.name: score for score in run.scores.select_related("evaluator")}
        assert set(scores) == {"answers", "odd"}
        assert scores["answers"].passed and scores["answers"].attempts == 1
        assert scores["odd"].passed is (run.item.row % 2 == 1)
    assert Score.objects.count() == 24
    assert len([r for r in llm_server.requests if r["path"].endswith("/chat/completions")]) == 12  # scoring called no model
