"""Experiments created and changed in the admin go through the same services and checks as everywhere."""

import pytest

from experiments import services
from experiments.models import Experiment
from promptlab.accounts.models import Role
from prompts import services as prompt_services
from tests.factories import DatasetFactory, MembershipFactory

pytestmark = pytest.mark.django_db

ADD = "/admin/experiments/experiment/add/"


def form_data(project, dataset, variants, **fields):
    data = {
        "project": project.pk, "name": "admin-made", "dataset": dataset.pk, "repeats": 1, "concurrency": 4, "budget_usd": "",
        "variants-TOTAL_FORMS": str(len(variants)), "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "1", "variants-MAX_NUM_FORMS": "1000", **fields,
    }  # fmt: skip
    for index, variant in enumerate(variants):
        for key, value in {"name": "", "label": "", "version": "", "endpoint": "", "params": "{}", **variant}.items():
            data[f"variants-{index}-{key}"] = value
    return data


def test_an_editor_creates_a_draft_with_its_variants(setup, client):
    owner, prompt, dataset, endpoint = setup
    client.force_login(owner.user)

    response = client.post(ADD, form_data(owner.project, dataset, [
        {"name": "prod", "prompt": prompt.pk, "label": "production"},
        {"name": "v2", "prompt": prompt.pk, "version": 2, "endpoint": endpoint.pk, "params": '{"temperature": 0.2}'},
    ]))  # fmt: skip

    assert response.status_code == 302, response.content.decode()[:2000]
    experiment = Experiment.objects.get(name="admin-made")
    assert experiment.created_by == owner.user and experiment.concurrency == 4
    assert [(v.name, v.label, v.version, v.params) for v in experiment.variants.all()] == [
        ("prod", "production", None, {}), ("v2", "", 2, {"temperature": 0.2})
    ]  # fmt: skip


def test_versions_are_typed_as_v3_or_3_in_either_box(setup, client):
    owner, prompt, dataset, _ = setup
    client.force_login(owner.user)

    response = client.post(ADD, form_data(owner.project, dataset, [
        {"name": "by version", "prompt": prompt.pk, "version": "v2"}, {"name": "by label", "prompt": prompt.pk, "label": "V1"},
    ]))  # fmt: skip

    assert response.status_code == 302, response.content.decode()[:2000]
    variants = Experiment.objects.get(name="admin-made").variants.all()
    assert [(v.name, v.label, v.version) for v in variants] == [("by version", "", 2), ("by label", "", 1)]
    page = client.get(f"/admin/experiments/experiment/{variants[0].experiment_id}/change/").content.decode()
    assert "by version: answer v2" in page and "by label: answer v1" in page


@pytest.mark.parametrize("variant, fields, error", [
    ({"params": '{"temperature": 9}'}, {}, "temperature must be between 0 and 2"),
    ({}, {"repeats": 0}, "greater than or equal to 1"),
    ({}, {"budget_usd": "0"}, "A budget must be more than 0 USD."),
    ({"version": "v0"}, {}, "&#x27;v0&#x27; is not a version"),
    ({"label": "-1"}, {}, "&#x27;-1&#x27; is not a version"),
    ({"version": "production"}, {}, "&#x27;production&#x27; is not a version: type v3 or 3"),
])  # fmt: skip
def test_bad_input_is_shown_on_the_form_and_nothing_is_saved(setup, client, variant, fields, error):
    owner, prompt, dataset, _ = setup
    client.force_login(owner.user)

    response = client.post(ADD, form_data(owner.project, dataset, [{"prompt": prompt.pk, **variant}], **fields))

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Experiment.objects.exists()


def test_other_projects_datasets_and_prompts_are_neither_offered_nor_accepted(setup, client):
    owner, prompt, dataset, endpoint = setup
    stranger = MembershipFactory(role=Role.OWNER)
    theirs = prompt_services.prompt_create(
        project=stranger.project, actor=stranger.user, name="secret-prompt", message="v1", template="hi", endpoint=endpoint
    )
    their_dataset = DatasetFactory(project=stranger.project, name="secret-dataset")
    client.force_login(owner.user)

    page = client.get(ADD).content.decode()
    assert "secret-prompt" not in page and "secret-dataset" not in page

    response = client.post(ADD, form_data(owner.project, their_dataset, [{"prompt": theirs.pk}]))
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Experiment.objects.exists()


def test_a_started_experiment_cannot_be_changed(setup, client):
    owner, prompt, dataset, _ = setup
    experiment = services.experiment_create(
        project=owner.project, actor=owner.user, name="started", dataset=dataset, variants=[{"prompt": prompt, "version": 1}]
    )
    services.experiment_start(experiment=experiment, actor=owner.user)
    client.force_login(owner.user)

    client.post(f"/admin/experiments/experiment/{experiment.pk}/change/", form_data(owner.project, dataset, [{"prompt": prompt.pk}], name="renamed", repeats=5))

    experiment.refresh_from_db()
    assert experiment.name == "started" and experiment.repeats == 1 and experiment.variants.count() == 1


def test_a_draft_is_changed_through_the_service(setup, client):
    owner, prompt, dataset, _ = setup
    experiment = services.experiment_create(
        project=owner.project, actor=owner.user, name="draft", dataset=dataset, variants=[{"prompt": prompt, "version": 1}]
    )
    variant = experiment.variants.get()
    data = form_data(owner.project, dataset, [{"id": variant.pk, "experiment": experiment.pk, "name": "only", "prompt": prompt.pk, "version": 2}],
                     name="draft", repeats=3, **{"variants-INITIAL_FORMS": "1"})  # fmt: skip
    client.force_login(owner.user)

    response = client.post(f"/admin/experiments/experiment/{experiment.pk}/change/", data)

    assert response.status_code == 302, response.content.decode()[:2000]
    experiment.refresh_from_db()
    assert experiment.repeats == 3
    assert [(v.name, v.version) for v in experiment.variants.all()] == [("only", 2)]
