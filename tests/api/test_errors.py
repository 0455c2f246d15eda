"""One error shape, and a 4xx naming the problem for every kind of bad input."""

import json

import pytest
from rest_framework.test import APIClient

from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db

RENDER = "/api/v1/prompts/greet/render/"


def post_raw(api, url, body: bytes, content_type="application/json"):
    return api.generic("POST", url, body, content_type=content_type)


@pytest.mark.parametrize(
    ("body", "words"),
    [(b'{"variables": ', "Malformed JSON"), (b"\xff\xfe{}", "not UTF-8"), (b'{"variables": {"name": NaN}}', "NaN"),
     (b'{"variables": {"name": "a\\u0000b"}}', "NUL"), (b'{"variables": {"name": "\\ud800"}}', "surrogate"),
     (b'{"variables": {"name": 1e999}}', "too large"), (b"[" * 5000 + b"]" * 5000, "nested")],
)  # fmt: skip
def test_malformed_json_is_400_naming_the_problem(api, prompt, body, words):
    response = post_raw(api, RENDER, body)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "malformed_request" and words in error["message"]


def test_a_body_over_the_limit_is_413(api, prompt, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = post_raw(api, RENDER, json.dumps({"variables": {"name": "x" * 2000}}).encode())

    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"


def test_an_unsupported_content_type_is_415(api, prompt):
    response = post_raw(api, RENDER, b"name=x", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_a_wrong_method_is_405(api, prompt):
    response = api.delete("/api/v1/prompts/greet/")

    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


@pytest.mark.parametrize("debug", [False, True])  # with DEBUG on, Django's own 404 page is HTML
@pytest.mark.parametrize("url", ["/api/v1/nothing-here/", "/api/v1/calls/not-a-uuid/", "/api/v1/prompts/greet/versions/0/",
                                 "/api/v1/experiments/AAA/", "/api/nothing/"])  # fmt: skip
def test_an_unknown_or_malformed_api_url_is_a_json_404(api, settings, debug, url):
    settings.DEBUG = debug

    response = api.get(url)

    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    error = error_of(response)
    assert error["code"] == "not_found" and error["message"] == f"No endpoint at {url}."


def test_a_post_to_an_unknown_api_url_is_a_json_404_not_a_csrf_refusal(make_key):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key()}")

    response = client.post("/api/v1/nothing-here/", {"x": 1}, format="json")

    assert response.status_code == 404 and error_of(response)["code"] == "not_found"


def test_an_api_url_without_its_trailing_slash_is_a_404_that_says_so(api):
    response = api.get("/api/v1/prompts")

    assert response.status_code == 404
    assert error_of(response)["message"] == "No endpoint at /api/v1/prompts. API URLs end with a slash: /api/v1/prompts/."


def test_field_errors_are_listed_by_field(api, prompt):
    response = api.post("/api/v1/prompts/greet/labels/", {"label": 5, "version": "two"}, format="json")

    error = error_of(response)
    assert response.status_code == 400 and error["code"] == "invalid"
    assert set(error["details"]) == {"version"}
    assert "version" in error["message"]


def test_a_body_that_is_not_an_object_is_400(api, prompt):
    response = post_raw(api, RENDER, b"[1, 2]")

    assert response.status_code == 400
    error_of(response)


def test_an_empty_body_is_400_naming_the_required_field(api, prompt):
    response = post_raw(api, "/api/v1/prompts/greet/labels/", b"")

    assert response.status_code == 400
    assert "label" in error_of(response)["details"]
