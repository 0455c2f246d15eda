"""A key of one project never reads or changes another project: every endpoint, by URL."""

import uuid

import pytest
from django.urls import get_resolver

from evaluations import services as evaluation_services
from evaluations.models import Score
from experiments.models import DatasetItem, ExperimentStatus
from promptlab.accounts.models import Role
from prompts import services as prompt_services
from prompts.models import Label, PromptCall
from tests.api.conftest import client_with, error_of
from tests.factories import DatasetFactory, ExperimentFactory, MembershipFactory, RunFactory

pytestmark = pytest.mark.django_db

# (method, URL, body): every operation of the API, pointed at the other project's objects.
ENDPOINTS = [
    ("get", "/api/v1/prompts/", None),
    ("post", "/api/v1/prompts/", {"name": "new", "model": "{endpoint}", "message": "m", "template": "Hi"}),
    ("get", "/api/v1/prompts/theirs/", None),
    ("patch", "/api/v1/prompts/theirs/", {"template": "Changed {{ name }}", "message": "m"}),
    ("get", "/api/v1/prompts/theirs/versions/", None),
    ("get", "/api/v1/prompts/theirs/versions/1/", None),
    ("post", "/api/v1/prompts/theirs/render/", {"variables": {"name": "x"}}),
    ("post", "/api/v1/prompts/theirs/invoke/", {"variables": {"name": "x"}}),
    ("post", "/api/v1/prompts/theirs/labels/", {"label": "production", "version": 1}),
    ("get", "/api/v1/calls/{call}/", None),
    ("post", "/api/v1/calls/{call}/feedback/", {"thumbs": "down"}),
    ("get", "/api/v1/datasets/", None),
    ("post", "/api/v1/datasets/", {"name": "new-dataset"}),
    ("get", "/api/v1/datasets/their-cases/", None),
    ("get", "/api/v1/datasets/their-cases/items/", None),
    ("post", "/api/v1/datasets/their-cases/items/", {"items": [{"vars": {"name": "x"}}]}),
    ("post", "/api/v1/datasets/their-cases/upload/", "upload"),
    ("get", "/api/v1/experiments/", None),
    ("post", "/api/v1/experiments/", {"name": "e", "dataset": "their-cases", "variants": [{"prompt": "theirs"}]}),
    ("get", "/api/v1/experiments/{experiment}/", None),
    ("post", "/api/v1/experiments/{experiment}/start/", None),
    ("post", "/api/v1/experiments/{experiment}/cancel/", None),
    ("post", "/api/v1/experiments/{experiment}/resume/", None),
    ("post", "/api/v1/experiments/{experiment}/retry-errors/", None),
    ("post", "/api/v1/experiments/{experiment}/budget/", {"budget_usd": "5"}),
    ("get", "/api/v1/experiments/{experiment}/runs/", None),
    ("get", "/api/v1/experiments/{experiment}/scores/", None),
    ("get", "/api/v1/experiments/{experiment}/comparison/", None),
    ("get", "/api/v1/evaluators/", None),
]
LISTS_AND_CREATES = {"/api/v1/prompts/", "/api/v1/datasets/", "/api/v1/experiments/", "/api/v1/evaluators/"}


@pytest.fixture
def theirs(endpoint):
    """Another project with a prompt, a dataset, an experiment scored by an evaluator, and a call."""
    member = MembershipFactory(role=Role.OWNER)
    prompt = prompt_services.prompt_create(
        project=member.project, actor=member.user, name="theirs", message="m", template="Secret {{ name }}", endpoint=endpoint
    )
    prompt_services.label_move(prompt=prompt, actor=member.user, label="staging", version=1)
    dataset = DatasetFactory(project=member.project, name="their-cases")
    item = DatasetItem.objects.create(dataset=dataset, row=1, vars={"name": "x"})
    experiment = ExperimentFactory(project=member.project, dataset=dataset, status=ExperimentStatus.CANCELLED)
    call = PromptCall.objects.create(project=member.project, prompt=prompt, prompt_name="theirs", version=1, model="m", status="done")
    check = evaluation_services.evaluator_create(project=member.project, actor=member.user, name="their-check", kind="contains",
                                                 config={"value": "Secret"})  # fmt: skip
    evaluation_services.experiment_evaluators_set(experiment=experiment, actor=member.user, evaluators=[check])
    run = RunFactory(experiment=experiment, item=item, output="their secret answer")  # not a factory item: its row would clash
    Score.objects.create(run=run, evaluator=check, evaluator_version=check.version, status="ok", value=1, passed=True, reason="their reason")
    return {"project": member.project, "prompt": prompt, "dataset": dataset, "experiment": experiment, "call": call}


