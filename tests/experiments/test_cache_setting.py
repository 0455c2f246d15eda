"""Whether an experiment reuses cached answers is chosen where experiments are made: the page,
the API and the admin, all through the same services; it is off unless chosen."""

import pytest
from bs4 import BeautifulSoup

from experiments import services
from experiments.models import Experiment
from promptlab.accounts import api_keys
from tests.api.conftest import client_with

pytestmark = pytest.mark.django_db


def page_form(prompt, dataset, **extra) -> dict:
    return {"name": "cached", "dataset": dataset.pk, "repeats": 3, "concurrency": 2, "budget_usd": "",
            "variant0_prompt": prompt.pk, "variant0_at": "production", **extra}  # fmt: skip


@pytest.mark.parametrize("ticked, expected", [({"cache_responses": "on"}, True), ({}, False)])
def test_the_new_experiment_page_offers_the_cache(setup, client, ticked, expected):
    owner, prompt, dataset, _ = setup
    client.force_login(owner.user)
    url = f"/projects/{owner.project.slug}/experiments/new/"

    box = BeautifulSoup(client.get(url).content, "html.parser").select_one("input[name=cache_responses]")
    assert box["type"] == "checkbox" and not box.has_attr("checked")
    assert "Reuse cached answers" in box.find_parent("p").get_text()

    response = client.post(url, page_form(prompt, dataset, **ticked))
    assert response.status_code == 302
    assert Experiment.objects.get().cache_responses is expected


def test_the_api_takes_the_cache_choice_and_shows_it(setup):
    owner, prompt, dataset, _ = setup
    _, secret = api_keys.api_key_create(project=owner.project, actor=owner.user, name="svc", scopes=["run", "read"])
    api = client_with(secret)
    body = {"name": "e", "dataset": dataset.name, "variants": [{"prompt": prompt.name}]}

    chosen = api.post("/api/v1/experiments/", {**body, "cache_responses": True}, format="json")
    default = api.post("/api/v1/experiments/", body, format="json")

    assert chosen.status_code == default.status_code == 201, chosen.json()
    assert chosen.json()["cache_responses"] is True and default.json()["cache_responses"] is False
    assert Experiment.objects.get(pk=chosen.json()["id"]).cache_responses is True
    assert api.get(f"/api/v1/experiments/{default.json()['id']}/").json()["cache_responses"] is False


def test_the_admin_creates_and_changes_the_cache_choice(setup, client):
    owner, prompt, dataset, _ = setup
    client.force_login(owner.user)
    data = {
        "project": owner.project.pk, "name": "admin-made", "dataset": dataset.pk, "repeats": 2, "concurrency": 4,
        "budget_usd": "", "cache_responses": "on", "variants-TOTAL_FORMS": "1", "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "1", "variants-MAX_NUM_FORMS": "1000", "variants-0-name": "prod",
        "variants-0-prompt": prompt.pk, "variants-0-label": "production", "variants-0-version": "", "variants-0-endpoint": "",
        "variants-0-params": "{}",
    }  # fmt: skip

    assert client.post("/admin/experiments/experiment/add/", data).status_code == 302
    experiment = Experiment.objects.get()
    assert experiment.cache_responses is True

    services.experiment_update(experiment=experiment, actor=owner.user, variants=[{"prompt": prompt}], cache_responses=False)
    experiment.refresh_from_db()
    assert experiment.cache_responses is False
