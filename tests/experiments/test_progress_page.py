import pytest

from experiments import services
from promptlab.accounts.models import Role
from tests.experiments.conftest import make
from tests.factories import MembershipFactory

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
