"""An honest lifecycle: running -> scoring -> finished. An experiment whose calls are made is
"scoring" until its answered runs have their scores (an errored score counts), and only then
"finished"; pages and the API show how far scoring has come."""

import threading

import pytest
from bs4 import BeautifulSoup
from django.db import connection

from evaluations import progress
from evaluations import services as evaluations
from evaluations.models import Score, ScoreStatus
from experiments import extensions
from experiments import services as experiments
from experiments.models import Experiment, ExperimentStatus, Run, RunStatus
from promptlab.accounts import api_keys
from tests.api.conftest import client_with

pytestmark = pytest.mark.django_db


def ran(answering, **fields) -> Experiment:
    """An experiment of prod against v2 whose calls are all made (in this process) and not yet scored."""
    experiment = answering.experiment(**fields)
    experiments.experiment_start(experiment=experiment, actor=answering.owner.user)
    experiments.experiment_drain(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    return experiment


def answered(experiment) -> list[int]:
    return list(experiment.runs.filter(status=RunStatus.DONE).order_by("pk").values_list("pk", flat=True))


def test_an_experiment_is_scoring_until_its_last_score_is_in(answering, llm_server):
    experiment = ran(answering)

    assert experiment.status == ExperimentStatus.SCORING and experiment.finished_at is None
    assert progress.scoring_progress(experiment) == extensions.ScoringProgress(scored=0, to_score=10, grades=True)
    *first, last = answered(experiment)
    for run_id in first:
        evaluations.score_run(run_id=run_id)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.SCORING
    assert (progress.scoring_progress(experiment).scored, progress.scoring_progress(experiment).pending) == (9, 1)

    evaluations.score_run(run_id=last)

    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.FINISHED and experiment.finished_at is not None
    assert progress.scoring_progress(experiment).scored == 10


def test_items_own_assertions_keep_it_scoring_too(answering, llm_server):
    answering.dataset.items.update(assertions=[{"kind": "contains", "config": {"value": "q"}, "weight": 1.0, "metric": "",
                                                "threshold": None, "inverted": False}])  # fmt: skip
    experiment = ran(answering, evaluators=())

    assert experiment.status == ExperimentStatus.SCORING
    evaluations.score_runs(run_ids=answered(experiment))
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.FINISHED


def test_an_experiment_nothing_scores_is_finished_when_its_calls_are(answering, llm_server):
    experiment = ran(answering, evaluators=())

    assert experiment.status == ExperimentStatus.FINISHED
    assert progress.scoring_progress(experiment) == extensions.ScoringProgress(scored=10, to_score=10, grades=False)


def test_an_errored_score_counts_as_in(answering, llm_server):
    experiment = ran(answering)
    *first, last = answered(experiment)
    evaluations.score_runs(run_ids=first)
    Score.objects.create(run_id=last, evaluator=answering.brief, evaluator_version=1, status=ScoreStatus.ERRORED, reason="judge down")

    assert experiments.experiment_scored_if_done(experiment_id=experiment.pk) is True
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.FINISHED


def test_a_score_written_while_the_calls_end_is_not_lost(answering, llm_server, monkeypatch):
    """The last score lands after the runner asked whether scores are to come but before it
    marked the experiment scoring: the scorer saw "running" and left the state alone, so the
    runner asks again."""
    experiment = answering.experiment()
    experiments.experiment_start(experiment=experiment, actor=answering.owner.user)
    real = extensions._scoring
    asked = []

    def to_come(experiment):
        if not asked:  # the runner's question: every score lands right after it
            asked.append(experiment.status)
            for run_id in answered(experiment):
                evaluations.score_run(run_id=run_id)
            return True
        return real.to_come(experiment)

    monkeypatch.setattr(extensions, "_scoring", extensions.Scoring(to_come=to_come, progress=real.progress))
    experiments.experiment_drain(experiment_id=experiment.pk)

    experiment.refresh_from_db()
    assert asked == [ExperimentStatus.RUNNING]
    assert experiment.status == ExperimentStatus.FINISHED


def test_a_cancelled_experiment_stays_cancelled(answering, llm_server):
    experiment = answering.experiment()
    experiments.experiment_start(experiment=experiment, actor=answering.owner.user)
    run = experiments.run_claim(experiment_id=experiment.pk)
    experiments.experiment_cancel(experiment=experiment, actor=answering.owner.user)
    experiments.run_execute(run=run)  # the call in flight finishes

    experiments.experiment_drain(experiment_id=experiment.pk)
    evaluations.score_run(run_id=run.pk)

    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.CANCELLED
    assert Score.objects.filter(run=run, status=ScoreStatus.OK).exists()


def test_adding_an_evaluator_makes_a_finished_experiment_scoring_until_its_scores_are_in(answering, llm_server,
                                                                                          django_capture_on_commit_callbacks):  # fmt: skip
    experiment = ran(answering)
    evaluations.score_runs(run_ids=answered(experiment))
    owner = answering.owner
    mentions = evaluations.evaluator_create(project=owner.project, actor=owner.user, name="mentions", kind="contains", config={"value": "q"})

    with django_capture_on_commit_callbacks() as enqueued:
        evaluations.experiment_evaluators_set(experiment=experiment, actor=owner.user, evaluators=[answering.brief, mentions])

    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.SCORING and experiment.finished_at is None
    assert len(enqueued) == 1  # the re-score of the runs with the added evaluator
    evaluations.score_runs(run_ids=answered(experiment)[:4], evaluator_ids=[mentions.pk])
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.SCORING

    evaluations.experiment_evaluators_set(experiment=experiment, actor=owner.user, evaluators=[answering.brief])

    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.FINISHED  # what was still to come is no longer asked for


def test_retrying_errored_scores_leaves_a_finished_experiment_finished(answering, llm_server):
    experiment = ran(answering)
    evaluations.score_runs(run_ids=answered(experiment))
    Score.objects.filter(run_id=answered(experiment)[0]).update(status=ScoreStatus.ERRORED, value=None, passed=None)

    evaluations.experiment_rescore(experiment=experiment, actor=answering.owner.user, retry_errors=True)

    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.FINISHED


@pytest.mark.django_db(transaction=True)
def test_two_scorers_that_finish_at_once_both_settle_safely(answering, llm_server):
    experiment = ran(answering)
    for run_id in answered(experiment):
        evaluations.score_run(run_id=run_id, settle=False)
    assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.SCORING
    together, results = threading.Barrier(2), []

    def settle():
        try:
            together.wait(timeout=30)
            results.append(experiments.experiment_scored_if_done(experiment_id=experiment.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=settle) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results) == [False, True]
    assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.FINISHED


# --- Where it shows -------------------------------------------------------------------------


def test_the_progress_page_shows_the_scoring_and_polls_until_finished(answering, llm_server, client):
    experiment = ran(answering)
    client.force_login(answering.owner.user)

    fragment = BeautifulSoup(client.get(f"/experiments/{experiment.pk}/", HTTP_HX_REQUEST="true").content, "html.parser")
    assert fragment.select_one(".status").text == "scoring"
    assert fragment.select_one(".scoring .scored-total").text == "0/10"
    assert fragment.select_one("#experiment-progress")["hx-trigger"] == "every 1s"

    evaluations.score_runs(run_ids=answered(experiment))
    fragment = BeautifulSoup(client.get(f"/experiments/{experiment.pk}/", HTTP_HX_REQUEST="true").content, "html.parser")
    assert fragment.select_one(".status").text == "finished"
    assert not fragment.select_one("#experiment-progress").has_attr("hx-trigger")


def test_the_comparison_page_polls_its_scoring_progress_then_reloads_the_numbers(answering, llm_server, client):
    experiment = ran(answering)
    client.force_login(answering.owner.user)
    url = f"/experiments/{experiment.pk}/comparison/progress/"

    page = BeautifulSoup(client.get(f"/experiments/{experiment.pk}/comparison/").content, "html.parser")
    assert page.select_one("#scoring-progress")["hx-get"] == url and page.select_one("#scoring-progress")["hx-trigger"] == "load"
    response = client.get(url, HTTP_HX_REQUEST="true")
    fragment = BeautifulSoup(response.content, "html.parser").select_one("#scoring-progress")
    assert fragment["hx-trigger"] == "every 3s" and "HX-Trigger" not in response
    assert fragment.select_one(".phase").text == "Scoring" and fragment.select_one(".scored-total").text == "0/10"

    evaluations.score_runs(run_ids=answered(experiment))
    response = client.get(url, HTTP_HX_REQUEST="true")
    fragment = BeautifulSoup(response.content, "html.parser").select_one("#scoring-progress")
    assert not fragment.has_attr("hx-trigger") and response["HX-Trigger"] == "scores-changed"
    assert fragment.select_one(".phase").text == "Finished" and fragment.select_one(".scored-total").text == "10/10"
    page = BeautifulSoup(client.get(f"/experiments/{experiment.pk}/comparison/").content, "html.parser")
    assert page.select_one("#scoring-progress") is None  # nothing to follow on a finished experiment
    for listener in (page.select_one("#stats-panel"), page.select_one("#matrix-filters")):
        assert "scores-changed from:body" in listener["hx-trigger"]


def test_the_api_says_scoring_and_how_far_it_has_come(answering, llm_server):
    experiment = ran(answering)
    owner = answering.owner
    _, secret = api_keys.api_key_create(project=owner.project, actor=owner.user, name="ci", scopes=["read"])
    api = client_with(secret)
    evaluations.score_runs(run_ids=answered(experiment)[:3])

    document = api.get(f"/api/v1/experiments/{experiment.pk}/").json()

    assert document["status"] == "scoring" and document["scoring"] == {"scored": 3, "to_score": 10}
    assert {variant["name"]: variant["id"] for variant in document["variants"]} == dict(experiment.variants.values_list("name", "pk"))
    assert Run.objects.filter(experiment=experiment).count() == document["counts"]["total"] == 10