def send(client, method, url, body, theirs, endpoint, **extra):
    url = url.format(call=theirs["call"].pk, experiment=theirs["experiment"].pk)
    if body == "upload":
        from django.core.files.uploadedfile import SimpleUploadedFile

        upload = SimpleUploadedFile("cases.csv", b"name\nx\n", content_type="text/csv")
        return client.post(url + extra.get("query", ""), {"file": upload}, format="multipart")
    if isinstance(body, dict):
        body = {key: value.format(endpoint=endpoint.name) if isinstance(value, str) else value for key, value in body.items()}
    return getattr(client, method)(url + extra.get("query", ""), body, format="json")


def test_the_list_covers_every_endpoint():
    api_routes = {
        str(pattern.pattern) for resolver in get_resolver().url_patterns if str(resolver.pattern) == "api/v1/"
        for include in resolver.url_patterns for pattern in include.url_patterns
    }  # fmt: skip
    tested = {url.removeprefix("/api/v1/") for _, url, _ in ENDPOINTS}
    normalized = {
        route.replace("<slug:name>", "theirs" if route.startswith("prompts") else "their-cases")
        .replace("<version:version>", "1").replace("<uuid:call_id>", "{call}").replace("<int:pk>", "{experiment}")
        for route in api_routes
    }  # fmt: skip
    assert normalized == tested


@pytest.mark.parametrize(("method", "url", "body"), ENDPOINTS, ids=[f"{m} {u}" for m, u, _ in ENDPOINTS])
def test_a_key_never_reaches_another_projects_objects(method, url, body, make_key, theirs, endpoint):
    client = client_with(make_key())  # every scope, made by its project's owner
    before = (theirs["prompt"].history.count(), list(Label.objects.filter(prompt=theirs["prompt"]).values_list("name", "version")),
              theirs["dataset"].items.count(), theirs["call"].feedback.count())  # fmt: skip

    response = send(client, method, url, body, theirs, endpoint)

    if url in LISTS_AND_CREATES and response.status_code == 400:
        # Refused exactly as a name that exists nowhere would be: nothing is revealed.
        unknown = {key: value.replace("their", "nobodys") for key, value in body.items() if isinstance(value, str)}
        again = send(client, method, url, {**body, **unknown, "variants": [{"prompt": "nobodys"}]}, theirs, endpoint)
        assert error_of(response)["message"].replace("their", "nobodys") == error_of(again)["message"]
    elif url in LISTS_AND_CREATES:
        assert response.status_code in (200, 201), response.content
        assert "their" not in response.content.decode()
    else:
        assert response.status_code == 404, response.content
        assert error_of(response)["code"] == "not_found"
    theirs["experiment"].refresh_from_db()
    assert theirs["experiment"].status == ExperimentStatus.CANCELLED
    after = (theirs["prompt"].history.count(), list(Label.objects.filter(prompt=theirs["prompt"]).values_list("name", "version")),
             theirs["dataset"].items.count(), theirs["call"].feedback.count())  # fmt: skip
    assert after == before


@pytest.mark.parametrize(("method", "url", "body"), ENDPOINTS, ids=[f"{m} {u}" for m, u, _ in ENDPOINTS])
def test_naming_another_project_answers_404(method, url, body, make_key, theirs, endpoint):
    client = client_with(make_key())

    response = send(client, method, url, body, theirs, endpoint, query=f"?project={theirs['project'].slug}")

    assert response.status_code == 404, response.content
    assert error_of(response)["code"] == "not_found"


def test_same_names_in_two_projects_stay_apart(api, prompt, theirs, endpoint):
    other = theirs["project"]
    prompt_services.prompt_create(project=other, actor=None, name="greet", message="m", template="Not yours", endpoint=endpoint)

    assert api.get("/api/v1/prompts/greet/?label=latest").json()["template"] == "Hi {{ name }}."


def test_an_unknown_call_id_is_404(api, project):
    response = api.get(f"/api/v1/calls/{uuid.uuid4()}/")

    assert response.status_code == 404
