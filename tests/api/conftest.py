"""A project with an owner, a prompt `greet` (production on v1, v2 newer), keys and clients."""

import pytest
from rest_framework.test import APIClient

from promptlab.accounts import api_keys
from promptlab.accounts.models import ApiKeyScope, Role
from prompts import services as prompt_services
from tests.factories import MembershipFactory

ALL_SCOPES = list(ApiKeyScope.values)


def pytest_configure(config):
    # Registered here: pyproject's marker list belongs to the whole suite.
    config.addinivalue_line("markers", "schemathesis: fuzzes the REST API against its OpenAPI schema (about a minute)")


@pytest.fixture
def owner(db):
    return MembershipFactory(role=Role.OWNER)


@pytest.fixture
def project(owner):
    return owner.project


@pytest.fixture
def make_key(owner):
    """make_key("read", "render", project=..., actor=...) -> the secret of a new key."""

    def make(*scopes, project=None, actor=owner.user, name="test key"):
        _, secret = api_keys.api_key_create(
            project=project or owner.project, actor=actor, name=name, scopes=list(scopes or ALL_SCOPES)
        )
        return secret

    return make


def client_with(secret: str | None) -> APIClient:
    client = APIClient()
    if secret:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def api(make_key) -> APIClient:
    """A client with a key of every scope, made by the project's owner."""
    return client_with(make_key())


@pytest.fixture
def prompt(owner, endpoint):
    prompt = prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="greet", message="first", template="Hello {{ name }}!",
        endpoint=endpoint, tags=["support"],
    )  # fmt: skip
    prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=1)
    return prompt_services.prompt_update(prompt=prompt, actor=owner.user, message="second", template="Hi {{ name }}.")


def error_of(response) -> dict:
    """The error document, after checking the one shape every error has."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


@pytest.fixture
def read(api, django_assert_num_queries):
    """GET the URL, and again in exactly `queries` queries (the key's record, its creator's standing and its
    last use are cached after the first request)."""

    def read(url: str, queries: int) -> None:
        api.get(url)
        with django_assert_num_queries(queries, info=url):
            response = api.get(url)
        assert response.status_code == 200, response.content

    return read
