"""In Chromium: open an experiment's comparison, filter its failures, rate a cell and see the
aggregate change; and, with a real worker, watch a running experiment reach 100%."""

import pytest

from evaluations import services as evaluations
from experiments import services as experiments
from experiments.models import DatasetItem, ExperimentStatus
from promptlab.accounts.models import Role
from prompts import services as prompts
from tests.conftest import ARTIFACTS, sign_in, start_worker, stop
from tests.evaluations.conftest import variant_runs
from tests.factories import DatasetFactory, DatasetItemFactory, ExperimentFactory, MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_filter_failures_and_rate_a_cell(page):
    owner = MembershipFactory(role=Role.OWNER, user__email="lead@example.com")
    experiment = ExperimentFactory(project=owner.project, status=ExperimentStatus.FINISHED)
    experiment.checks = [
        evaluations.evaluator_create(project=owner.project, actor=owner.user, name=name, kind="contains", config={"value": name})
        for name in ("refund", "sorry")
    ]
    evaluations.experiment_evaluators_set(experiment=experiment, actor=owner.user, evaluators=experiment.checks)
    experiment.items = [DatasetItemFactory(dataset=experiment.dataset) for _ in range(12)]
    v1 = variant_runs(experiment, "v1", [i < 4 for i in range(12)])
    v2 = variant_runs(experiment, "v2", [i < 10 for i in range(12)])

    sign_in(page, "lead@example.com")
    page.goto(f"/experiments/{experiment.pk}/comparison/")
    verdict = page.locator(f'#verdicts li[data-pair="{v1.pk}|{v2.pk}"] .pass-verdict')
    verdict.wait_for()
    assert f"{v2.display} passes more often than {v1.display}" in verdict.inner_text()
    assert page.locator("#matrix tbody tr").count() == 12

    page.check("input[name=failures]")
    page.wait_for_function("document.querySelectorAll('#matrix tbody tr').length === 8")
    assert "failures=1" in page.url
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "comparison-matrix.png", full_page=True)

    count = page.locator('#rating-summary tr[data-variant="v2"] .rating-count')
    assert count.inner_text() == "0"
    page.locator("#matrix tbody tr").first.locator("td.cell").nth(1).locator("button[value='1']").click()
    page.wait_for_function("document.querySelector('#rating-summary tr[data-variant=\"v2\"] .rating-count').textContent === '1'")
    assert page.locator("#matrix tbody tr").first.locator("td.cell").nth(1).locator("button[aria-pressed=true]").count() == 1


@pytest.mark.worker
def test_a_running_experiments_progress_bar_reaches_100(page, endpoint, llm_server):
    owner = MembershipFactory(role=Role.OWNER, user__email="pm@example.com")
    prompt = prompts.prompt_create(project=owner.project, actor=owner.user, name="answer", message="v1", template="Q: {{ q }}", endpoint=endpoint)
    dataset = DatasetFactory(project=owner.project)
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"q": f"question {n}"}) for n in range(1, 21)])
    experiment = experiments.experiment_create(project=owner.project, actor=owner.user, name="watch", dataset=dataset, concurrency=2,
                                               variants=[{"prompt": prompt, "version": 1}])  # fmt: skip
    llm_server.latency = 0.15  # slow enough to see it move
    sign_in(page, "pm@example.com")
    worker = start_worker(concurrency=2, name="progress")
    try:
        experiments.experiment_start(experiment=experiment, actor=owner.user)
        page.goto(f"/experiments/{experiment.pk}/")
        page.wait_for_function("document.querySelector('#experiment-progress progress').value === 100", timeout=90_000)
    finally:
        stop(worker)
    assert page.locator("#experiment-progress .status").inner_text() == "finished"
    assert page.locator("#experiment-progress .done-total").inner_text() == "20/20"
    assert page.locator("#experiment-progress").get_attribute("hx-trigger") is None  # it stopped polling
