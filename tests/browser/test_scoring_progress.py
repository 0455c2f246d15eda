"""In Chromium: the comparison page of an experiment whose calls are made follows its scoring,
and when the last score is in it reloads the statistics and the matrix by itself."""

import pytest

from evaluations import services as evaluations
from experiments import services as experiments
from experiments.models import ExperimentStatus, RunStatus
from tests.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_comparison_follows_the_scoring_and_reloads_when_it_is_finished(page, answering, llm_server):
    experiment = answering.experiment()
    experiments.experiment_start(experiment=experiment, actor=answering.owner.user)
    experiments.experiment_drain(experiment_id=experiment.pk)  # the calls; no worker scores them
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.SCORING

    sign_in(page, answering.owner.user.email)
    page.goto(f"/experiments/{experiment.pk}/comparison/")
    page.wait_for_function("document.querySelector('#scoring-progress .scored-total')?.textContent === '0/10'", timeout=30_000)
    assert page.locator("#scoring-progress .phase").inner_text() == "Scoring"
    page.locator("#variant-summary").wait_for()
    assert "100%" not in page.locator("#variant-summary").inner_text()  # nothing graded yet
    assert page.locator("#matrix .badge-pending").count() > 0

    evaluations.score_runs(run_ids=list(experiment.runs.filter(status=RunStatus.DONE).values_list("pk", flat=True)))

    page.wait_for_function("document.querySelector('#scoring-progress .phase')?.textContent === 'Finished'", timeout=30_000)
    assert page.locator("#scoring-progress").get_attribute("hx-trigger") is None  # it stopped polling
    page.wait_for_function("document.querySelector('#variant-summary')?.textContent.includes('100%')", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('#matrix .badge-pending').length === 0", timeout=30_000)
    assert page.locator("#matrix .badge-pass").count() > 0
