"""Prompts through the API: fetch, list, create, new version, versions, render, labels."""

import pytest

from prompts import services as prompt_services
from prompts.models import LabelMove, Prompt
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db


def test_get_answers_the_production_version_by_default(api, prompt):
    response = api.get("/api/v1/prompts/greet/")

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "greet" and body["version"] == 1 and body["labels"] == ["production"]
    assert body["kind"] == "text" and body["template"] == "Hello {{ name }}!" and body["messages"] is None
    assert body["model"] == prompt.endpoint.name and body["provider_model"] == "openai/gpt-4o-mini"
    assert body["params"] == {} and body["variables"] == [] and body["used_variables"] == ["name"]
    assert body["message"] == "first"


@pytest.mark.parametrize(("query", "version"), [
    ("?version=2", 2), ("?label=latest", 2), ("?label=production", 1), ("?version=1", 1),
    ("?version=v1", 1), ("?version=V2", 2), ("?label=v1", 1), ("?label=2", 2),  # v3 and 3 are version 3, wherever they are typed
])  # fmt: skip
def test_get_by_version_or_label(api, prompt, query, version):
    body = api.get(f"/api/v1/prompts/greet/{query}").json()

    assert body["version"] == version


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [("?label=staging", 404, "not_found"), ("?version=9", 404, "not_found"), ("?version=x", 400, "invalid"),
     ("?version=1&label=production", 400, "invalid"), ("?label=no%20spaces", 400, "invalid"), ("?label=v9", 404, "not_found"),
     ("?version=v0", 400, "invalid"), ("?version=-1", 400, "invalid"), ("?label=v0", 400, "invalid"), ("?version=production", 400, "invalid")],
)  # fmt: skip
def test_unknown_or_malformed_label_and_version_name_the_problem(api, prompt, query, status, code):
    response = api.get(f"/api/v1/prompts/greet/{query}")

    assert response.status_code == status
    assert error_of(response)["code"] == code


def test_a_label_typed_as_a_version_is_that_version_and_a_number_that_is_none_is_refused(api, prompt):
    assert error_of(api.get("/api/v1/prompts/greet/?label=v9"))["message"] == "The prompt 'greet' has no version 9."
    refused = error_of(api.get("/api/v1/prompts/greet/?version=v0"))
    assert refused["details"] == {"version": ["'v0' is not a version: versions are numbered from 1 (v1, v2, ...)."]}
    assert api.get("/api/v1/prompts/greet/versions/v1/").json()["version"] == 1
    assert api.get("/api/v1/prompts/greet/versions/V2/").json()["version"] == 2
    rendered = api.post("/api/v1/prompts/greet/render/", {"variables": {"name": "Ada"}, "label": "v1"}, format="json")
    assert rendered.json() == {"version": 1, "text": "Hello Ada!", "warnings": []}
    moved = api.post("/api/v1/prompts/greet/labels/", {"label": "staging", "version": "v2"}, format="json")
    assert moved.json() == {"label": "staging", "version": 2, "previous_version": None}
    named_as_version = error_of(api.post("/api/v1/prompts/greet/labels/", {"label": "v2", "version": 2}, format="json"))
    assert "'v2' reads as a version number" in named_as_version["message"]
    assert "is a version, not a label" in str(error_of(api.get("/api/v1/prompts/?label=v1"))["details"])


def test_unknown_prompt_is_404(api, prompt):
    response = api.get("/api/v1/prompts/nope/")

    assert response.status_code == 404
    assert "nope" in error_of(response)["message"]


def test_list_filters_by_name_tag_and_label(api, prompt, owner, endpoint):
    prompt_services.prompt_create(project=owner.project, actor=owner.user, name="farewell", message="m", template="Bye", endpoint=endpoint)

    def names(query=""):
        response = api.get(f"/api/v1/prompts/{query}")
        assert response.status_code == 200
        return [row["name"] for row in response.json()["results"]]

    assert names() == ["farewell", "greet"]
    assert names("?name=gre") == ["greet"]
    assert names("?tag=support") == ["greet"]
    assert names("?tag=supp") == []
    assert names("?label=production") == ["greet"]
    row = api.get("/api/v1/prompts/?name=greet").json()["results"][0]
    assert row["labels"] == {"production": 1} and row["version"] == 2


