import pytest
from bs4 import BeautifulSoup
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments import services
from experiments.models import Variant
from promptlab.accounts.models import Role
from prompts import services as prompt_services
from tests.experiments.conftest import make
from tests.factories import MembershipFactory, ModelEndpointFactory

pytestmark = pytest.mark.django_db


def test_progress_fragment_polls_while_running_and_stops_when_done(setup, llm_server, client):
    owner, *_ = setup
    experiment = make(setup)
    services.experiment_start(experiment=experiment, actor=owner.user)
    client.force_login(owner.user)

    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    assert 'hx-trigger="every 1s"' in page and "0/10" in page and "<h1>cmp</h1>" in page

    services.experiment_drain(experiment_id=experiment.pk)
    fragment = client.get(f"/experiments/{experiment.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert fragment.startswith('<section id="experiment-progress"')
    assert "hx-trigger" not in fragment and "10/10" in fragment and "finished" in fragment


def test_other_projects_experiments_are_not_found(setup, client):
    experiment = make(setup)
    client.force_login(MembershipFactory(role=Role.OWNER).user)

    assert client.get(f"/experiments/{experiment.pk}/").status_code == 404


def test_admin_start_action_reports_the_forecast_and_refusals(setup, client):
    owner, *_ = setup
    experiment = make(setup)
    client.force_login(owner.user)

    response = client.post("/admin/experiments/experiment/", {"action": "start", "_selected_action": [experiment.pk]}, follow=True)
    assert "started 10 calls, forecast $" in response.content.decode()
    assert experiment.runs.count() == 10

    response = client.post("/admin/experiments/experiment/", {"action": "start", "_selected_action": [experiment.pk]}, follow=True)
    assert "only a draft can be started" in response.content.decode()


def test_admin_lists_only_the_users_experiments(setup, client):
    make(setup)
    client.force_login(MembershipFactory(role=Role.OWNER).user)

    assert "cmp" not in client.get("/admin/experiments/experiment/").content.decode()


def test_variants_keep_the_version_they_ran_after_the_label_moves(setup, client):
    owner, prompt, *_ = setup
    experiment = make(setup)
    services.experiment_start(experiment=experiment, actor=owner.user)
    prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=2)
    client.force_login(owner.user)

    page = BeautifulSoup(client.get(f"/experiments/{experiment.pk}/").content, "html.parser")
    matrix = BeautifulSoup(client.get(f"/experiments/{experiment.pk}/comparison/").content, "html.parser")

    shown = ["prod: answer v1 (production at start)", "v2: answer v2"]
    assert [td.get_text() for td in page.select("#variants td.display")] == shown
    assert [th.get_text() for th in matrix.select("#matrix thead th")][1:] == shown


def test_the_page_reads_as_many_queries_at_any_number_of_variants(setup, client):
    owner, prompt, *_ = setup
    experiment = make(setup)
    client.force_login(owner.user)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/experiments/{experiment.pk}/").status_code == 200
        return len(captured)

    few = queries()
    for n in range(20):
        Variant.objects.create(experiment=experiment, name=f"extra {n}", prompt=prompt, version=1, endpoint=ModelEndpointFactory())
    assert queries() == few


def test_an_unknown_cost_reads_unknown_never_0(setup, endpoint, llm_server, client):
    owner, prompt, dataset, _ = setup
    unpriced = ModelEndpointFactory(model="openai/promptlab-unpriced-model", api_base=llm_server.base_url, api_key_env=endpoint.api_key_env)
    experiment = services.experiment_create(project=owner.project, actor=owner.user, name="costs", dataset=dataset, variants=[
        {"name": "priced", "prompt": prompt, "version": 2}, {"name": "unpriced", "prompt": prompt, "version": 2, "endpoint": unpriced},
    ], start=True)  # fmt: skip
    services.experiment_drain(experiment_id=experiment.pk)
    client.force_login(owner.user)

    spent = lambda: BeautifulSoup(client.get(f"/experiments/{experiment.pk}/").content, "html.parser").select_one(".spent").get_text()  # noqa: E731
    assert spent() == "unknown"
    experiment.runs.filter(variant__name="unpriced").delete()  # every cost left is known: so is their sum
    assert spent().startswith("$0.0")