def test_create_makes_version_1_with_the_message(api, project, endpoint):
    response = api.post(
        "/api/v1/prompts/",
        {"name": "support-reply", "kind": "chat", "model": endpoint.name, "message": "From CI",
         "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "{{ question }}"}],
         "params": {"temperature": 0.2}},
        format="json",
    )  # fmt: skip

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["version"] == 1 and body["kind"] == "chat" and body["template"] is None
    assert body["messages"][1]["content"] == "{{ question }}" and body["message"] == "From CI"
    prompt = Prompt.objects.get(project=project, name="support-reply")
    assert prompt.history.get().history_change_reason == "From CI"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": "x", "model": "m"}, "message"), ({"name": "bad name", "model": "m", "message": "m"}, "name"),
     ({"name": "x", "message": "m", "template": "Hi"}, "model")],
)  # fmt: skip
def test_create_names_the_missing_or_bad_field(api, project, body, field):
    response = api.post("/api/v1/prompts/", body, format="json")

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid" and field in error["details"]


def test_create_refuses_an_invalid_template_with_the_line(api, project, endpoint):
    response = api.post(
        "/api/v1/prompts/", {"name": "x", "model": endpoint.name, "message": "m", "template": "Hi {{ name"}, format="json"
    )

    assert response.status_code == 400
    assert "template" in error_of(response)["details"]
    assert not Prompt.objects.filter(name="x").exists()


def test_patch_saves_a_new_version_with_its_message(api, prompt):
    response = api.patch("/api/v1/prompts/greet/", {"template": "Hey {{ name }}", "message": "Shorter"}, format="json")

    assert response.status_code == 200
    assert response.json()["version"] == 3 and response.json()["template"] == "Hey {{ name }}"
    assert prompt.history.get(version=3).history_change_reason == "Shorter"


def test_patch_from_a_stale_version_is_refused(api, prompt):
    response = api.patch("/api/v1/prompts/greet/", {"template": "Hey", "message": "m", "base_version": 1}, format="json")

    assert response.status_code == 400
    assert error_of(response)["details"] == {"base_version": 1, "current_version": 2}


def test_versions_list_and_one_version(api, prompt):
    versions = api.get("/api/v1/prompts/greet/versions/").json()
    one = api.get("/api/v1/prompts/greet/versions/1/")

    assert [(v["version"], v["message"], v["labels"]) for v in versions["results"]] == [(2, "second", []), (1, "first", ["production"])]
    assert versions["results"][0]["author"] == prompt.history.get(version=2).history_user.email
    assert one.status_code == 200 and one.json()["template"] == "Hello {{ name }}!"
    assert api.get("/api/v1/prompts/greet/versions/7/").status_code == 404


def test_render_text_and_chat(api, prompt, owner, endpoint):
    text = api.post("/api/v1/prompts/greet/render/", {"variables": {"name": "Ada"}}, format="json")
    latest = api.post("/api/v1/prompts/greet/render/", {"variables": {"name": "Ada"}, "version": 2}, format="json")
    prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="chat", message="m", kind="chat", endpoint=endpoint,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "{{ q }}"}],
    )  # fmt: skip
    chat = api.post("/api/v1/prompts/chat/render/", {"variables": {"q": "Why?"}, "label": "latest"}, format="json")

    assert text.json() == {"version": 1, "text": "Hello Ada!", "warnings": []}
    assert latest.json()["text"] == "Hi Ada."
    assert chat.json() == {"version": 1, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}], "warnings": []}  # fmt: skip


def test_render_names_every_missing_variable(api, prompt):
    response = api.post("/api/v1/prompts/greet/render/", {"variables": {}}, format="json")

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "missing_variables" and error["details"]["missing"] == ["name"]


@pytest.mark.parametrize(
    "body", [{"variables": "Ada"}, {"variables": {"name": "A"}, "version": 0}, {"variables": {"name": "A", "extra": 1}}]
)
def test_render_refuses_bad_input(api, prompt, body):
    response = api.post("/api/v1/prompts/greet/render/", body, format="json")

    assert response.status_code == 400
    error_of(response)


def test_labels_promote_and_roll_back(api, prompt):
    promoted = api.post("/api/v1/prompts/greet/labels/", {"label": "production", "version": 2, "message": "ship"}, format="json")
    rolled = api.post("/api/v1/prompts/greet/labels/", {"label": "production", "rollback": True}, format="json")

    assert promoted.status_code == 200 and promoted.json() == {"label": "production", "version": 2, "previous_version": 1}
    assert rolled.json() == {"label": "production", "version": 1, "previous_version": 2}
    assert api.get("/api/v1/prompts/greet/").json()["version"] == 1
    assert LabelMove.objects.filter(prompt=prompt).count() == 3


@pytest.mark.parametrize(
    ("body", "status"),
    [({"label": "production", "version": 9}, 404), ({"label": "latest", "version": 1}, 400), ({"label": "staging"}, 400),
     ({"label": "staging", "rollback": True}, 400), ({"label": "x y", "version": 1}, 400)],
)  # fmt: skip
def test_labels_refuse_bad_moves(api, prompt, body, status):
    response = api.post("/api/v1/prompts/greet/labels/", body, format="json")

    assert response.status_code == status
    error_of(response)
